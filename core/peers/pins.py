"""Invites to pair and their PINs (DESIGN §11): a 6-digit PIN drawn uniformly with ``secrets``,
valid for 10 minutes and for exactly one attempt, kept in the store's ``peer_invites`` table
(component ``pairing``, core/pairing_schema.py).

The PIN is stored while the invite is open because the inviter's side of SPAKE2 needs the PIN
itself (not a hash of it); the store is 0600. It is erased when an attempt claims the invite,
and when the invite expires or is cancelled. Claiming is one ``BEGIN IMMEDIATE`` transaction,
so two joiners racing for one invite cannot both get an attempt.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tessera.core.errors import NotAuthorized, UsageError
from tessera.core.times import format_time

PIN_DIGITS = 6
INVITE_LIFETIME = timedelta(minutes=10)
ROLES = ("viewer", "editor")
MAX_SHARES = 256
MAX_SHARE_NAME = 256
INVITE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
_PIN_SEPARATORS = re.compile(r"[\s-]")


class InviteRefused(NotAuthorized):
    """An attempt named an invite that cannot be used (exit 5); ``code`` is what the inviter
    tells the joiner on the wire."""

    code = "invite_refused"
    hint = "ask the inviter for a new invite (tessera peer invite)"

    def __init__(self, message: str):
        super().__init__(message, hint=self.hint)


class InviteUnknown(InviteRefused):
    code = "invite_unknown"


class InviteExpired(InviteRefused):
    code = "invite_expired"


class InviteUsed(InviteRefused):
    code = "invite_used"


class InviteCancelled(InviteRefused):
    code = "invite_cancelled"


@dataclass(frozen=True)
class Invite:
    """One invite as stored, without its PIN."""

    id: str
    role: str
    shares: tuple[str, ...]
    created_at: str
    expires_at: str
    state: str  # open, used or cancelled
    used_by: str | None
    used_from: str | None
    paired_at: str | None
    cancelled_by: str | None  # the node id of the attempt that cancelled it (None: cancelled here)
    cancelled_from: str | None  # that attempt's address
    cancel_reason: str | None

    def expired(self, now: datetime | None = None) -> bool:
        return self.state == "open" and self.expires_at <= format_time(now or utc_now())


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_pin() -> str:
    """Six decimal digits, each of the 10**6 PINs equally likely (leading zeros kept)."""
    return f"{secrets.randbelow(10 ** PIN_DIGITS):0{PIN_DIGITS}d}"


def normalize_pin(text: str) -> str:
    """The PIN a user typed, with spaces and dashes removed (``123 456``, ``123-456``).

    Checked before any connection is made, so a typo never spends the invite's one attempt.

    Raises:
        UsageError: anything but six digits.
    """
    pin = _PIN_SEPARATORS.sub("", text or "")
    if len(pin) != PIN_DIGITS or not pin.isascii() or not pin.isdigit():
        raise UsageError("the PIN must be 6 digits", hint="type the 6 digits `tessera peer invite` printed on the inviting node")
    return pin


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint=f"use one of: {', '.join(ROLES)}")
    return role


def check_shares(shares: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The share names of an invite, checked: at most MAX_SHARES, each 1..MAX_SHARE_NAME printable characters."""
    if len(shares) > MAX_SHARES:
        raise UsageError(f"an invite names at most {MAX_SHARES} shares, not {len(shares)}", hint="share a pattern instead")
    for name in shares:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_SHARE_NAME or not name.isprintable():
            raise UsageError(f"bad share name {name!r}",
                             hint=f"a share name is 1 to {MAX_SHARE_NAME} printable characters")
    return tuple(shares)


def create_invite(conn: sqlite3.Connection, *, role: str = "viewer", shares: tuple[str, ...] | list[str] = (),
                  now: datetime | None = None) -> tuple[Invite, str]:
    """A new open invite and its PIN (shown once to the user; never logged)."""
    from tessera.core.store.db import transaction

    role, shares = check_role(role), check_shares(shares)
    now = now or utc_now()
    invite_id, pin = secrets.token_urlsafe(12), new_pin()
    with transaction(conn):
        _erase_stale_pins(conn, now)
        conn.execute("INSERT INTO peer_invites(id, pin, role, shares, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                     (invite_id, pin, role, json.dumps(list(shares)), format_time(now),
                      format_time(now + INVITE_LIFETIME)))
    return get_invite(conn, invite_id), pin


