"""Sneakernet (core/peers/bundle.py, ``tessera peer export|import``): a bundle carries only what
is shared, is written 0600, files into the signer's replica, and is refused whole (nothing
written) when altered anywhere, cut short, signed by a stranger or made for another node."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from peer_sync_helpers import befriend, make_node

from tessera.core import events
from tessera.core.errors import NotAuthorized, UsageError
from tessera.core.notebook import repository
from tessera.core.peers import bundle, peer_list, replica_files, shares
from tessera.core.store.db import transaction


def tessera(home, *args):
    env = {**os.environ, "TESSERA_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True, timeout=120, env=env)


def write_bundle(node, path, items, recipient=None):
    return bundle.write(node.conn, path, items, signing_key=node.key, signer=node.node_id, name=node.name,
                        recipient=recipient)


@pytest.fixture()
def alice_bob(tmp_path):
    alice, bob = make_node(tmp_path, "alice"), make_node(tmp_path, "bob")
    befriend(alice, bob)
    repository.create(alice.conn, "ops", "Operations")
    repository.add_cell(alice.conn, "ops", "MATCH (p:Pod) RETURN p")
    repository.create(alice.conn, "secret", "SECRET-NOTEBOOK")
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(3)] + [("secret.x", {"v": "SECRET-EVENT"})])
    with transaction(alice.conn):
        shares.add(alice.conn, "notebook:ops", [bob.node_id], added_at="t")
        shares.add(alice.conn, "events:deploy.>", [shares.EVERY_PEER], added_at="t")
    return alice, bob


def test_export_and_import_through_the_cli(alice_bob, tmp_path):
    alice, bob = alice_bob
    out = tmp_path / "ops.tbundle"
    done = tessera(alice.path.parent, "peer", "export", "--to", "bob", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"SECRET" not in out.read_bytes()  # only what is shared with bob
    assert not list(tmp_path.glob(".ops.tbundle*"))  # no temporary file left
    done = tessera(bob.path.parent, "peer", "import", str(out))
    assert done.returncode == 0, done.stderr
    assert "notebook:ops (2 new items)" in done.stdout and "events:deploy.> (3 new items)" in done.stdout
    copy = replica_files.open_read_only(alice.node_id, bob.path)
    assert repository.load(copy, "ops").title == "Operations"
    assert [e.data["n"] for e in events.read(copy)] == [0, 1, 2]
    listed = json.loads(tessera(bob.path.parent, "peer", "list", "--json").stdout)
    assert [(p["name"], p["items"]) for p in listed] == [("alice", 5)]  # the items in its replica
    again = tessera(bob.path.parent, "peer", "import", str(out))  # importing twice adds nothing
    assert again.returncode == 0 and "(0 new items)" in again.stdout
    assert len(events.read(replica_files.open_read_only(alice.node_id, bob.path))) == 3


def test_a_stranger_or_another_recipient_is_refused_with_exit_5(alice_bob, tmp_path):
    alice, bob = alice_bob
    carol = make_node(tmp_path, "carol")
    out = tmp_path / "b.tbundle"
    write_bundle(alice, out, ["events:deploy.>"])
    done = tessera(carol.path.parent, "peer", "import", str(out))
    assert done.returncode == 5 and f"tessera peer add {alice.node_id}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not replica_files.replica_path(alice.node_id, carol.path).exists()
    with transaction(carol.conn):
        peer_list.add(carol.conn, alice.node_id, "alice", subscribe=True, added_at="t")
    write_bundle(alice, out, ["events:deploy.>"], recipient=bob.node_id)
    with pytest.raises(NotAuthorized, match="made for"):
        bundle.import_bundle(carol.conn, out, local_node_id=carol.node_id)


def test_a_bundle_altered_at_any_byte_or_cut_short_writes_nothing(alice_bob, tmp_path):
    alice, bob = alice_bob
    out = tmp_path / "b.tbundle"
    write_bundle(alice, out, ["notebook:ops", "events:deploy.>"], recipient=bob.node_id)
    good = out.read_bytes()
    bad = tmp_path / "bad.tbundle"
    for position in range(len(good)):  # every byte: manifest, headers, pages
        altered = bytearray(good)
        altered[position] ^= 0x01
        bad.write_bytes(bytes(altered))
        with pytest.raises(bundle.BundleRefused):
            bundle.import_bundle(bob.conn, bad, local_node_id=bob.node_id)
    for length in (0, 3, 10, len(good) // 2, len(good) - 1):
        bad.write_bytes(good[:length])
        with pytest.raises(bundle.BundleRefused):
            bundle.import_bundle(bob.conn, bad, local_node_id=bob.node_id)
    bad.write_bytes(good + good[-20:])
    with pytest.raises(bundle.BundleRefused):
        bundle.import_bundle(bob.conn, bad, local_node_id=bob.node_id)
    copy = replica_files.open_read_only(alice.node_id, bob.path)
    assert copy is None or copy.execute("SELECT count(*) FROM sync_cursors").fetchone()[0] == 0
    done = tessera(bob.path.parent, "peer", "import", str(bad))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    bundle.import_bundle(bob.conn, out, local_node_id=bob.node_id)  # the untouched one still imports


def test_export_refuses_what_is_not_shared(alice_bob, tmp_path):
    alice, bob = alice_bob
    with pytest.raises(UsageError, match="not shared"):
        bundle.export_items(alice.conn, ["secret"], bob.node_id)
    assert bundle.export_items(alice.conn, None, bob.node_id) == ["events:deploy.>", "notebook:ops"]
    assert bundle.export_items(alice.conn, None, None) == ["events:deploy.>"]
    done = tessera(alice.path.parent, "peer", "export", "--share", "secret", "-o", str(tmp_path / "x"))
    assert done.returncode == 2 and "tessera peer share notebook:secret" in done.stderr
    assert not (tmp_path / "x").exists()
    done = tessera(bob.path.parent, "peer", "export", "-o", str(tmp_path / "x"))
    assert done.returncode == 2 and "nothing is shared" in done.stderr
