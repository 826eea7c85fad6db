"""The transfer figures of a real pull (core/peers/sync_dial.py records them, peers migration 3)
and the status cell's rate from them: two data homes, `tessera serve` on loopback, `peer sync`."""

from __future__ import annotations

import json

from tests.test_peer_serve import homes, node_id, paired, procs, store, tessera  # noqa: F401 - fixtures

from tessera.core.notebook.cells import CellContext, run_cell
from tessera.core.peers import peer_list


def test_a_pull_records_the_bytes_it_received_and_the_status_cell_shows_the_rate(procs, homes):  # noqa: F811
    alice, bob = homes
    paired(procs, alice, bob)
    for n in range(20):
        assert tessera(alice, "events", "publish", f"k8s.deploy.web{n}", json.dumps({"n": n, "pad": "x" * 200})).returncode == 0
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    conn = store(bob)
    try:
        assert peer_list.transfers(conn) == {}
        pulled = tessera(bob, "peer", "sync")
        assert pulled.returncode == 0, pulled.stderr
        received, seconds = peer_list.transfers(conn)[node_id(alice)]
        assert received > 20 * 200 and seconds > 0  # the 20 events' pages came through the counted stream
        rows = run_cell({"type": "status", "source": "peers", "number": 1}, CellContext(conn, notebook="nb")).rows
        (row,) = rows
        assert row["name"] == "alice" and row["state"] == "reachable"
        assert row["detail"].endswith("/s") and " · " in row["detail"]
    finally:
        conn.close()
