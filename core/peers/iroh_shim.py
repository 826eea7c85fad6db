"""A one-function fix to the iroh Python bindings, applied before anything sends bytes through them.

The generated ``iroh_ffi.py`` of iroh 1.2.0 copies every byte string handed to Rust (each stream
write, each ALPN, each key) into the Rust buffer one byte at a time in a Python loop
(``_UniffiRustBufferBuilder.write``; upstream iroh-ffi issue 229): one QUIC stream moves 3-5 MB/s.
``fast_write`` does the same copy with one ``ctypes.memmove`` (~60 MB/s, bench/peers.py): the
same bytes land at the same offset and the buffer's length grows by the same amount, through the
same ``_reserve`` the original uses (it grows the Rust buffer when needed).

The shim is applied only to the version it was checked against: ``apply`` refuses, with a
message naming the fix, when the installed iroh is not ``PINNED_VERSION`` or its ``write`` is not
the loop we expect (another generator version may lay buffers out differently, and a memmove
into the wrong layout would corrupt memory rather than fail). Reading from Rust needs no shim:
``_UniffiRustBufferStream.read`` already slices the pointer in C.
"""

from __future__ import annotations

import ctypes
from typing import Any

from tessera.core.errors import TesseraError

PINNED_VERSION = "1.2.0"  # pyproject.toml and constraints.txt pin the same (tests check it)

# The original loop's names, read from its code object rather than its bytecode, which changes
# with the Python version while these do not.
_EXPECTED_NAMES = ("_reserve", "len", "enumerate", "rbuf", "data")
_EXPECTED_LOCALS = ("self", "value", "i", "byte")
_MARK = "_tessera_fast_write"


class IrohMismatch(TesseraError):
    """The installed iroh bindings are not the ones the shim was checked against."""


def fast_write(self: Any, value: bytes) -> None:
    """``_UniffiRustBufferBuilder.write`` with one memmove instead of a per-byte loop."""
    data = value if isinstance(value, bytes) else bytes(value)
    size = len(data)
    with self._reserve(size):
        if size:
            start = ctypes.cast(self.rbuf.data, ctypes.c_void_p).value + self.rbuf.len
            ctypes.memmove(start, data, size)


setattr(fast_write, _MARK, True)


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iroh")
    except PackageNotFoundError:
        return "none"


def _fix() -> str:
    return f"reinstall the pinned bindings: pip install -c constraints.txt iroh=={PINNED_VERSION}"


def check(ffi: Any, version: str) -> None:
    """Raise IrohMismatch unless ``ffi`` (the iroh_ffi module) at ``version`` is what the shim
    was written for."""
    if version != PINNED_VERSION:
        raise IrohMismatch(
            f"iroh {version} is installed, but tessera's transport is checked against iroh "
            f"{PINNED_VERSION} only (it patches the bindings' byte copy, iroh-ffi issue 229)",
            hint=_fix())
    builder = getattr(ffi, "_UniffiRustBufferBuilder", None)
    write = getattr(builder, "write", None)
    if getattr(write, _MARK, False):
        return
    code = getattr(write, "__code__", None)
    buffer = getattr(ffi, "_UniffiRustBuffer", None)
    fields = dict(getattr(buffer, "_fields_", ()))
    if (code is None or code.co_names != _EXPECTED_NAMES or code.co_varnames != _EXPECTED_LOCALS
            or fields.get("data") is not ctypes.POINTER(ctypes.c_char)
            or not hasattr(builder, "_reserve")):
        raise IrohMismatch(
            f"the installed iroh {version} bindings are not the ones tessera's shim was checked "
            "against (_UniffiRustBufferBuilder.write or the buffer layout differs)", hint=_fix())


def load() -> Any:
    """The ``iroh`` module, checked and shimmed (IrohMismatch when it is missing or not the
    pinned version): the one way tessera imports iroh."""
    try:
        import iroh
    except ImportError:
        raise IrohMismatch("the iroh bindings are not installed (peer connections need them)",
                           hint=_fix()) from None
    apply(iroh.iroh_ffi)
    return iroh


def apply(ffi: Any = None, version: str | None = None) -> None:
    """Check the bindings and replace their byte-copy loop with ``fast_write`` (once; applying
    again changes nothing). Defaults: the installed ``iroh.iroh_ffi`` and its version."""
    if ffi is None:
        from iroh import iroh_ffi as ffi
    check(ffi, installed_version() if version is None else version)
    builder = ffi._UniffiRustBufferBuilder
    if not getattr(builder.write, _MARK, False):
        builder._tessera_slow_write = builder.write
        builder.write = fast_write


def slow_write(ffi: Any) -> Any:
    """The bindings' original ``write`` (for the tests and the bench, which compare the two)."""
    builder = ffi._UniffiRustBufferBuilder
    return getattr(builder, "_tessera_slow_write", builder.write)


def restore(ffi: Any) -> None:
    """Put the original loop back (bench/peers.py measures both)."""
    builder = ffi._UniffiRustBufferBuilder
    original = builder.__dict__.get("_tessera_slow_write")
    if original is not None:
        builder.write = original
