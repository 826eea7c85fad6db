"""Files Tessera writes that can hold cluster data (recordings, notebook exports) are created
readable by their owner only (0600), whatever the umask and the directory's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any


def open_private(path: str | Path, mode: str = "wb", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing (``w``/``wb``: truncate; ``a``/``ab``: append), the file
    made 0600 when it is a regular file (a device or pipe such as /dev/stdout is left alone).

    Raises:
        OSError as open() does.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)  # the umask may have taken bits away; an old file may have had more
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise
