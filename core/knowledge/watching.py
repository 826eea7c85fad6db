"""``tessera ingest --watch``: keep the index current as files change (docs/knowledge.md "Ingesting").

watchfiles (inotify on Linux) reports changed paths in batches. Its defaults wait up to 1.6 s to
gather a batch; here a batch is taken once nothing has changed for STEP_MS (and at most
DEBOUNCE_MS after its first change), so a saved file is searchable well within 200 ms. Each
batch goes through ingest.ingest_changed: one transaction per document, as for a full ingest,
so stopping the watch (or killing it) at any moment leaves the index consistent; a batch that
fails (the store locked past its timeout) is tried again with the next one. A changed
``.gitignore`` re-scans its root, since what it leaves out may have changed anywhere below it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterator

from tessera.core.errors import SourceUnavailable, TesseraError, printable
from tessera.core.knowledge import ingest
from tessera.core.knowledge.file_walk import IgnoreRules
from tessera.core.knowledge.ingest import IngestSummary, OnChange, OnWarning, Target

DEBOUNCE_MS = 50
STEP_MS = 5
RUST_TIMEOUT_MS = 100

OnBatch = Callable[[IngestSummary, list[str]], None]  # (what the batch did, the paths it touched)


def watch(conn: sqlite3.Connection, targets: list[Target], stop: threading.Event, *,
          on_ready: Callable[[], None] | None = None, on_batch: OnBatch | None = None,
          on_change: OnChange | None = None, on_warning: OnWarning | None = None,
          on_error: Callable[[TesseraError, list[str]], None] | None = None) -> None:
    """Apply file changes under ``targets`` to the index until ``stop`` is set.

    Args:
        on_ready: called once the watcher is running, before any change is applied: the caller's
            first full ingest goes here, so that a file saved while it runs is not missed (its
            change is applied after it).
        on_batch: called after each batch of changes that reached the index with its summary.
        on_error: called when a batch could not be applied (the store stayed locked past its
            timeout, the disk is full): its paths are tried again with the next batch (at most
            RUST_TIMEOUT_MS later), so the watch goes on.
    """
    import watchfiles

    rules = {str(t.root): IgnoreRules(t.root) for t in targets}
    # A file is watched through its folder: an editor that saves by renaming a new file over
    # it would end a watch on the file itself.
    watched = sorted({str((t.root / t.only).parent) if t.only else str(t.root / (t.under or "")) for t in targets})
    ready = False
    retry: dict[int, set[str]] = {}  # target's index -> paths of a batch that failed, applied with the next
    # yield_on_timeout: the first (possibly empty) batch comes once the watcher runs, which is
    # the moment to call on_ready; later empty ones (every RUST_TIMEOUT_MS) are ignored.
    batches = watchfiles.watch(*watched, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=stop,
                               rust_timeout=RUST_TIMEOUT_MS, yield_on_timeout=True, raise_interrupt=False,
                               watch_filter=None, recursive=True, ignore_permission_denied=True)
    while True:
        batch = _next_batch(batches, watched)
        if batch is None:
            break
        if not ready:
            ready = True
            if on_ready is not None:
                on_ready()
        for number, target in enumerate(targets):
            changed = sorted(set(_relevant(target, batch) or ()) | retry.pop(number, set()))
            if not changed:
                continue
            try:
                summary = _apply(conn, target, changed, rules, on_change, on_warning)
            except TesseraError as exc:  # the store locked or full: tried again with the next batch
                retry[number] = set(changed)
                if on_error is not None:
                    on_error(exc, changed)
                continue
            if on_batch is not None and (summary.changed or summary.skipped):
                on_batch(summary, changed)
        if stop.is_set():
            break


def _next_batch(batches: Iterator[set], watched: list[str]) -> set | None:
    """The watcher's next batch, None when it stopped; its failures (inotify's watch limit
    reached, a watched folder gone) as one SourceUnavailable line."""
    try:
        return next(batches)
    except StopIteration:
        return None
    except (OSError, RuntimeError) as exc:
        raise SourceUnavailable(f"cannot watch {printable(', '.join(watched))}: {printable(str(exc))}",
                                hint="a large tree may need more inotify watches: sysctl fs.inotify.max_user_watches") from None


def _apply(conn: sqlite3.Connection, target: Target, changed: list[str], rules: dict[str, IgnoreRules],
           on_change: OnChange | None, on_warning: OnWarning | None) -> IngestSummary:
    """One batch's changes under ``target`` into the index (a changed .gitignore re-scans it)."""
    if any(rel == ".gitignore" or rel.endswith("/.gitignore") for rel in changed):
        rules[str(target.root)] = IgnoreRules(target.root)
        return ingest.ingest_targets(conn, [target], on_change=on_change, on_warning=on_warning)
    return ingest.ingest_changed(conn, target.root, target.root_given, changed, rules=rules[str(target.root)],
                                 on_change=on_change, on_warning=on_warning)


def _relevant(target: Target, batch: set) -> list[str] | None:
    """The paths of ``batch`` under ``target`` (relative, '/'-separated) worth looking at, or
    None. A folder reported modified is left out: its files' own changes are reported, and
    walking the folder again for each would cost a re-read of everything below it."""
    import watchfiles

    root = str(target.root)
    out = []
    for change, path in batch:
        if not (path == root or path.startswith(root + os.sep)):
            continue
        rel = Path(os.path.relpath(path, root)).as_posix()
        if rel == ".":
            continue
        if not target.covers(rel) and not (target.under is not None and rel == target.under):
            continue
        if change == watchfiles.Change.modified and os.path.isdir(path) and not os.path.islink(path):
            continue
        out.append(rel)
    return out or None
