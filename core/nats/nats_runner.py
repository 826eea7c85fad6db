"""How ``tessera nats push`` and ``pull`` run: once, or ``--follow`` as a long-running process
that reconnects with backoff (1 s doubling to 60 s) whenever the server goes away, restarting
from its stored cursor. SIGTERM stops it cleanly with exit 0, SIGINT (Ctrl-C) with 130; in
both cases what the server acked (push) or what was ingested (pull) stays recorded."""

from __future__ import annotations

import asyncio
import signal
from typing import Any, Awaitable, Callable, TypeVar

from tessera.core.errors import EXIT_INTERRUPTED, NotAuthorized, SourceTimeout, SourceUnavailable

T = TypeVar("T")
BACKOFF_FIRST_S = 1.0
BACKOFF_MOST_S = 60.0


class ConnectionLost(SourceUnavailable):
    """The server went away in the middle of a session (exit 3 when running once)."""


class Stop:
    """Set by SIGTERM or SIGINT; remembers which, for the exit code."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signum: int | None = None

    def set(self, signum: int) -> None:
        self.signum = self.signum or signum
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.signum == signal.SIGINT else 0

    async def sleep(self, seconds: float) -> None:
        """Sleep, or return early when stopped."""
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
        except asyncio.TimeoutError:
            pass


def run(main: Callable[[Stop], Awaitable[T]]) -> tuple[T, int]:
    """Run ``main(stop)`` in a new event loop with SIGTERM and SIGINT setting ``stop``: its
    result and the exit code the signal calls for (0 without one)."""

    import logging
    import os

    if not os.environ.get("TESSERA_DEBUG"):
        # asyncio logs a warning when a TLS connection is closed ("returning true from
        # eof_received() has no effect when using ssl"), which Python's last-resort handler
        # prints on stderr beside the command's one line
        logging.getLogger("asyncio").setLevel(logging.ERROR)

    async def wrapper() -> tuple[T, int]:
        stop = Stop()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_background_failure)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set, signum)
        result = await main(stop)
        return result, stop.exit_code

    return asyncio.run(wrapper())


def _background_failure(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """An exception in a task nobody awaits: nats-py's flusher and reader tasks fail this way
    when the server goes (ConnectionResetError...), which the session has already seen as the
    connection closing. asyncio would print each with a traceback on stderr, in the middle of
    a one-line error or a JSON log; with TESSERA_DEBUG set they are printed as asyncio does."""
    import os

    if os.environ.get("TESSERA_DEBUG"):
        loop.default_exception_handler(context)


async def reconnecting(session: Callable[[Callable[[], None]], Awaitable[None]], stop: Stop, log: Any,
                       what: str) -> None:
    """Run ``session(connected)`` again and again until ``stop``: after a failure to reach the
    server (or losing it), log one line and wait the next backoff delay; ``connected()`` (the
    session calls it once it is established) starts the delays over."""
    delay = BACKOFF_FIRST_S

    def connected() -> None:
        nonlocal delay
        delay = BACKOFF_FIRST_S

    while not stop.is_set():
        try:
            await session(connected)
        except (SourceUnavailable, NotAuthorized, SourceTimeout) as exc:
            if stop.is_set():
                break
            log("warning", f"{what}_failed", reason=exc.one_line()[:300], retry_s=delay)
            await stop.sleep(delay)
            delay = min(delay * 2, BACKOFF_MOST_S)
