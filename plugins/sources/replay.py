"""A recording replayed as a read-only, watchable source (``-s replay:FILE``, ``-s replay:demo``).

The replay clock maps real time to recording time: recording.start + (now - opened) * speed,
held at the end (or wrapped with ``loop``), or fixed by ``at`` / ``set_at`` for AT queries.
``list`` shows the state at the clock; ``watch`` streams the events as the clock reaches them.
See docs/recordings.md.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from tessera.core.errors import UsageError, WatchExpired
from tessera.core.kinds import KindInfo
from tessera.core.recording_file import Recording, load_recording, object_key
from tessera.core.resources import select_resources
from tessera.core.sources.protocol import ConcurrentSource, DefaultNamespaceSource, Source, TimeTravelSource, WatchableSource

DEMO_RECORDING = Path(__file__).resolve().parent / "demo_data" / "recording.jsonl.gz"

# Longest single sleep in watch: the clock can be moved (set_at) while a watch waits.
_MAX_SLEEP = 0.5


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


class ReplaySource(Source, WatchableSource, TimeTravelSource, DefaultNamespaceSource, ConcurrentSource):
    """The resources of a recording, as they were at the replay clock.

    Args:
        spec: a recording file (plain or .gz) or ``demo`` for the bundled demo recording.
        speed: recording seconds per real second (2.0 plays twice as fast).
        loop: start over after the last event instead of holding the final state.
        at: fix the clock at this instant (an AT query) instead of playing.
    Raises:
        SourceUnavailable when the file is missing; InputError when it is not a valid recording;
        UsageError when speed is not positive.
    """

    writable = False
    concurrent = False
    default_namespace = None

    def __init__(self, spec: str, *, speed: float = 1.0, loop: bool = False, at: datetime | None = None):
        if not speed or speed <= 0:
            raise UsageError(f"--speed must be a positive number, not {speed}", hint="e.g. --speed 10")
        self.spec = spec
        self.name = f"replay:{spec}"
        self.speed = float(speed)
        self.loop = loop
        self.recording: Recording = load_recording(DEMO_RECORDING if spec == "demo" else spec)
        self._events = self.recording.events
        self._keys = [object_key(obj) for _, _, obj in self._events]
        self._at = _utc(at) if at is not None else None
        self._monotonic = time.monotonic
        self._opened = self._monotonic()
        self._lock = threading.Lock()
        # The folded state for the first _applied events: {(group, kind): {(namespace, name): obj}}.
        self._applied = 0
        self._state: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._kinds: list[KindInfo] | None = None

    # --- clock ---------------------------------------------------------------------------

    def set_at(self, when: datetime | None) -> None:
        """Fix the clock at ``when`` (AT queries); None resumes playing from when the source opened."""
        self._at = _utc(when) if when is not None else None

    def now(self) -> datetime:
        """The recording time the source currently shows."""
        return self._clock()[1]

    def _clock(self) -> tuple[int, datetime]:
        """(loop cycle, recording time) now."""
        rec = self.recording
        if self._at is not None:
            return 0, self._at
        elapsed = (self._monotonic() - self._opened) * self.speed
        duration = rec.duration
        if self.loop and duration > 0:
            cycle, offset = divmod(elapsed, duration)
            return int(cycle), rec.start + timedelta(seconds=offset)
        return 0, rec.start + timedelta(seconds=min(elapsed, duration))

    def _version(self, cycle: int, count: int) -> str:
        # The index of the last event applied; later loop cycles continue the numbering (each cycle
        # has len+1 positions, "none applied" included) so versions only grow.
        return str(cycle * (len(self._events) + 1) + count - 1)

    # --- state ---------------------------------------------------------------------------

    def _sync(self, count: int) -> None:
        """Bring the folded state to the first ``count`` events (caller holds the lock)."""
        if count < self._applied:
            self._state = {}
            self._applied = 0
        for i in range(self._applied, count):
            _, type_, obj = self._events[i]
            group, kind, ns, name = self._keys[i]
            bucket = self._state.setdefault((group, kind), {})
            if type_ == "DELETED":
                bucket.pop((ns, name), None)
            else:
                bucket[(ns, name)] = obj
        self._applied = count

    def _snapshot(self, kind: KindInfo) -> tuple[list[dict[str, Any]], int, int]:
        cycle, when = self._clock()
        count = self.recording.count_at(when)
        with self._lock:
            self._sync(count)
            objs = list(self._state.get((kind.group, kind.kind), {}).values())
        return objs, cycle, count

    # --- protocol ------------------------------------------------------------------------

    def kinds(self) -> list[KindInfo]:
        """Built-in kinds, CRDs found in the recording, and any other kind the recording holds."""
        if self._kinds is not None:
            return self._kinds
        from tessera.core.builtin_kinds import BUILTIN_KINDS
        from tessera.core.kinds import kinds_from_crds

        crds: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        seen: dict[tuple[str, str], tuple[str, bool]] = {}
        for key, (_, _, obj) in zip(self._keys, self._events, strict=False):
            group, kind, ns, _ = key
            if kind == "CustomResourceDefinition":
                crds[key] = obj
            version = str(obj.get("apiVersion", "v1")).rsplit("/", 1)[-1]
            prev = seen.get((group, kind))
            seen[(group, kind)] = (prev[0] if prev else version, bool(ns) or (prev[1] if prev else False))
        kinds = list(BUILTIN_KINDS) + kinds_from_crds(list(crds.values()))
        known = {(k.group, k.kind) for k in kinds}
        for (group, kind), (version, namespaced) in seen.items():
            if (group, kind) not in known:
                kinds.append(KindInfo(group, version, kind, kind.lower() + "s", kind.lower(), (), namespaced))
                known.add((group, kind))
        self._kinds = kinds
        return kinds

    def list(
        self,
        kind: KindInfo,
        *,
        namespace: str | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Resources of ``kind`` at the replay clock, filtered by namespace, name and labels (see base.Source)."""
        objs, _, _ = self._snapshot(kind)
        return select_resources(objs, kind, namespace=namespace, name=name, labels=labels)

    def list_versioned(self, kind: KindInfo, *, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Resources of ``kind`` at the replay clock and the version to watch from.

        Returns:
            (objects, resourceVersion): the version is the index of the last event applied.
        """
        objs, cycle, count = self._snapshot(kind)
        return select_resources(objs, kind, namespace=namespace), self._version(cycle, count)

    def watch(
        self,
        kind: KindInfo,
        *,
        namespace: str | None = None,
        resource_version: str,
        stop: threading.Event,
        timeout: float = 30.0,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (type, object) for events of ``kind`` (in ``namespace``) after ``resource_version``,
        each once the replay clock reaches its time.

        Args:
            kind: the kind watched.
            namespace: None for all namespaces.
            resource_version: from list_versioned (or the last event seen).
            stop: a threading.Event; setting it ends the watch promptly.
            timeout: seconds after which the watch returns (the caller watches again).
        Raises:
            WatchExpired when the replay looped back to the start, the clock was moved back
            (set_at) or the version is not one this replay gave: list again.
        """
        n = len(self._events)
        try:
            version = int(resource_version)
        except (TypeError, ValueError):
            raise WatchExpired(f"{self.name}: resourceVersion {resource_version!r} is not one this replay gave") from None
        if version < -1:
            raise WatchExpired(f"{self.name}: resourceVersion {resource_version!r} is too old")
        cycle, i = divmod(version + 1, n + 1)
        deadline = self._monotonic() + timeout
        rec = self.recording
        while not stop.is_set():
            cur_cycle, when = self._clock()
            reached = rec.count_at(when)
            if cycle > cur_cycle or (cycle == cur_cycle and i > reached):
                raise WatchExpired(f"{self.name}: the replay clock moved back; list again")
            limit = n if cycle < cur_cycle else reached
            while i < limit:
                type_, obj = self._events[i][1], self._events[i][2]
                group, kind_name, ns, _ = self._keys[i]
                i += 1
                if (group, kind_name) != (kind.group, kind.kind):
                    continue
                if namespace is not None and kind.namespaced and ns != namespace:
                    continue
                yield type_, obj
                if stop.is_set():
                    return
            if cycle < cur_cycle:
                raise WatchExpired(f"{self.name}: the replay looped back to the start; list again")
            left = deadline - self._monotonic()
            if left <= 0:
                return
            wait = min(left, _MAX_SLEEP)
            if self._at is None:
                if i < n:
                    wait = min(wait, (self._events[i][0] - when).total_seconds() / self.speed)
                elif self.loop and rec.duration > 0:
                    wait = min(wait, (rec.end - when).total_seconds() / self.speed)
            stop.wait(max(wait, 0.001))


__all__ = ["DEMO_RECORDING", "ReplaySource"]
