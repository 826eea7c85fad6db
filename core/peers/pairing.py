"""Pairing by PIN (DESIGN §11, docs/peers.md "Pairing by PIN"): the joiner and the inviter as two
small explicit state machines over an abstract message channel, run inside a connection the
transport has already encrypted and mutually authenticated.

The exchange (magic-wormhole's idea; SPAKE2 of PyPI ``spake2``, Ed25519 group)::

    joiner                                   inviter
      pair_start  {version, invite, name, spake: A-msg}  ->   claims the invite (its one attempt)
                  <-  pair_reply {spake: B-msg, confirm: MAC_inviter}
      checks MAC_inviter
      pair_confirm {confirm: MAC_joiner}  ->                 checks MAC_joiner
                  <-  pair_welcome {name, role, shares, confirm: MAC_welcome}
      checks MAC_welcome, adds the inviter
      pair_done {confirm: MAC_done}  ->                      checks MAC_done, adds the joiner

SPAKE2's identities are the two transport-authenticated node ids (idA the joiner's, idB the
inviter's), so a node relaying two connections cannot splice them: each side uses the ids
its own connection proved, and the keys differ. The SPAKE2 key goes through HKDF-SHA256
(RFC 5869, ``cryptography``) with the transcript's hash as info, giving one key per direction
and a session key; each confirmation is HMAC-SHA256 (RFC 2104) of the transcript under its
direction's key. Anything else than the exchange above (a wrong PIN, a message out of order,
duplicated, with a missing, extra, mistyped or oversized field, a timeout) fails the pairing
with a typed error and an error message to the other side; once the inviter has claimed the
invite, it is cancelled and records who tried from where.

Neither side adds the other itself: a PairingResult says whom to add, with what role and shares.
spake2 and cryptography are imported here only (``tessera query`` never imports this module).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Protocol

from tessera.core.errors import EXIT_TIMEOUT, NotAuthorized, TesseraError, printable
from tessera.core.peers import pins

PROTOCOL = b"tessera-pairing/1"
VERSION = 1
SPAKE_MESSAGE_BYTES = 33  # the side byte and one Ed25519 group element
MAC_BYTES = 32
MAX_NAME = 64
MAX_MESSAGE_TEXT = 200  # of an error message
MAX_ADDRESS = 256
DEFAULT_TIMEOUT = 60.0  # seconds for the whole exchange (a human types the PIN before it starts)


class MessageChannel(Protocol):
    """One connection to the other node, carrying plain dicts (frames, core/peers/frames.py, will
    carry them over the transport)."""

    def send(self, message: dict) -> None: ...

    def recv(self, timeout: float) -> dict:
        """The next message; raises TimeoutError when none came within ``timeout`` seconds."""


# --- errors ---------------------------------------------------------------------------------

class PairingError(TesseraError):
    """Pairing failed (exit 1); ``code`` is what is told to the other side."""

    code = "pairing_failed"


class PeerMisbehaved(PairingError):
    """The other node sent something the exchange does not allow."""

    code = "protocol_error"


class WrongPin(PairingError, NotAuthorized):
    """The two sides' keys differ: a wrong PIN, or a connection relayed by a third node (exit 5)."""

    code = "wrong_pin"
    exit_code = NotAuthorized.exit_code


class PairingTimeout(PairingError):
    code = "timeout"
    exit_code = EXIT_TIMEOUT


class PairingAborted(PairingError):
    """The other side stopped the pairing and said why."""

    code = "aborted"


_WRONG_PIN_HINT = "the invite is now cancelled: run `tessera peer invite` again and type its PIN exactly"
_REFUSALS: dict[str, type[pins.InviteRefused]] = {
    cls.code: cls for cls in (pins.InviteUnknown, pins.InviteExpired, pins.InviteUsed, pins.InviteCancelled)}


def _wrong_pin(message: str) -> WrongPin:
    return WrongPin(message, hint=_WRONG_PIN_HINT)


def _misbehaved(what: str) -> PeerMisbehaved:
    return PeerMisbehaved(f"the other node broke the pairing exchange: {what}",
                          hint="both nodes must run a Tessera that speaks tessera-pairing/1; nothing was added")


