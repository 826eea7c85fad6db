"""SIGINT, SIGTERM and SIGHUP as a flag a long command polls (job runners, ``record``, ``ingest
--watch``), so a signal stops its work cleanly (process groups killed, ends stored, files closed)
wherever it lands. Python's own KeyboardInterrupt, or the default death on SIGTERM, could land
between starting a job's process and knowing its pid, or inside a store write, and leave the
group running and the run "running" (docs/jobs.md)."""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

EXIT_OF_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class StopSignals:
    """While entered (in the main thread; elsewhere it installs nothing), the first of
    ``signals`` is kept in ``received`` and each one calls ``on_signal(signum)``."""

    def __init__(self, signals: tuple[int, ...] = tuple(EXIT_OF_SIGNAL),
                 on_signal: Callable[[int], None] | None = None):
        self.signals, self.on_signal = signals, on_signal
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is None:
            self.received = signum
        if self.on_signal is not None:
            self.on_signal(signum)

    def is_set(self) -> bool:
        return self.received is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received is not None else None

    @property
    def exit_code(self) -> int | None:
        """128 + the signal's number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), None when none came."""
        return EXIT_OF_SIGNAL.get(self.received, 128 + self.received) if self.received is not None else None
