"""What backup and restore need to leave nothing half-done behind: whether the process that
made a leftover (its pid in the leftover's name) still runs, and the fsync of a folder that makes
a rename in it durable."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tessera.core.pids import pid_alive


def abandoned(name: str, prefix: str) -> bool:
    """Whether ``name`` (``<prefix><pid>...``) was left by a process that is gone, not this one."""
    digits = ""
    for ch in name[len(prefix):]:
        if not ch.isdigit():
            break
        digits += ch
    return name.startswith(prefix) and bool(digits) and int(digits) != os.getpid() and not pid_alive(int(digits))


def fsync_dir(path: Path) -> None:
    """Make the renames and links in ``path`` durable (best effort: not every system can)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
