"""The peer list and what this node shares, through real ``tessera`` processes (cli/peer_sharing.py,
core/peers/shares.py): private by default, shares with every peer or with some, bad input refused
in one line, peer removal taking its shares and replica with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.core.errors import UsageError
from tessera.core.peers import peer_list, replica_files, shares
from tessera.core.store.db import connect, transaction

BOB = "b0" * 32
CAROL = "c0" * 32


def tessera(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True, timeout=120)


def ok(*args: str) -> str:
    proc = tessera(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def refused(code: int, *args: str) -> str:
    proc = tessera(*args)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def store() -> Path:
    return Path(os.environ["TESSERA_HOME"]) / "tessera.db"


def test_parse_item_forms():
    assert shares.parse_item("ops") == "notebook:ops"
    assert shares.parse_item("notebook:ops") == "notebook:ops"
    assert shares.parse_item("events:deploy.>") == "events:deploy.>"
    for bad in ("events:a..b", "knowledge:", "wiki:x", "no tebook", "events:>.a", "\x1b[2J"):
        with pytest.raises(UsageError):
            shares.parse_item(bad)


def test_nothing_is_granted_until_shared_and_grants_are_per_peer(tmp_path):
    conn = connect(tmp_path / "tessera.db")
    with transaction(conn):
        peer_list.add(conn, BOB, "bob", publish=True, added_at="t")
        peer_list.add(conn, CAROL, "carol", publish=True, added_at="t")
    assert shares.granted(conn, BOB) == []
    with transaction(conn):
        shares.add(conn, "notebook:ops", [BOB], added_at="t")
        shares.add(conn, "events:deploy.>", [shares.EVERY_PEER], added_at="t")
    assert shares.granted(conn, BOB) == ["events:deploy.>", "notebook:ops"]
    assert shares.granted(conn, CAROL) == ["events:deploy.>"]
    assert not shares.is_granted(conn, CAROL, "notebook:ops")


def test_add_list_share_shared_unshare_remove_through_the_cli():
    ok("notebook", "new", "ops")
    assert "added bob" in ok("peer", "add", BOB.upper(), "--name", "bob", "--publish")
    ok("peer", "add", CAROL, "--subscribe", "--role", "editor")  # name defaults to the short id
    listed = {p["name"]: p for p in json.loads(ok("peer", "list", "--json"))}
    assert listed["bob"]["direction"] == "publish" and listed["bob"]["reachable"] == "unknown"
    assert listed[CAROL[:10]]["direction"] == "subscribe" and listed[CAROL[:10]]["role"] == "editor"
    ok("peer", "add", BOB, "--subscribe")  # what is not given is kept
    bob = {p["name"]: p for p in json.loads(ok("peer", "list", "--json"))}["bob"]
    assert (bob["direction"], bob["role"]) == ("both", "viewer")

    ok("peer", "share", "ops", "--with", "bob")
    ok("peer", "share", "events:deploy.>")
    rows = {r["item"]: r for r in json.loads(ok("peer", "shared", "--json"))}
    assert rows["notebook:ops"]["with"] == ["bob"] and rows["notebook:ops"]["items"] == 1
    assert rows["events:deploy.>"]["with"] == ["*"]
    assert "every peer" in ok("peer", "shared")

    # unsharing with one peer what every peer gets would change nothing: refused, nothing changed
    refused(2, "peer", "unshare", "events:deploy.>", "--with", "bob")
    ok("peer", "unshare", "ops", "--with", "bob")
    assert [r["item"] for r in json.loads(ok("peer", "shared", "--json"))] == ["events:deploy.>"]

    ok("peer", "share", "ops", "--with", "bob")
    replica = replica_files.replica_path(BOB, store())
    replica.parent.mkdir(parents=True)
    replica.write_bytes(b"")
    assert "removed bob" in ok("peer", "remove", "bob")
    assert not replica.parent.exists()
    conn = connect(store())
    assert peer_list.get(conn, BOB) is None
    assert shares.grants(conn) == {"events:deploy.>": ["*"]}  # its own share went with it, '*' stays


def test_bad_input_is_one_escaped_line_with_a_typed_exit():
    assert "tessera notebook list" in refused(2, "peer", "share", "nope")
    assert "\\x1b" in refused(2, "peer", "share", "no\x1btebook")
    assert "not a node id" in refused(2, "peer", "add", "abc")
    refused(2, "peer", "add", BOB, "--role", "admin")
    assert "\\x1b" in refused(2, "peer", "add", BOB, "--name", "ev\x1bil")
    assert "\\x1b" in refused(2, "peer", "remove", "ev\x1bil")
    refused(2, "peer", "share", "events:a..b")
    ok("peer", "add", BOB, "--name", "bob")
    assert "another peer" in refused(2, "peer", "add", CAROL, "--name", "bob")
    mine = ok("peer", "id").strip()
    assert "own" in refused(2, "peer", "add", mine)
    refused(2, "peer", "unshare", "ops")  # not shared


def test_list_says_reachable_from_the_last_sync():
    ok("peer", "add", BOB, "--name", "bob", "--subscribe")
    ok("peer", "add", CAROL, "--name", "carol", "--subscribe")
    conn = connect(store())
    with transaction(conn):
        peer_list.record_sync(conn, BOB, when="2026-12-01T10:00:00.000Z")
        peer_list.record_sync(conn, CAROL, when="x", error="connect timed out")
    listed = {p["name"]: p for p in json.loads(ok("peer", "list", "--json"))}
    assert listed["bob"]["reachable"] == "yes" and listed["bob"]["last_sync"] == "2026-12-01T10:00:00.000Z"
    assert listed["carol"]["reachable"] == "no: connect timed out"
    table = ok("peer", "list")
    assert "no: connect timed out" in table and "never" in table


def test_peers_and_share_items_complete():
    from test_cli_completion import bash_complete

    ok("notebook", "new", "ops")
    ok("peer", "add", BOB, "--name", "bob", "--publish")
    ok("peer", "share", "events:deploy.>")
    assert bash_complete("tsr peer remove ") == ["bob"]
    assert bash_complete("tsr peer share ops --with b") == ["bob"]
    assert bash_complete("tsr peer share ") == ["notebook:ops", "events:deploy.>", "events:"]
    assert bash_complete("tsr peer export -o x --to ") == ["bob"]
