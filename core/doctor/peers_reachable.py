"""Check 5: each peer this node subscribes or publishes to answers a hello and a ping over the
transport (core/peers/reachability.py) within the timeout. One subscribed to that does not
answer fails (its shares cannot be pulled); one only published to is a warning (it dials this
node to pull, it need not serve). No peers: ok."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tessera.core.doctor.check_result import FAIL, OK, WARN, CheckResult, quoted
from tessera.core.doctor.read_only_store import open_read_only, unreadable
from tessera.core.errors import TesseraError


def _row(result) -> CheckResult:
    peer = result.peer
    check = f"peer {peer.name}"
    if result.reachable:
        return CheckResult(check, OK, f"answered hello and ping in {result.rtt_ms:.0f} ms")
    error = result.error
    fix = getattr(error, "fix", "") or f"on {peer.name}'s machine: tessera serve"
    if not peer.subscribe:  # it pulls from this node: it need not be serving for that
        return CheckResult(check, WARN, f"{error.one_line()}; this node only publishes to it (it pulls from here)", fix)
    return CheckResult(check, FAIL, error.one_line(), fix)


def check_peers(store: Path, timeout: float) -> list[CheckResult]:
    from tessera.core import node_key
    from tessera.core.peers import peer_list, reachability
    from tessera.core.store.db import component_versions

    if not store.exists():
        return [CheckResult("peers", OK, "no peers")]
    try:
        conn = open_read_only(store)
    except TesseraError as exc:
        return [unreadable("peers", exc)]
    try:
        try:
            if component_versions(conn).get("peers", 0) == 0:  # a store from before peers
                return [CheckResult("peers", OK, "no peers")]
            peers = [p for p in peer_list.all_peers(conn) if p.subscribe or p.publish]
        except TesseraError as exc:
            return [unreadable("peers", exc)]
        if not peers:
            return [CheckResult("peers", OK, "no peers")]
        if not node_key.exists(store):
            # dialing would make a new key: a new identity no peer knows
            return [CheckResult("peers", FAIL, f"the node key {node_key.key_path(store)} is missing: peers know this node by it",
                                f"restore {quoted(node_key.key_path(store))} from a backup (tessera restore BACKUP_FILE)")]
        dialled = [p for p in peers if p.address]
        try:
            probed = asyncio.run(reachability.probe_all(conn, dialled, timeout=timeout)) if dialled else []
        except TesseraError as exc:  # no endpoint could be bound
            return [CheckResult("peers", FAIL, exc.one_line(), exc.hint or "free a UDP port, then run tessera doctor again")]
        results = {r.peer.node_id: r for r in probed}
        return [_row(results[p.node_id]) if p.node_id in results else
                CheckResult(f"peer {p.name}", WARN, "no address known yet: it has not connected to this node since pairing",
                            f"on {p.name}'s machine: tessera peer sync")
                for p in peers]
    finally:
        conn.close()
