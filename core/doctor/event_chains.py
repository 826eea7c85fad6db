"""Check 3: every actor's event chain links up and this node's signed head holds
(core/events.verify with sign=False, on a read-only connection: doctor signs nothing and makes
no key). A broken chain names its actor and seq."""

from __future__ import annotations

from pathlib import Path

from tessera.core.doctor.check_result import FAIL, OK, SKIP, WARN, CheckResult
from tessera.core.doctor.read_only_store import open_read_only, unreadable
from tessera.core.errors import TesseraError

_BROKEN_FIX = ("tessera restore BACKUP_FILE (a backup from before the damage); `tessera events verify` "
               "repeats the finding")


def _older_log(conn) -> bool:
    """Whether the store's event log (or the meta table holding the node id) is from before this
    Tessera's schema: verify reads tables an upgrade makes."""
    from tessera.core.store.db import component_versions
    from tessera.core.store.migrations import latest_versions

    have, want = component_versions(conn), latest_versions()
    return any(have.get(name, 0) < want[name] for name in ("store", "events"))


def check_chains(store: Path) -> list[CheckResult]:
    from tessera.core import events

    check = "event chains"
    if not store.exists():
        return [CheckResult(check, SKIP, f"no store yet at {store}")]
    try:
        conn = open_read_only(store)
    except TesseraError as exc:
        return [unreadable(check, exc)]
    try:
        if _older_log(conn):
            return [CheckResult(check, WARN, "the event log's schema is older than this Tessera's: it is checked "
                                             "once the next command upgrades it", "tessera events verify")]
        local = events.local_actor(conn)
        head = events.heads(conn).get(local) if local else None
        verdict = events.verify(conn, sign=False)
    except TesseraError as exc:  # a damaged store (store integrity says more)
        return [unreadable(check, exc)]
    finally:
        conn.close()
    if not verdict.ok:
        actor = f"actor {verdict.actor}" if verdict.actor else f"this node's chain ({local})"
        return [CheckResult(check, FAIL, f"{actor} broken at seq {verdict.seq}: {verdict.problem} "
                                         f"({verdict.checked} entries before it are intact)", _BROKEN_FIX)]
    if head is not None and head.signature is None:
        return [CheckResult(check, WARN, f"{verdict.checked} events in {verdict.chains} chain(s) link up; this node's "
                                         "head is not signed yet (a log from before signed heads)", "tessera events verify")]
    chains = f"{verdict.chains} chain{'' if verdict.chains == 1 else 's'}"
    return [CheckResult(check, OK, f"{verdict.checked} events in {chains}, linked and signed")]