# --- messages -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Field:
    kind: type
    size: int | None = None  # exact length (bytes)
    most: int | None = None  # greatest length (text, lists)


_NAME = _Field(str, most=MAX_NAME)
_SCHEMAS: dict[str, dict[str, _Field]] = {
    "pair_start": {"version": _Field(int), "invite": _Field(str, most=64), "name": _NAME,
                   "spake": _Field(bytes, size=SPAKE_MESSAGE_BYTES)},
    "pair_reply": {"spake": _Field(bytes, size=SPAKE_MESSAGE_BYTES), "confirm": _Field(bytes, size=MAC_BYTES)},
    "pair_confirm": {"confirm": _Field(bytes, size=MAC_BYTES)},
    "pair_welcome": {"name": _NAME, "role": _Field(str, most=16), "shares": _Field(list, most=pins.MAX_SHARES),
                     "confirm": _Field(bytes, size=MAC_BYTES)},
    "pair_done": {"confirm": _Field(bytes, size=MAC_BYTES)},
    "pair_error": {"code": _Field(str, most=32), "message": _Field(str, most=MAX_MESSAGE_TEXT)},
}


def _checked(message: Any, expected: str) -> dict:
    """``message`` if it is a well-formed ``expected`` message; a pair_error from the other side
    becomes the matching typed error.

    Raises:
        PeerMisbehaved (anything else), PairingAborted / WrongPin / InviteRefused (pair_error).
    """
    if not isinstance(message, dict):
        raise _misbehaved(f"a message must be a map, got {type(message).__name__}")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _SCHEMAS:
        raise _misbehaved(f"unknown message type {printable(str(kind)[:40])!r}")
    schema = _SCHEMAS[kind]
    names = set(message) - {"type"}
    if names != set(schema):
        missing, extra = sorted(set(schema) - names), sorted(printable(str(n)[:40]) for n in names - set(schema))
        raise _misbehaved(f"{kind} " + "; ".join(
            part for part in (f"lacks {', '.join(missing)}" if missing else "",
                              f"has unknown fields {', '.join(extra[:5])}" if extra else "") if part))
    for name, spec in schema.items():
        value = message[name]
        if type(value) is not spec.kind:  # exact: True is not a version, a str subclass not a name
            raise _misbehaved(f"{kind}.{name} must be {spec.kind.__name__}, got {type(value).__name__}")
        if spec.size is not None and len(value) != spec.size:
            raise _misbehaved(f"{kind}.{name} must be {spec.size} bytes, got {len(value)}")
        if spec.most is not None and len(value) > spec.most:
            raise _misbehaved(f"{kind}.{name} is too long ({len(value)}; at most {spec.most})")
    if kind == "pair_error":
        raise _remote_error(message)
    if kind != expected:
        raise _misbehaved(f"expected {expected}, got {kind}")
    return message


def _remote_error(message: dict) -> TesseraError:
    """The typed error for a well-formed pair_error, marked ``from_peer`` (it needs no answer)."""
    said = printable(message["message"])
    code = message["code"]
    if code in _REFUSALS:
        exc = _REFUSALS[code](f"the inviting node refused: {said}")
    elif code == WrongPin.code:
        exc = _wrong_pin(f"wrong PIN: {said}")
    else:
        exc = PairingAborted(f"the other node stopped the pairing ({printable(code)}): {said}")
    exc.from_peer = True
    return exc


def _check_name(name: str) -> str:
    if not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise _misbehaved(f"a node name must be 1 to {MAX_NAME} printable characters")
    return name


def error_message(exc: BaseException) -> dict:
    """The pair_error telling the other side why this side stopped."""
    text = exc.message if isinstance(exc, TesseraError) else "pairing stopped"
    return {"type": "pair_error", "code": getattr(exc, "code", PairingError.code)[:32],
            "message": text[:MAX_MESSAGE_TEXT]}


# --- keys -----------------------------------------------------------------------------------

