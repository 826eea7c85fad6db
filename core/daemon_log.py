"""The log of a long-running process (``tessera serve``, ``tessera ingest --watch``): one JSON line
per event on stderr when it is not a terminal (for journald, a log shipper, ``jq``), else a
readable line with its control characters escaped."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from tessera.core.errors import printable
from tessera.core.times import now as time_now


class DaemonLog:
    """log(level, event, **fields): JSON lines when ``out`` is not a terminal, else readable."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stderr
        self.as_json = not self.out.isatty()

    def __call__(self, level: str, event: str, **fields) -> None:
        if self.as_json:
            line = json.dumps({"time": time_now(), "level": level, "event": event, **fields}, default=str)
        else:
            extra = " ".join(f"{key}={value}" for key, value in fields.items())
            line = printable(f"{time_now()} {level:<7} {event} {extra}".rstrip())
        print(line, file=self.out, flush=True)
