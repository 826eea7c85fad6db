"""Reading what a user hands us (a manifest file, stdin, a query file) with the size limit checked
before the bytes are read, and decoding it as UTF-8 with the position of the first bad byte.

The limit is ``core.config.max_input_bytes()`` (``TESSERA_MAX_INPUT_BYTES``); see docs/limits.md.
"""

from __future__ import annotations

import codecs
import os
import stat
from typing import Any, BinaryIO

from tessera.core.errors import InputError, SourceUnavailable, UsageError

LIMIT_SETTING = "TESSERA_MAX_INPUT_BYTES"


def too_large(where: str, limit: int, size: int | None, setting: str = LIMIT_SETTING, total_of: str | None = None,
              limit_name: str = "input limit") -> InputError:
    """The error for input over ``limit``: its size (or "more than the limit" when unknown) and
    the setting that raises it."""
    from tessera.core.config import format_bytes

    the_limit = f"the {format_bytes(limit)} {limit_name}"
    if total_of:
        what = (f"the files read from {total_of} come to {format_bytes(size)} with {where}, over {the_limit}"
                if size is not None else f"the files read from {total_of} come to more than {the_limit} with {where}")
    else:
        what = f"{where} is {format_bytes(size)}, over {the_limit}" if size is not None else f"{where} holds more than {the_limit}"
    mib = 1024 * 1024
    enough = -(-max(size or 0, 2 * limit) // mib)  # in MiB, rounded up: at least the size, twice the limit
    return InputError(what, hint=f"set {setting} to raise it, e.g. {setting}={enough}MiB")


def read_path(path: str | os.PathLike, *, where: str | None = None, limit: int, used: int = 0,
              total_of: str | None = None, setting: str = LIMIT_SETTING) -> bytes:
    """The bytes of a file, refused before reading when it is larger than ``limit`` - ``used``.

    A pipe, FIFO or character device (``<(kubectl get pods -o yaml)``, /dev/stdin) has no size
    to check first: it is read up to the limit + 1 bytes and refused when it holds more.

    Args:
        where: the name in messages (default: ``path``).
        used: bytes already read for the same input (a directory's earlier files).
        total_of: that input's name, when ``used`` counts: the message gives the total.
    Raises:
        InputError when over the limit or when ``path`` is a directory; SourceUnavailable when it
        cannot be opened or read (the OS reason given).
    """
    shown = where or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # a FIFO waits for its writer, as cat does
    except IsADirectoryError:
        raise InputError(f"{shown} is a directory, not a file") from None
    except OSError as exc:
        raise SourceUnavailable(f"cannot read {shown}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{shown} is a directory, not a file")
        regular = stat.S_ISREG(info.st_mode)
        if regular and used + info.st_size > limit:
            raise too_large(shown, limit, used + info.st_size, setting, total_of if used else None)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = _read_capped(fh, limit - used + 1, info.st_size if regular else None)
    except OSError as exc:
        raise SourceUnavailable(f"cannot read {shown}: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if used + len(data) > limit:
        raise too_large(shown, limit, None, setting, total_of if used else None)
    return data


_CHUNK = 1024 * 1024


def _read_capped(fh: Any, cap: int, size: int | None) -> bytes:
    """At most ``cap`` bytes of ``fh``: in one read when its ``size`` is known, else in 1 MiB chunks,
    so memory follows what the input holds rather than the limit (``read(n)`` allocates n bytes
    up front)."""
    parts: list[Any] = []
    total = 0
    if size is not None:
        first = fh.read(min(size + 1, cap))
        if len(first) <= size or len(first) >= cap:
            return first  # the whole file (it did not grow), or already over the cap
        parts, total = [first], len(first)
    while total < cap:
        chunk = fh.read(min(_CHUNK, cap - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    if parts and isinstance(parts[0], str):
        return "".join(parts)  # type: ignore[return-value]
    return b"".join(parts)


def _stream_size(raw: Any) -> int | None:
    """The bytes left in ``raw`` when it is a regular file (``< file``), else None (a pipe, a terminal)."""
    try:
        fd = raw.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        return max(0, info.st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except (AttributeError, OSError, ValueError):  # io.BytesIO and friends have no file descriptor
        return None


def read_stream(stream: Any, *, where: str = "stdin", limit: int, setting: str = LIMIT_SETTING,
                limit_name: str = "input limit") -> bytes:
    """Up to ``limit`` bytes of ``stream`` (stdin), refused when it holds more.

    A regular file behind the stream (``< file``) is measured first and refused without reading.

    Raises:
        UsageError when the stream is closed (``<&-``); InputError when over the limit.
    """
    if stream is None or getattr(stream, "closed", False):
        raise UsageError(f"{where} is closed, so there is nothing to read", hint="pipe the input in, or name a file")
    raw: BinaryIO | Any = getattr(stream, "buffer", stream)
    size = _stream_size(raw)
    if size is not None and size > limit:  # stdin redirected from a file: refused before reading it
        raise too_large(where, limit, size, setting, limit_name=limit_name)
    try:
        data = _read_capped(raw, limit + 1, size)
    except OSError as exc:
        raise SourceUnavailable(f"cannot read {where}: {exc.strerror}") from None
    except ValueError:  # I/O on a closed file
        raise UsageError(f"{where} is closed, so there is nothing to read", hint="pipe the input in, or name a file") from None
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    if len(data) > limit:
        raise too_large(where, limit, None, setting, limit_name=limit_name)
    return data


def decode_text(data: bytes, where: str) -> str:
    """``data`` as text: UTF-8 (a leading byte-order mark dropped), or UTF-16 when it starts with
    a UTF-16 byte-order mark (what Windows PowerShell redirection writes).

    Raises:
        InputError naming ``where``, the line and column of the first byte that is not UTF-8.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{where}: starts like UTF-16 text but is not", hint="save it as UTF-8") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", errors="replace")) + 1
        raise InputError(f"{where}:{line}:{column}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
                         hint="save it as UTF-8, e.g. iconv -f latin1 -t utf-8") from None
    return text[1:] if text.startswith("\ufeff") else text