def transcript(*, invite_id: str, joiner_id: str, inviter_id: str, joiner_name: str,
               joiner_spake: bytes, inviter_spake: bytes) -> bytes:
    """What both sides confirm: the protocol, the invite, both node ids, the joiner's name and
    both SPAKE2 messages, each length-prefixed (4 bytes, big-endian) so no two differ only in
    where one field ends."""
    parts = (PROTOCOL, invite_id.encode(), joiner_id.encode(), inviter_id.encode(), joiner_name.encode(),
             joiner_spake, inviter_spake)
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


@dataclass(frozen=True)
class SessionKeys:
    joiner: bytes = field(repr=False)  # confirms the joiner's side
    inviter: bytes = field(repr=False)  # confirms the inviter's side and its welcome
    session: bytes = field(repr=False)  # what both sides end with


def session_keys(spake_key: bytes, transcript_bytes: bytes) -> SessionKeys:
    """HKDF-SHA256 of the SPAKE2 key, with the transcript's SHA-256 in the info: 3 x 32 bytes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = PROTOCOL + b" keys " + hashlib.sha256(transcript_bytes).digest()
    okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=None, info=info).derive(spake_key)
    return SessionKeys(okm[:32], okm[32:64], okm[64:])


def confirmation(key: bytes, label: bytes, transcript_bytes: bytes, extra: bytes = b"") -> bytes:
    """HMAC-SHA256 under ``key`` of the label, the transcript and (the welcome) its content."""
    return hmac.new(key, label + b"\0" + transcript_bytes + extra, hashlib.sha256).digest()


def _welcome_content(name: str, role: str, shares: tuple[str, ...]) -> bytes:
    parts = [name.encode(), role.encode(), *(share.encode() for share in shares)]
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def _spake_finish(spake: Any, inbound: bytes) -> bytes:
    """SPAKE2's key from the other side's message; a message that is no valid element (wrong
    side byte, off the curve, outside the group, our own reflected) is the peer misbehaving."""
    try:
        return spake.finish(inbound)
    except Exception as exc:  # SPAKEError, ValueError, AssertionError, and ed25519's NotOnCurve (a bare Exception)
        raise _misbehaved(f"its SPAKE2 message is not valid ({type(exc).__name__})") from None


# --- the two sides --------------------------------------------------------------------------

@dataclass(frozen=True)
class PairingResult:
    """Whom to add after a pairing: the other node, the name it announced, the role and shares
    of the invite, and the session key both sides derived (never printed)."""

    peer_id: str
    peer_name: str
    role: str
    shares: tuple[str, ...]
    invite_id: str
    key: bytes = field(repr=False)


class Joiner:
    """The joining side. ``start()`` gives the first message; ``receive(message)`` gives the next
    message to send (or None); ``result`` is set once paired. States: new -> started ->
    confirmed -> paired, or failed."""

    def __init__(self, *, pin: str, invite_id: str, local_id: str, remote_id: str, local_name: str,
                 entropy: Callable[[int], bytes] = os.urandom):
        from spake2 import SPAKE2_A

        pin = pins.normalize_pin(pin)  # kept by the SPAKE2 session only
        self.invite_id, self.local_id, self.remote_id = invite_id, local_id, remote_id
        self.local_name = local_name
        self.state = "new"
        self.result: PairingResult | None = None
        self._spake = SPAKE2_A(pin.encode(), idA=local_id.encode(), idB=remote_id.encode(), entropy_f=entropy)
        self._outbound = b""
        self._transcript = b""
        self._keys: SessionKeys | None = None

    def start(self) -> dict:
        if self.state != "new":
            raise PairingError("the joiner was already started")
        self._outbound = self._spake.start()
        self.state = "started"
        return {"type": "pair_start", "version": VERSION, "invite": self.invite_id, "name": self.local_name,
                "spake": self._outbound}

    def receive(self, message: Any) -> dict | None:
        try:
            if self.state == "started":
                return self._on_reply(_checked(message, "pair_reply"))
            if self.state == "confirmed":
                return self._on_welcome(_checked(message, "pair_welcome"))
            raise _misbehaved(f"a message after the pairing was {self.state}")
        except BaseException:
            self.state = "failed"
            raise

    def _on_reply(self, reply: dict) -> dict:
        spake_key = _spake_finish(self._spake, reply["spake"])
        self._transcript = transcript(invite_id=self.invite_id, joiner_id=self.local_id, inviter_id=self.remote_id,
                                      joiner_name=self.local_name, joiner_spake=self._outbound,
                                      inviter_spake=reply["spake"])
        self._keys = session_keys(spake_key, self._transcript)
        if not hmac.compare_digest(reply["confirm"], confirmation(self._keys.inviter, b"inviter", self._transcript)):
            raise _wrong_pin("wrong PIN: the inviting node's key confirmation does not match ours")
        self.state = "confirmed"
        return {"type": "pair_confirm", "confirm": confirmation(self._keys.joiner, b"joiner", self._transcript)}

    def _on_welcome(self, welcome: dict) -> dict:
        name = _check_name(welcome["name"])
        if welcome["role"] not in pins.ROLES:
            raise _misbehaved(f"unknown role {printable(welcome['role'])!r}")
        shares = welcome["shares"]
        if not all(type(s) is str and 0 < len(s) <= pins.MAX_SHARE_NAME and s.isprintable() for s in shares):
            raise _misbehaved("a share name must be 1 to 256 printable characters")
        shares = tuple(shares)
        expected = confirmation(self._keys.inviter, b"welcome", self._transcript,
                                _welcome_content(name, welcome["role"], shares))
        if not hmac.compare_digest(welcome["confirm"], expected):
            raise _misbehaved("its welcome is not confirmed by the pairing key")
        self.result = PairingResult(self.remote_id, name, welcome["role"], shares, self.invite_id, self._keys.session)
        self.state = "paired"
        return {"type": "pair_done", "confirm": confirmation(self._keys.joiner, b"done", self._transcript)}

    def abort(self, exc: BaseException) -> None:
        """Fail the pairing; a result not yet acknowledged (pair_done not sent) is withdrawn."""
        self.state, self.result = "failed", None


class Inviter:
    """The inviting side, answering one connection from ``remote_id`` at ``remote_address``.
    ``receive(message)`` gives the message to send; ``result`` is set once paired. States:
    waiting -> replied -> welcomed -> paired, or failed. The first valid pair_start spends the invite's one
    attempt; any failure after that cancels the invite, naming the remote node and address."""

    def __init__(self, conn: sqlite3.Connection, *, local_id: str, local_name: str, remote_id: str,
                 remote_address: str, clock: Callable[[], datetime] = pins.utc_now):
        self.conn, self.local_id, self.local_name, self.clock = conn, local_id, local_name, clock
        self.remote_id, self.remote_address = remote_id, remote_address[:MAX_ADDRESS]
        self.state = "waiting"
        self.result: PairingResult | None = None
        self.invite: pins.Invite | None = None  # once claimed
        self._transcript = b""
        self._keys: SessionKeys | None = None
        self._joiner_name = ""

    def receive(self, message: Any) -> dict | None:
        try:
            if self.state == "waiting":
                return self._on_start(_checked(message, "pair_start"))
            if self.state == "replied":
                return self._on_confirm(_checked(message, "pair_confirm"))
            if self.state == "welcomed":
                return self._on_done(_checked(message, "pair_done"))
            raise _misbehaved(f"a message after the pairing was {self.state}")
        except BaseException as exc:
            self.abort(exc)
            raise

    def _on_start(self, start: dict) -> dict:
        from spake2 import SPAKE2_B

        if start["version"] != VERSION:
            raise _misbehaved(f"pairing version {start['version']} (this node speaks {VERSION})")
        if not pins.INVITE_ID_PATTERN.fullmatch(start["invite"]):
            raise _misbehaved("the invite id is malformed")
        self._joiner_name = _check_name(start["name"])
        self.invite, pin = pins.claim_invite(self.conn, start["invite"], node_id=self.remote_id,
                                             address=self.remote_address, now=self.clock())
        spake = SPAKE2_B(pin.encode(), idA=self.remote_id.encode(), idB=self.local_id.encode())
        outbound = spake.start()
        spake_key = _spake_finish(spake, start["spake"])
        self._transcript = transcript(invite_id=self.invite.id, joiner_id=self.remote_id, inviter_id=self.local_id,
                                      joiner_name=self._joiner_name, joiner_spake=start["spake"],
                                      inviter_spake=outbound)
        self._keys = session_keys(spake_key, self._transcript)
        self.state = "replied"
        return {"type": "pair_reply", "spake": outbound,
                "confirm": confirmation(self._keys.inviter, b"inviter", self._transcript)}

    def _on_confirm(self, message: dict) -> dict:
        if not hmac.compare_digest(message["confirm"], confirmation(self._keys.joiner, b"joiner", self._transcript)):
            raise _wrong_pin("wrong PIN: the joining node's key confirmation does not match ours")
        invite = self.invite
        self.state = "welcomed"
        return {"type": "pair_welcome", "name": self.local_name, "role": invite.role, "shares": list(invite.shares),
                "confirm": confirmation(self._keys.inviter, b"welcome", self._transcript,
                                        _welcome_content(self.local_name, invite.role, invite.shares))}

    def _on_done(self, message: dict) -> None:
        """The joiner accepted the welcome: only now is the joiner added (the side granting
        access commits last, so a pairing the joiner refused grants nothing)."""
        if not hmac.compare_digest(message["confirm"], confirmation(self._keys.joiner, b"done", self._transcript)):
            raise _misbehaved("its pair_done is not confirmed by the pairing key")
        invite = self.invite = pins.mark_paired(self.conn, self.invite.id, now=self.clock())
        if invite.paired_at is None:
            raise pins.InviteCancelled("the invite was cancelled on the inviting node during the pairing")
        self.result = PairingResult(self.remote_id, self._joiner_name, invite.role, invite.shares, invite.id,
                                    self._keys.session)
        self.state = "paired"
        return None

    def abort(self, exc: BaseException) -> None:
        """Fail the pairing; a claimed invite is cancelled, naming the attempt (once)."""
        if self.state in ("paired", "failed"):
            return
        self.state = "failed"
        if self.invite is not None:
            reason = exc.message if isinstance(exc, TesseraError) else "the pairing stopped"
            self.invite = pins.cancel_invite(self.conn, self.invite.id, reason=reason[:MAX_MESSAGE_TEXT],
                                             node_id=self.remote_id, address=self.remote_address)


# --- running a side over a channel ----------------------------------------------------------

def run(side: Joiner | Inviter, channel: MessageChannel, *, timeout: float = DEFAULT_TIMEOUT) -> PairingResult:
    """Drive ``side`` over ``channel`` until it is paired, within ``timeout`` seconds in all.

    On failure the other side is told why (one pair_error, unless it was the one that
    stopped), the side is aborted (an inviter cancels a claimed invite) and the error raised.

    Raises:
        WrongPin, InviteRefused, PeerMisbehaved, PairingAborted, PairingTimeout.
    """
    deadline = time.monotonic() + timeout
    try:
        if isinstance(side, Joiner):
            channel.send(side.start())
        while side.result is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            message = channel.recv(remaining)
            try:
                reply = side.receive(message)
            except TesseraError as exc:
                if not getattr(exc, "from_peer", False):  # one that stopped first needs no answer
                    _tell(channel, exc)
                raise
            if reply is not None:
                channel.send(reply)
        return side.result
    except TimeoutError:
        exc = PairingTimeout(f"the other node did not answer within {timeout:g} s",
                             hint="check it is still running `tessera peer invite`/`join`, then pair again")
        side.abort(exc)
        _tell(channel, exc)
        raise exc from None
    except BaseException as exc:  # a lost connection, Ctrl-C: a claimed invite is spent all the same
        side.abort(exc)
        raise


def _tell(channel: MessageChannel, exc: BaseException) -> None:
    try:
        channel.send(error_message(exc))
    except Exception:  # the connection may be gone: the error raised here says what failed
        pass
