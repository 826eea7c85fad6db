"""A process filing pages into a replica (core/peers/pages.build + replica.apply, as a pull does)
is SIGKILLed at random points; each time the replica holds exactly the events up to its stored
cursor (page and cursor in one transaction), and a resume completes it with no duplicate and no gap."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

from peer_sync_helpers import make_node

from tessera.core import events
from tessera.core.peers import replica_files

CHILD = """
import sys
from tessera.core import node_key
from tessera.core.peers import pages, replica
from tessera.core.store.db import connect

sender = connect(sys.argv[1])
key = node_key.signing_key(sender.path, create=False)
node_id, receiver_store, item = sys.argv[2], sys.argv[3], sys.argv[4]
target = replica.open_for_write(node_id, receiver_store)
while True:
    cursor = replica.cursors(target).get(item, 0)
    page = pages.build(sender, item, cursor, limit=25, signing_key=key)
    replica.apply(target, node_id, page)
    if not page["more"]:
        break
print("done", flush=True)
"""
ITEM = "events:deploy.>"


def stored(alice, bob):
    """(cursor, the replica's events as dicts), read as a query would, or (0, []) before it exists."""
    copy = replica_files.open_read_only(alice.node_id, bob.path)
    if copy is None:
        return 0, []
    try:
        row = copy.execute("SELECT cursor FROM sync_cursors WHERE item = ?", (ITEM,)).fetchone()
        return (row[0] if row else 0), [e.as_dict() for e in events.read(copy)]
    except Exception:  # the file is there but its schema is not made yet
        return 0, []
    finally:
        copy.close()


def test_a_killed_apply_resumes_with_no_duplicate_and_no_gap(tmp_path):
    alice, bob = make_node(tmp_path, "alice"), make_node(tmp_path, "bob")
    entries = [("deploy.web" if i % 3 else "audit.x", {"n": i}) for i in range(3000)]
    events.append_many(alice.conn, entries)
    expected = [e for e in events.read(alice.conn) if events.subject_matches("deploy.>", e.subject)]
    args = [sys.executable, "-c", CHILD, str(alice.path), alice.node_id, str(bob.path), ITEM]
    rng = random.Random(14)
    kills = 0
    for _ in range(4):
        before, _ = stored(alice, bob)
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while child.poll() is None and stored(alice, bob)[0] <= before and time.monotonic() < deadline:
            time.sleep(0.005)  # polling for progress, not waiting a fixed time
        time.sleep(rng.uniform(0, 0.05))  # a random point within the next pages
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(timeout=60)
        cursor, have = stored(alice, bob)
        # exactly the matching events up to the stored cursor: never a page without its cursor
        assert have == [e.as_dict() for e in expected if e.position <= cursor]
    assert kills >= 1
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "done" in done.stdout, done.stderr
    cursor, have = stored(alice, bob)
    assert have == [e.as_dict() for e in expected]
    assert len({(e["actor"], e["seq"]) for e in have}) == len(have)
