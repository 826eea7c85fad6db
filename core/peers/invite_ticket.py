"""The one string ``tessera peer invite`` prints and ``tessera peer join`` takes:

    tessera:INVITE_ID:ENDPOINT_TICKET

``INVITE_ID`` names the invite on the inviting node (16 URL-safe characters, pins.INVITE_ID_PATTERN)
and ``ENDPOINT_TICKET`` is the inviting node's iroh ticket (``endpoint…``, base32: its node id,
direct addresses and relay), so one copy-paste carries both where to connect and what to ask
for. Neither part is secret (the PIN is what proves the joiner); ':' appears in neither."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.core.errors import UsageError, printable
from tessera.core.peers import pins

PREFIX = "tessera"


@dataclass(frozen=True)
class InviteTicket:
    invite_id: str
    endpoint_ticket: str

    def __str__(self) -> str:
        return f"{PREFIX}:{self.invite_id}:{self.endpoint_ticket}"


def parse(text: str) -> InviteTicket:
    """The invite ticket in ``text`` (surrounding blanks ignored).

    Raises:
        UsageError (exit 2) when it is not one; the endpoint part is checked when dialing.
    """
    parts = text.strip().split(":")
    if len(parts) != 3 or parts[0] != PREFIX or not pins.INVITE_ID_PATTERN.fullmatch(parts[1]) \
            or not parts[2].startswith("endpoint"):
        shown = printable(text.strip()[:40]) + ("..." if len(text.strip()) > 40 else "")
        raise UsageError(f"'{shown}' is not an invite ticket",
                         hint="copy the whole line `tessera peer invite` printed, starting with 'tessera:'")
    return InviteTicket(parts[1], parts[2])
