"""The one framing of the peer protocol (DESIGN §11): a 4-byte big-endian length, then that many
bytes holding one msgpack map. The length is checked against the limit before a single byte of
the body is read or allocated, so a peer announcing 4 GiB costs us 4 bytes.

The stream is any object with ``async read(n) -> bytes`` (at most n bytes; ``b""`` at the end of
the stream, as asyncio's StreamReader and iroh's RecvStream do) and ``async write(data)``: the
transport's QUIC streams are asynchronous, and a short read is completed here, so a reader that
hands back one byte at a time frames the same. Decoding refuses anything but one map with string
keys (no trailing bytes, no msgpack extension types), each refusal a ProtocolError whose ``code``
is what the error frame sent back carries (core/peers/hello.py).

msgpack is imported here only: no command but the peer ones loads it.
"""

from __future__ import annotations

from typing import Any, Protocol

from tessera.core.errors import TesseraError

HEADER_BYTES = 4
# The largest body a frame may have. A sync page is sized to fit well under it; anything larger
# is a misbehaving or hostile peer. Callers may pass a smaller limit, never a larger one.
MAX_FRAME_BYTES = 4 * 1024 * 1024
# A body is read in pieces of at most this, so memory grows with what actually arrives.
_READ_CHUNK = 64 * 1024


class ProtocolError(TesseraError):
    """The peer broke the protocol (or a frame we were about to send would). ``code`` names the
    rule for the error frame (``too_large``, ``truncated``, ``malformed``, ``unknown_type``...),
    ``fix`` says what the other side's user can do about it."""

    def __init__(self, code: str, message: str, *, fix: str = ""):
        super().__init__(message, hint=fix or None)
        self.code = code
        self.fix = fix


class ByteStream(Protocol):
    """What frames are read from and written to (a QUIC stream, a socket pair in tests)."""

    async def read(self, n: int) -> bytes: ...

    async def write(self, data: bytes) -> Any: ...


def _check_limit(limit: int) -> int:
    if not 0 < limit <= MAX_FRAME_BYTES:
        raise ValueError(f"a frame limit must be between 1 and {MAX_FRAME_BYTES} bytes, not {limit}")
    return limit


def encode(message: dict, *, limit: int = MAX_FRAME_BYTES) -> bytes:
    """The frame holding ``message`` (a map with string keys).

    Raises:
        ProtocolError(too_large) when its body would exceed ``limit``: the peer would refuse it.
        ProtocolError(malformed) when it holds something msgpack cannot carry.
    """
    import msgpack

    _check_limit(limit)
    if not isinstance(message, dict):
        raise ProtocolError("malformed", f"a frame holds one map, not {type(message).__name__}")
    try:
        body = msgpack.packb(message, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError("malformed", f"cannot encode the message: {exc}") from None
    if len(body) > limit:
        raise ProtocolError("too_large", f"the message is {len(body)} bytes, over the frame limit of {limit}",
                            fix="send it in smaller pages")
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def body_length(header: bytes, *, limit: int = MAX_FRAME_BYTES) -> int:
    """The body length a frame header announces, refused (ProtocolError too_large) over ``limit``."""
    length = int.from_bytes(header, "big")
    if length > limit:
        raise ProtocolError("too_large", f"the peer announced a frame of {length} bytes, over the limit of {limit}",
                            fix=f"frames are at most {limit} bytes: send smaller pages")
    return length


def decode_body(body: bytes) -> dict:
    """The map a frame body holds.

    Raises:
        ProtocolError(malformed): not msgpack, trailing bytes, not a map, a key that is not a
        string, an extension type, nesting too deep.
    """
    value = _unpack(body, "the frame body", "one msgpack map")
    if not isinstance(value, dict):
        raise ProtocolError("malformed", f"the frame body is a msgpack {type(value).__name__}, not a map",
                            fix="the peer's Tessera is broken or not Tessera")
    _check_plain(value)
    return value


def decode_array(data: bytes, what: str) -> list:
    """The list one msgpack array in ``data`` holds (a page's items, packed apart from the frame
    so that its signature covers them byte for byte, core/peers/pages.py).

    Extension types are refused, msgpack's Timestamp among them (``max_ext_len=0``: every
    extension carries data, a Timestamp 4 bytes at least), and so are trailing bytes and map keys
    that are neither strings nor bytes. Unlike ``decode_body`` the values are not walked one by
    one (100 000 events cost a second so): the caller checks every field it uses by its exact
    type, which refuses a bytes key as a missing field.

    Raises:
        ProtocolError(malformed), naming ``what``.
    """
    value = _unpack(data, what, "one msgpack array", max_ext_len=0)
    if not isinstance(value, list):
        raise ProtocolError("malformed", f"{what} is a msgpack {type(value).__name__}, not an array",
                            fix="the peer's Tessera is broken or not Tessera")
    return value


def _unpack(data: bytes, what: str, expected: str, **options: Any) -> Any:
    import msgpack

    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_refuse_ext, timestamp=0,
                               use_list=True, **options)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError("malformed", f"{what} is not {expected}: {type(exc).__name__}: {exc}"[:300],
                            fix="the peer's Tessera is broken or not Tessera") from None


_SCALARS = (type(None), bool, int, float, str, bytes)


def _check_plain(value: Any) -> None:
    """Refuse what msgpack decodes besides plain data: its Timestamp (extension -1, which
    bypasses ext_hook) and map keys that are bytes. msgpack bounds the nesting (StackError)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise ProtocolError("malformed", f"a map key in the frame is {type(key).__name__}, not a string")
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif not isinstance(item, _SCALARS):
            raise ProtocolError("malformed", f"the frame holds a msgpack {type(item).__name__}, which the protocol does not use")


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("malformed", f"the frame holds a msgpack extension type ({code}), which the protocol does not use")


async def read_exactly(stream: ByteStream, n: int) -> bytes:
    """``n`` bytes from ``stream``, however it splits them; fewer only when the stream ends."""
    data = bytearray()
    while len(data) < n:
        piece = await stream.read(min(n - len(data), _READ_CHUNK))
        if not piece:
            break
        if len(piece) > n - len(data):
            raise ProtocolError("internal", f"the stream returned {len(piece)} bytes when at most {n - len(data)} were asked")
        data += piece
    return bytes(data)


async def read_frame(stream: ByteStream, *, limit: int = MAX_FRAME_BYTES) -> dict | None:
    """The next frame's map; None when the stream ends cleanly between frames.

    Raises:
        ProtocolError: too_large (checked on the header, before the body is read), truncated (the
        stream ended inside a frame), malformed (see decode_body).
    """
    _check_limit(limit)
    header = await read_exactly(stream, HEADER_BYTES)
    if not header:
        return None
    if len(header) < HEADER_BYTES:
        raise ProtocolError("truncated", f"the stream ended inside a frame header ({len(header)} of {HEADER_BYTES} bytes)")
    length = body_length(header, limit=limit)
    body = await read_exactly(stream, length)
    if len(body) < length:
        raise ProtocolError("truncated", f"the stream ended inside a frame ({len(body)} of {length} bytes)")
    return decode_body(body)


async def write_frame(stream: ByteStream, message: dict, *, limit: int = MAX_FRAME_BYTES) -> None:
    """Send ``message`` as one frame (see ``encode``)."""
    await stream.write(encode(message, limit=limit))
