"""One row of ``tessera doctor``: what was checked, how it went, what was seen and the command
that fixes it. A check over several things (contexts, peers, servers) gives one row per thing."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
STATUSES = (OK, WARN, FAIL, SKIP)
# Only a failure makes doctor exit 1: a warning is something to know (unpushed events, a schema
# the next write migrates) that does not stop Tessera working (docs/doctor.md).
FAILING = (FAIL,)


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str
    detail: str
    fix: str = ""  # a concrete command (or a sentence when no command fixes it); "" when nothing to fix

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"not a check status: {self.status!r}")

    def as_row(self) -> dict[str, str]:
        return asdict(self)


def all_passed(results: list[CheckResult]) -> bool:
    """Whether doctor exits 0: no check failed."""
    return not any(r.status in FAILING for r in results)


def quoted(path: object) -> str:
    """A path as a shell word, for a fix the user pastes."""
    return shlex.quote(str(path))


def listed(items: list[str], most: int = 3) -> str:
    """``a, b, c and 4 more``: the first few of a long list, for a detail that stays one line."""
    if len(items) <= most:
        return ", ".join(items)
    return f"{', '.join(items[:most])} and {len(items) - most} more"
