"""``tessera ingest --watch``: keep the index current as files change (docs/knowledge.md "Ingesting").

watchfiles (inotify on Linux) reports changed paths in batches. Its defaults wait up to 1.6 s to
gather a batch; here a batch is taken once nothing has changed for STEP_MS (and at most
DEBOUNCE_MS after its first change), so a saved file is searchable well within 200 ms. Each
batch goes through ingest.ingest_changed: one transaction per document, as for a full ingest,
so stopping the watch (or killing it) at any moment leaves the index consistent. A changed
``.gitignore`` re-scans its root, since what it leaves out may have changed anywhere below it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable

from tessera.core.knowledge import ingest
from tessera.core.knowledge.file_walk import IgnoreRules
from tessera.core.knowledge.ingest import IngestSummary, OnChange, OnWarning, Target

DEBOUNCE_MS = 50
STEP_MS = 5

OnBatch = Callable[[IngestSummary, list[str]], None]  # (what the batch did, the paths it touched)


def watch(conn: sqlite3.Connection, targets: list[Target], stop: threading.Event, *, on_batch: OnBatch | None = None,
          on_change: OnChange | None = None, on_warning: OnWarning | None = None,
          on_ready: Callable[[], None] | None = None) -> None:
    """Apply file changes under ``targets`` to the index until ``stop`` is set.

    Args:
        on_batch: called after each batch of changes that reached the index with its summary.
        on_ready: called once the watcher is running (changes from then on are seen).
    """
    import watchfiles

    rules = {str(t.root): IgnoreRules(t.root) for t in targets}
    # A file is watched through its folder: an editor that saves by renaming a new file over
    # it would end a watch on the file itself.
    watched = sorted({str((t.root / t.only).parent) if t.only else str(t.root) for t in targets})
    if on_ready is not None:
        on_ready()
    for batch in watchfiles.watch(*watched, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=stop,
                                  raise_interrupt=False, watch_filter=None, recursive=True, ignore_permission_denied=True):
        for target in targets:
            changed = _relevant(target, batch)
            if changed is None:
                continue
            root_rules = rules[str(target.root)]
            if any(rel == ".gitignore" or rel.endswith("/.gitignore") for rel in changed):
                rules[str(target.root)] = root_rules = IgnoreRules(target.root)
                summary = ingest.ingest_targets(conn, [target], on_change=on_change, on_warning=on_warning)
            else:
                summary = ingest.ingest_changed(conn, target.root, target.root_given, changed, rules=root_rules,
                                                on_change=on_change, on_warning=on_warning)
            if on_batch is not None and (summary.changed or summary.skipped):
                on_batch(summary, sorted(changed))
        if stop.is_set():
            break


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
        if target.only is not None and rel != target.only:
            continue
        if change == watchfiles.Change.modified and os.path.isdir(path) and not os.path.islink(path):
            continue
        out.append(rel)
    return out or None
