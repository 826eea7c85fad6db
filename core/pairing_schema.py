"""The pairing component of the store's migrations (table peer_invites; see core/store/migrations.py
and core/peers/pins.py)."""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("pairing", (
    # 1: invites to pair (DESIGN §11, docs/peers.md "Pairing by PIN"). The PIN is kept while the
    # invite is open, because the inviter's SPAKE2 needs the PIN itself; it is erased (NULL) as
    # soon as an attempt claims the invite or the invite expires or is cancelled. One attempt
    # per invite: state goes open -> used (claimed by used_by/used_from; paired_at once both
    # sides confirmed) or open -> cancelled (cancelled_by/cancelled_from: who tried, and why).
    """
    CREATE TABLE peer_invites (
        id TEXT PRIMARY KEY,
        pin TEXT,
        role TEXT NOT NULL,
        shares TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'cancelled')),
        used_by TEXT,
        used_from TEXT,
        paired_at TEXT,
        cancelled_by TEXT,
        cancelled_from TEXT,
        cancel_reason TEXT
    );
    CREATE INDEX peer_invites_state ON peer_invites(state, expires_at);
    """,
))
