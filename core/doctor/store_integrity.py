"""Check 2: the store and each peer's replica are sound files (SQLite's ``PRAGMA quick_check``,
as ``tessera events verify`` runs: it reads every page once, so it costs about one read of the
file; the slower ``integrity_check`` also cross-checks every index, see docs/doctor.md) and their
schema is the one this Tessera writes (core/store/db.component_versions against
migrations.latest_versions)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tessera.core.doctor.check_result import FAIL, OK, SKIP, WARN, CheckResult, listed, quoted
from tessera.core.doctor.read_only_store import open_read_only
from tessera.core.errors import TesseraError


def _versions(conn) -> tuple[list[str], list[str]]:
    """(components older than this Tessera's, components newer), as ``name N (this Tessera M)``."""
    from tessera.core.store.db import component_versions
    from tessera.core.store.migrations import latest_versions

    have, want = component_versions(conn), latest_versions()
    older = [f"{name} {have.get(name, 0)} < {version}" for name, version in want.items() if have.get(name, 0) < version]
    newer = [f"{name} {have[name]} > {want[name]}" for name in have if name in want and have[name] > want[name]]
    return older, newer


def check_file(check: str, path: Path, *, damaged_fix: str, migrate_fix: str) -> CheckResult:
    """One database file: quick_check, then its schema versions."""
    from tessera.core.store.db import quick_check

    try:
        conn = open_read_only(path)
    except TesseraError as exc:
        return CheckResult(check, FAIL, exc.one_line(), damaged_fix)
    try:
        try:
            problems = quick_check(conn)
            if problems:
                return CheckResult(check, FAIL, f"{path} is damaged: PRAGMA quick_check found: {listed(problems, 1)}",
                                   damaged_fix)
            older, newer = _versions(conn)
        except TesseraError as exc:  # damaged past what quick_check reads (the schema table)
            return CheckResult(check, FAIL, exc.one_line(), damaged_fix)
    finally:
        conn.close()
    if newer:
        return CheckResult(check, FAIL, f"{path} has a schema newer than this Tessera: {', '.join(newer)}",
                           "pip install --upgrade tessera")
    if older:
        return CheckResult(check, WARN, f"{path} is sound; its schema is older than this Tessera's "
                                        f"({', '.join(older)}): the next command that opens it upgrades it", migrate_fix)
    return CheckResult(check, OK, f"{path}: sound, schema current")


def check_integrity(store: Path) -> list[CheckResult]:
    """The rows of check 2: the store, then each replica (by peer name where the peer is known)."""
    from tessera.core.peers.replica_files import REPLICA_FILE, peers_dir

    if not store.exists():
        return [CheckResult("store integrity", SKIP, f"no store yet at {store}")]
    rows = [check_file("store integrity", store,
                       damaged_fix=f"tessera restore BACKUP_FILE, or move {quoted(store)} away (keep it: "
                                   f"`sqlite3 FILE .recover` may save what is left)",
                       migrate_fix="tessera events verify")]
    names = _peer_names(store)
    for replica in sorted(peers_dir(store).glob(f"*/{REPLICA_FILE}")):
        node_id = replica.parent.name
        name = names.get(node_id, node_id[:10])
        rows.append(check_file(f"replica integrity {name}", replica,
                               damaged_fix=f"mv {quoted(replica.parent)} {quoted(str(replica.parent) + '.damaged')} "
                                           f"&& tessera peer sync {quoted(name)} --full",
                               migrate_fix=f"tessera peer sync {quoted(name)}"))
    return rows


def _peer_names(store: Path) -> dict[str, str]:
    """Node id -> peer name, read from the store ({} when it cannot be read: integrity says why)."""
    from tessera.core.peers import peer_list

    try:
        conn = open_read_only(store)
    except TesseraError:
        return {}
    try:
        return {p.node_id: p.name for p in peer_list.all_peers(conn)}
    except (TesseraError, sqlite3.Error):  # a damaged store: its own row says so
        return {}
    finally:
        conn.close()