def get_invite(conn: sqlite3.Connection, invite_id: str) -> Invite | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM peer_invites WHERE id = ?", (invite_id,)).fetchone()
    return _invite(row) if row else None


def list_invites(conn: sqlite3.Connection) -> list[Invite]:
    """Every invite, newest first."""
    return [_invite(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM peer_invites ORDER BY created_at DESC, id")]


def claim_invite(conn: sqlite3.Connection, invite_id: str, *, node_id: str, address: str,
                 now: datetime | None = None) -> tuple[Invite, str]:
    """Spend the invite's one attempt on the node ``node_id`` at ``address``: the invite becomes
    ``used`` by it and its PIN is erased from the store, in one transaction; the PIN is
    returned for this attempt's SPAKE2 only.

    Raises:
        InviteUnknown, InviteExpired, InviteUsed, InviteCancelled (nothing changed).
    """
    from tessera.core.store.db import transaction

    now = now or utc_now()
    refusal: InviteRefused | None = None
    with transaction(conn):  # refusals are raised after it commits: the stale PINs stay erased
        _erase_stale_pins(conn, now)
        row = conn.execute("SELECT state, expires_at, pin FROM peer_invites WHERE id = ?", (invite_id,)).fetchone()
        state, expires_at, pin = row or (None, None, None)
        if row is None:
            refusal = InviteUnknown("no such invite on this node (the ticket is wrong or the invite was removed)")
        elif state == "used":
            refusal = InviteUsed("this invite was already used: an invite allows exactly one attempt")
        elif state == "cancelled":
            refusal = InviteCancelled("this invite was cancelled (a wrong PIN cancels it)")
        elif expires_at <= format_time(now) or pin is None:
            refusal = InviteExpired(f"this invite expired at {expires_at}")
        else:
            conn.execute("UPDATE peer_invites SET state = 'used', pin = NULL, used_by = ?, used_from = ? WHERE id = ?",
                         (node_id, address, invite_id))
    if refusal is not None:
        raise refusal
    return get_invite(conn, invite_id), pin


def mark_paired(conn: sqlite3.Connection, invite_id: str, *, now: datetime | None = None) -> Invite:
    """Record that the attempt which claimed the invite confirmed the PIN; paired_at stays None
    when the invite was cancelled meanwhile (by the user, from another process)."""
    conn.execute("UPDATE peer_invites SET paired_at = ? WHERE id = ? AND state = 'used'",
                 (format_time(now or utc_now()), invite_id))
    return get_invite(conn, invite_id)


def cancel_invite(conn: sqlite3.Connection, invite_id: str, *, reason: str, node_id: str | None = None,
                  address: str | None = None) -> Invite | None:
    """Cancel the invite (open, or used by an attempt that did not confirm), erasing its PIN;
    ``node_id``/``address`` say which attempt caused it (None: the user here). An invite
    whose attempt already paired, or already cancelled, is left as it is (the first record
    of why stays)."""
    conn.execute("UPDATE peer_invites SET state = 'cancelled', pin = NULL, cancelled_by = ?, cancelled_from = ?, "
                 "cancel_reason = ? WHERE id = ? AND paired_at IS NULL AND state != 'cancelled'",
                 (node_id, address, reason, invite_id))
    return get_invite(conn, invite_id)


def _erase_stale_pins(conn: sqlite3.Connection, now: datetime) -> None:
    """Expired invites keep no PIN."""
    conn.execute("UPDATE peer_invites SET pin = NULL WHERE pin IS NOT NULL AND expires_at <= ?", (format_time(now),))


_COLUMNS = ("id, role, shares, created_at, expires_at, state, used_by, used_from, paired_at, "
            "cancelled_by, cancelled_from, cancel_reason")


def _invite(row: tuple) -> Invite:
    values = list(row)
    values[2] = tuple(json.loads(values[2]))
    return Invite(*values)
