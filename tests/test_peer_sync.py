"""The pull against the server side, over an in-memory channel with real stores
(core/peers/sync.py, requests.py, pages.py, replica.py, page_signing.py): notebooks and events
both ways, every tampering refused with nothing written, resumption without duplicate or gap,
authorization on every request, and nothing unshared in any frame sent."""

from __future__ import annotations

import json

import pytest
from peer_sync_helpers import befriend, make_node, pull

from tessera.core import events
from tessera.core.notebook import repository
from tessera.core.peers import frames, page_signing, pages, peer_list, replica, replica_files, requests, shares, sync
from tessera.core.store.db import transaction


def share(node, item, with_node=None):
    with transaction(node.conn):
        shares.add(node.conn, item, [with_node.node_id if with_node else shares.EVERY_PEER], added_at="t")


@pytest.fixture()
def alice_bob(tmp_path):
    alice, bob = make_node(tmp_path, "alice"), make_node(tmp_path, "bob")
    befriend(alice, bob)
    return alice, bob


def replica_of(puller, sender):
    return replica_files.open_read_only(sender.node_id, puller.path)


def own_events(node, pattern):
    actor = events.local_actor(node.conn)
    return [e.as_dict() for e in events.read(node.conn, pattern=pattern) if e.actor == actor]


def test_notebooks_and_events_flow_both_ways(alice_bob):
    alice, bob = alice_bob
    repository.create(alice.conn, "ops", "Operations")
    repository.add_cell(alice.conn, "ops", "MATCH (p:Pod) RETURN p.name")
    events.append_many(alice.conn, [("deploy.web", {"n": i, "s": "é"}) for i in range(30)] + [("audit.login", {"u": "x"})])
    repository.create(bob.conn, "notes", "Bob's")
    events.append_many(bob.conn, [("alerts.disk", {"pct": 91.5})])
    share(alice, "notebook:ops", bob)
    share(alice, "events:deploy.>")
    share(bob, "notebook:notes")
    share(bob, "events:>", alice)

    report, _ = pull(bob, alice)
    assert report.ok, report.error
    line = sync.report_line(report)
    assert line["status"] == "ok" and line["peer"] == "alice" and line["node_id"] == alice.node_id
    assert line["shares"]["events:deploy.>"]["items"] == 30 and line["items"] == 30 + 2
    json.dumps(line)
    copy = replica_of(bob, alice)
    nb = repository.load(copy, "ops")
    assert nb.title == "Operations" and [c["source"] for c in nb.cells()] == ["MATCH (p:Pod) RETURN p.name"]
    assert [e.as_dict() for e in events.read(copy)] == own_events(alice, "deploy.>")  # audit.* is not shared
    assert peer_list.get(bob.conn, alice.node_id).last_sync is not None

    report, _ = pull(alice, bob)
    assert report.ok, report.error
    copy = replica_of(alice, bob)
    assert [n["name"] for n in repository.list_notebooks(copy)] == ["notes"]
    # events:> carries bob's events but not his notebooks' change events (they hold notebook content)
    assert [e.as_dict() for e in events.read(copy)] == [e for e in own_events(bob, ">") if not e["subject"].startswith("notebook.")]
    assert [e.subject for e in events.read(copy)] == ["alerts.disk"]


def test_a_second_pull_brings_only_what_is_new_and_follows_compaction_and_renames(alice_bob):
    alice, bob = alice_bob
    repository.create(alice.conn, "ops")
    share(alice, "notebook:ops")
    share(alice, "events:>")
    assert pull(bob, alice)[0].ok
    for i in range(repository.COMPACT_AFTER + 5):  # compacts at the sender: a full-state update with a larger id
        repository.add_cell(alice.conn, "ops", f"cell {i}")
    report, _ = pull(bob, alice)
    assert report.ok, report.error
    copy = replica_of(bob, alice)
    assert [c["source"] for c in repository.load(copy, "ops").cells()] == [c["source"] for c in repository.load(alice.conn, "ops").cells()]
    before = len(events.read(copy))
    events.append(alice.conn, "deploy.api", {"v": 2})
    report, _ = pull(bob, alice)
    assert report.shares["events:>"].items == 1 and len(events.read(replica_of(bob, alice))) == before + 1
    assert report.shares["notebook:ops"].items == 0
    repository.rename(alice.conn, "ops", "runbook")  # the share follows the rename, and so does the replica
    assert shares.granted(alice.conn, bob.node_id) == ["events:>", "notebook:runbook"]
    report, _ = pull(bob, alice)
    assert report.ok, report.error
    copy = replica_of(bob, alice)
    assert [n["name"] for n in repository.list_notebooks(copy)] == ["runbook"]
    assert len(repository.load(copy, "runbook").cells()) == repository.COMPACT_AFTER + 5


def _page_answer(tamper):
    """Apply ``tamper`` to the first page the server sends."""
    def hook(reply, index):
        return tamper(reply) if reply.get("type") == "page" and index == 1 else reply
    return hook


def _flip_event_byte(page):
    items = pages.items_of(page)
    event = dict(items[0])
    event["data"] = {**event["data"], "n": event["data"]["n"] + 1}  # one digit of its data
    return {**page, "items": pages.pack_items([event, *items[1:]])}


def _flip_signature(page):
    signature = bytearray(page["signature"])
    signature[0] ^= 1
    return {**page, "signature": bytes(signature)}


def _drop_signature(page):
    return {k: v for k, v in page.items() if k != "signature"}


@pytest.mark.parametrize("tamper", [_flip_event_byte, _flip_signature, _drop_signature], ids=["event-data", "signature", "no-signature"])
def test_a_page_tampered_in_flight_is_refused_and_nothing_is_written(alice_bob, tamper):
    alice, bob = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(5)])
    share(alice, "events:deploy.>")
    report, _ = pull(bob, alice, tamper=_page_answer(tamper))
    assert not report.ok and report.exit_code == 1, report
    assert sync.report_line(report)["status"] == "error"
    copy = replica_of(bob, alice)
    assert copy.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert replica.cursors(copy) == {}
    assert peer_list.get(bob.conn, alice.node_id).last_error  # reported in the peer list too
    assert pull(bob, alice)[0].ok  # an honest pull afterwards files it all
    assert len(events.read(replica_of(bob, alice))) == 5


def test_a_signed_page_holding_another_actors_event_is_refused(alice_bob, tmp_path):
    alice, bob = alice_bob
    carol = make_node(tmp_path, "carol")
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(3)])
    events.append_many(carol.conn, [("deploy.web", {"n": 9})])
    carols = own_events(carol, ">")[0]
    share(alice, "events:deploy.>")

    def forge(page):  # alice (who holds her key) slips carol's genuine event into her page
        return page_signing.signed({**page, "items": pages.pack_items([*pages.items_of(page), carols])}, alice.key)

    report, _ = pull(bob, alice, tamper=_page_answer(forge))
    assert not report.ok and "actor" in report.error
    assert replica_of(bob, alice).execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_a_replayed_or_skipping_page_is_refused(alice_bob):
    alice, bob = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(10)])
    first = pages.build(alice.conn, "events:deploy.>", 0, limit=4, signing_key=alice.key)
    second = pages.build(alice.conn, "events:deploy.>", first["cursor_to"], limit=4, signing_key=alice.key)
    copy = replica.open_for_write(alice.node_id, bob.path)
    with pytest.raises(replica.PageRefused, match="missing"):
        replica.apply(copy, alice.node_id, second)  # a gap
    assert replica.apply(copy, alice.node_id, first) == 4
    with pytest.raises(replica.PageRefused, match="duplicate"):
        replica.apply(copy, alice.node_id, first)
    assert replica.apply(copy, alice.node_id, second) == 4
    assert replica.cursors(copy) == {"events:deploy.>": second["cursor_to"]}
    with pytest.raises(replica.PageRefused, match="not signed"):
        replica.apply(copy, bob.node_id, pages.build(alice.conn, "events:deploy.>", second["cursor_to"], signing_key=alice.key))



@pytest.fixture
def pages_of_1000(monkeypatch):
    """Pulls ask for pages of 1000 items (the most is pages.MAX_LIMIT), so a few thousand events
    make several pages."""
    monkeypatch.setattr(sync, "PAGE_LIMIT", 1000)


def test_a_pull_racing_a_subscription_files_each_item_once(alice_bob, pages_of_1000):
    """serve's live subscription and a `peer sync` may file the same pages into one replica: the
    pull takes what the subscription filed meanwhile as already there, not as a refused
    duplicate, and nothing is stored twice."""
    alice, bob = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(1500)])
    share(alice, "events:deploy.>")
    subscription = replica.open_for_write(alice.node_id, bob.path)

    def subscription_files_ahead(item, added, cursor):  # between the pull's first and second page
        if cursor == 1000 and replica.cursors(subscription)[item] == 1000:
            pushed = pages.build(alice.conn, item, cursor, limit=200, signing_key=alice.key)
            assert replica.apply(subscription, alice.node_id, pushed, overlap=True) == 200

    report, _ = pull(bob, alice, on_page=subscription_files_ahead)
    assert report.ok, report.error
    assert report.shares["events:deploy.>"].items == 1300
    assert [e.as_dict() for e in events.read(replica_of(bob, alice))] == own_events(alice, "deploy.>")


def test_an_interrupted_pull_resumes_without_duplicate_or_gap(alice_bob, pages_of_1000):
    alice, bob = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(2500)])
    share(alice, "events:deploy.>")
    report, _ = pull(bob, alice, drop_after=3)  # shares, two pages of 1000, then the connection drops
    assert not report.ok and report.shares["events:deploy.>"].items == 2000
    copy = replica_of(bob, alice)
    assert len(events.read(copy)) == 2000
    report, _ = pull(bob, alice)
    assert report.ok and report.shares["events:deploy.>"].items == 500
    assert [e.as_dict() for e in events.read(replica_of(bob, alice))] == own_events(alice, "deploy.>")


def test_the_next_page_is_asked_for_before_a_page_is_filed_and_a_refused_page_stops_there(alice_bob, pages_of_1000, tmp_path,
                                                                                         monkeypatch):
    """The puller pipelines (the sender builds page n+1 while page n is checked and stored); a
    page refused with the next request already sent leaves the pages before it, nothing after."""
    alice, bob = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(2500)])
    share(alice, "events:deploy.>")
    pulls_sent, pulls_sent_when_filing = [0], []
    real_apply, real_make = replica.apply, sync.message_types.make

    def apply(target, sender, page, **options):
        pulls_sent_when_filing.append(pulls_sent[0])
        return real_apply(target, sender, page, **options)

    def make(kind, /, **fields):
        pulls_sent[0] += kind == "pull"
        return real_make(kind, **fields)

    monkeypatch.setattr(replica, "apply", apply)
    monkeypatch.setattr(sync.message_types, "make", make)
    report, _ = pull(bob, alice)
    assert report.ok and report.items == 2500 and report.shares["events:deploy.>"].pages == 3
    assert pulls_sent_when_filing == [2, 3, 3]  # page n is filed once page n+1 is asked for; nothing past the last

    carol = make_node(tmp_path, "carol")
    befriend(alice, carol)
    first_page = pages.build(alice.conn, "events:deploy.>", 0, limit=1000, signing_key=alice.key)
    second_page_altered = lambda reply, index: _flip_event_byte(reply) if index == 2 else reply  # noqa: E731
    report, _ = pull(carol, alice, tamper=second_page_altered)
    assert not report.ok and report.exit_code == 1 and "not signed" in report.error, report.error
    copy = replica_of(carol, alice)
    assert len(events.read(copy)) == 1000 and replica.cursors(copy) == {"events:deploy.>": first_page["cursor_to"]}
    report, _ = pull(carol, alice)
    assert report.ok and report.shares["events:deploy.>"].items == 1500
    assert [e.as_dict() for e in events.read(replica_of(carol, alice))] == own_events(alice, "deploy.>")


def test_a_pull_of_many_pages_keeps_under_the_peers_rate_limit(alice_bob, monkeypatch):
    """serve refuses a peer's requests past 20 a second (bursts of 40) and closes; a pull of more
    pages than that paces itself instead of being cut off half way."""
    from tessera.core.peers.rate_limit import PeerRateLimiter

    alice, bob = alice_bob
    monkeypatch.setattr(sync, "PAGE_LIMIT", 10)  # 60 pages, 61 requests, from a small store
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(600)])
    share(alice, "events:deploy.>")
    report, _ = pull(bob, alice, limiter=PeerRateLimiter())
    assert report.ok, report.error
    assert report.items == 600 and report.shares["events:deploy.>"].pages == 60


def test_a_full_pull_rebuilds_and_a_failed_one_leaves_the_old_replica(alice_bob, pages_of_1000):
    alice, bob = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"n": i}) for i in range(1500)])
    share(alice, "events:deploy.>")
    assert pull(bob, alice)[0].ok
    copy = replica.open_for_write(alice.node_id, bob.path)
    copy.execute("DELETE FROM events WHERE seq = 7")  # damaged locally: a full pull repairs it
    copy.close()
    report, _ = pull(bob, alice, full=True, drop_after=2)  # shares and one page, then the connection drops
    assert not report.ok
    assert len(events.read(replica_of(bob, alice))) == 1499  # the old replica, whole, not half of the new one
    report, _ = pull(bob, alice, full=True)
    assert report.ok and report.shares["events:deploy.>"].items == 1500
    assert [e.as_dict() for e in events.read(replica_of(bob, alice))] == own_events(alice, "deploy.>")


def test_nothing_unshared_is_in_any_frame_sent(alice_bob, tmp_path):
    alice, bob = alice_bob
    repository.create(alice.conn, "secret", "SECRET-TITLE-42")
    repository.add_cell(alice.conn, "secret", "SECRET-CELL-42")
    events.append_many(alice.conn, [("secret.x", {"v": "SECRET-EVENT-42"}), ("deploy.web", {"v": "ok"})])
    repository.create(alice.conn, "ops")
    share(alice, "notebook:ops", bob)
    share(alice, "events:deploy.>", bob)
    report, wire = pull(bob, alice)
    assert report.ok
    assert sorted(report.shares) == ["events:deploy.>", "notebook:ops"]
    for frame in wire.sent:
        assert b"SECRET" not in frame and b"secret" not in frame

    # asking for it anyway: one not_shared error, and still none of its bytes
    from peer_sync_helpers import refused_pull

    refusal, wire = refused_pull(alice, bob, "notebook:secret")
    assert refusal.code == "not_shared" and "tessera peer share notebook:secret --with" in refusal.fix
    assert len(wire.sent) == 1 and b"SECRET-CELL" not in wire.sent[0]
    refusal, wire = refused_pull(alice, bob, "events:secret.>")
    assert refusal.code == "not_shared" and b"SECRET-EVENT" not in wire.sent[0]

    # all of alice's events: notebook change events (which hold titles and cell sources) stay out
    share(alice, "events:>", bob)
    report, wire = pull(bob, alice)
    assert report.ok and report.shares["events:>"].items == 1  # secret.x (deploy.web came with events:deploy.>)
    for frame in wire.sent:
        assert b"SECRET-CELL" not in frame and b"SECRET-TITLE" not in frame
    share(alice, "events:notebook.ops.>", bob)  # named explicitly: then they go
    report, _ = pull(bob, alice)
    assert report.shares["events:notebook.ops.>"].items == 1

    carol = make_node(tmp_path, "carol")  # not a peer of alice's at all
    answer = requests.answer(alice.conn, carol.node_id, {"type": "shares"}, alice.key)
    assert answer["type"] == "error" and answer["code"] == "unknown_peer" and "--publish" in answer["fix"]


def test_authorization_is_checked_on_every_request(alice_bob):
    alice, bob = alice_bob
    share(alice, "events:>", bob)
    events.append(alice.conn, "a.b", {})
    pull_request = {"type": "pull", "share": "events:>", "cursor": 0, "limit": 10}
    assert requests.answer(alice.conn, bob.node_id, pull_request, alice.key)["type"] == "page"
    with transaction(alice.conn):
        peer_list.add(alice.conn, bob.node_id, "bob", publish=False, subscribe=True, added_at="t")
    assert requests.answer(alice.conn, bob.node_id, pull_request, alice.key)["code"] == "not_authorized"
    with transaction(alice.conn):
        peer_list.remove(alice.conn, bob.node_id)
    assert requests.answer(alice.conn, bob.node_id, pull_request, alice.key)["code"] == "unknown_peer"


def test_pages_keep_to_their_limits_and_are_signed_canonically(alice_bob):
    alice, bob = alice_bob
    big = "x" * 300_000
    events.append_many(alice.conn, [("blob.x", {"b": big}) for _ in range(8)] + [("small.x", {}) for _ in range(pages.MAX_LIMIT + 500)])
    page = pages.build(alice.conn, "events:blob.>", 0, limit=1000, signing_key=alice.key)
    assert 1 <= len(pages.items_of(page)) <= 4 and page["more"]
    assert len(frames.encode(page)) < 2 * pages.PAGE_BYTES
    page = pages.build(alice.conn, "events:small.>", 0, limit=pages.MAX_LIMIT + 1, signing_key=alice.key)
    assert len(pages.items_of(page)) == pages.MAX_LIMIT and page["more"]
    assert page_signing.valid(page, alice.node_id) and not page_signing.valid(page, bob.node_id)
    reordered = dict(reversed(list(page.items())))  # key order is not part of what is signed
    assert page_signing.canonical(reordered) == page_signing.canonical(page)
    assert page_signing.canonical(page).startswith(b"tessera-page/1\0")
    # the items travel packed, and the signature covers those bytes as they are: the same items
    # packed otherwise (keys in another order) are not what was signed, nor is one byte changed
    repository.create(alice.conn, "ops", "T")
    for built in (page, pages.build(alice.conn, "notebook:ops", 0, signing_key=alice.key)):
        assert type(built["items"]) is bytes
        assert page_signing.canonical(built, inner_sorted=True) == page_signing.canonical(built)
    items = pages.items_of(page)
    assert items[0]["seq"] == 9 and items[0]["subject"] == "small.x"
    shuffled = {**page, "items": pages.pack_items([dict(reversed(list(i.items()))) for i in items])}
    assert shuffled["items"] != page["items"] and not page_signing.valid(shuffled, alice.node_id)
    flipped = bytearray(page["items"])
    flipped[len(flipped) // 2] ^= 1
    assert not page_signing.valid({**page, "items": bytes(flipped)}, alice.node_id)
    assert pages.latest_cursor(alice.conn, "events:small.>") == events.last_position(alice.conn)


def test_a_replica_is_private_and_has_no_key_or_actor_of_its_own(alice_bob):
    import stat

    alice, bob = alice_bob
    events.append(alice.conn, "a.b", {})
    share(alice, "events:>")
    assert pull(bob, alice)[0].ok
    path = replica_files.replica_path(alice.node_id, bob.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert not list(path.parent.glob("*.key"))
    copy = replica_of(bob, alice)
    assert events.local_actor(copy) is None


def test_a_notebook_removed_and_made_again_reaches_the_peer_under_its_new_id(alice_bob):
    alice, bob = alice_bob
    repository.create(alice.conn, "ops", "first")
    for i in range(3):
        repository.add_cell(alice.conn, "ops", f"old {i}")
    share(alice, "notebook:ops")
    assert pull(bob, alice)[0].ok
    repository.remove(alice.conn, "ops")
    repository.create(alice.conn, "ops", "second")  # update ids are never reused (notebooks schema v3)
    repository.add_cell(alice.conn, "ops", "new")
    report, _ = pull(bob, alice)
    assert report.ok and report.shares["notebook:ops"].items == 2
    copy = replica_of(bob, alice)
    nb = repository.load(copy, "ops")
    assert nb.title == "second" and [c["source"] for c in nb.cells()] == ["new"]
    assert nb.id == repository.load(alice.conn, "ops").id


def _forged(alice, item, cursor_from, cursor_to, items):
    """A page alice herself signs (a broken or malicious sender: the signature holds)."""
    page = {"type": "page", "share": item, "cursor_from": cursor_from, "cursor_to": cursor_to, "more": False,
            "items": pages.pack_items(items)}
    return page_signing.signed(page, alice.key)


def _event(actor, seq, prev, data):
    fields = {"seq": seq, "id": f"id-{actor[:4]}-{seq}-{data}", "time": "2026-12-01T00:00:00.000Z", "subject": "deploy.web",
              "type": "event", "actor": actor, "correlation": "c", "data": {"n": data}, "prev_hash": prev}
    fields["hash"] = events.entry_hash(prev, seq, fields["id"], fields["time"], fields["subject"], fields["type"],
                                       actor, "c", json.dumps({"n": data}, separators=(",", ":")))
    return fields


def test_signed_packed_items_that_are_not_plain_data_are_refused_and_nothing_is_written(alice_bob):
    """A page's items travel as one packed array that the frame check does not walk: what it
    would refuse in a frame (extension types, msgpack Timestamps, trailing bytes, not an array)
    is refused when the page is filed, signature valid or not, and a bytes key is a missing field."""
    import msgpack

    alice, bob = alice_bob
    copy = replica.open_for_write(alice.node_id, bob.path)
    good = _event("ab" * 16, 1, events.GENESIS, 1)
    packed = pages.pack_items([good])
    bytes_keys = {k.encode(): v for k, v in good.items()}
    for items, reason in ((msgpack.packb([{**good, "data": {"at": msgpack.Timestamp(1, 0)}}]), "max_ext_len"),
                          (msgpack.packb([msgpack.ExtType(5, b"x")]), "max_ext_len"),
                          (packed + b"\x00", "ExtraData"), (msgpack.packb({"a": 1}), "not an array"),
                          (b"\xc1", "not one msgpack array"),
                          (msgpack.packb([bytes_keys], use_bin_type=True), "lacks"),
                          ([good], "not packed bytes")):
        page = page_signing.signed({"type": "page", "share": "events:>", "cursor_from": 0, "cursor_to": 1, "more": False,
                                    "items": items}, alice.key)
        with pytest.raises(replica.PageRefused, match=reason):
            replica.apply(copy, alice.node_id, page)
        assert copy.execute("SELECT count(*) FROM events").fetchone()[0] == 0 and replica.cursors(copy) == {}
    assert replica.apply(copy, alice.node_id, _forged(alice, "events:>", 0, 1, [good])) == 1


def test_signed_pages_that_break_the_chain_or_the_crdt_are_refused(alice_bob):
    alice, bob = alice_bob
    actor = "ab" * 16
    one = _event(actor, 1, events.GENESIS, 1)
    two = _event(actor, 2, one["hash"], 2)
    copy = replica.open_for_write(alice.node_id, bob.path)
    assert replica.apply(copy, alice.node_id, _forged(alice, "events:>", 0, 1, [one])) == 1
    for expected, items in (("does not link", [_event(actor, 2, "f" * 64, 2)]),  # prev_hash is not seq 1's hash
                            ("forked", [_event(actor, 1, events.GENESIS, 99)]),  # another event at seq 1
                            ("out of order", [_event(actor, 5, "e" * 64, 5), _event(actor, 4, "d" * 64, 4)]),
                            ("actor", [_event("cd" * 16, 2, one["hash"], 2)]),  # another actor's chain
                            ("does not match its hash", [{**two, "data": {"n": 3}}])):  # signed, but the event was changed
        with pytest.raises(replica.PageRefused, match=expected):
            replica.apply(copy, alice.node_id, _forged(alice, "events:>", 1, 2, items))
    fresh = replica.open_for_write(alice.node_id, path=bob.path.parent / "other" / "replica.db")
    with pytest.raises(replica.PageRefused, match="genesis"):
        replica.apply(fresh, alice.node_id, _forged(alice, "events:>", 0, 1, [_event(actor, 1, "e" * 64, 7)]))
    assert replica.apply(copy, alice.node_id, _forged(alice, "events:>", 1, 2, [two])) == 1
    assert [e.seq for e in events.read(copy)] == [1, 2] and replica.cursors(copy) == {"events:>": 2}
    junk = {"name": "ops", "notebook_id": "n1", "time": "t", "title": "", "update": b"\x00not a crdt update", "update_id": 1}
    with pytest.raises(replica.PageRefused, match="not a CRDT update"):
        replica.apply(copy, alice.node_id, _forged(alice, "notebook:ops", 0, 1, [junk]))
    assert repository.notebook_names(copy) == []


def test_foreign_rows_checks_as_foreign_row_does(alice_bob):
    alice, _ = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"n": i, "deep": {"b": [1, 2.5, None]}}) for i in range(5)])
    good = own_events(alice, "deploy.>")
    assert events.foreign_rows(good) == [events.foreign_row(e, i) for i, e in enumerate(good)]
    for change in ({"data": {"n": 99}}, {"seq": 0}, {"seq": True}, {"hash": "A" * 64}, {"actor": ""}, {"subject": "a..b"},
                   {"subject": "never.seen.before"}, {"id": "x" * 201}, {"prev_hash": 5}):
        bad = [good[0], {**good[1], **change}]
        try:
            events.foreign_row(bad[1], 1)
            expected = None
        except Exception as exc:  # noqa: BLE001 - comparing what each says
            expected = (type(exc), str(exc))
        try:
            events.foreign_rows(bad)
            got = None
        except Exception as exc:  # noqa: BLE001
            got = (type(exc), str(exc))
        assert got == expected, change
    missing = {k: v for k, v in good[0].items() if k != "hash"}
    with pytest.raises(Exception, match="lacks hash"):
        events.foreign_rows([missing])


def test_a_signed_page_of_anything_is_filed_or_refused_never_a_crash(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alice, bob = make_node(tmp_path, "alice"), make_node(tmp_path, "bob")
    copy = replica.open_for_write(alice.node_id, bob.path)
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.text(max_size=20), st.binary(max_size=20))
    fields = st.sampled_from(["seq", "id", "time", "subject", "type", "actor", "correlation", "data", "prev_hash", "hash",
                              "notebook_id", "name", "title", "update_id", "update"])
    item = st.one_of(scalars, st.dictionaries(fields, scalars, max_size=15))
    keys = st.one_of(fields, fields.map(str.encode))  # a bytes key is a missing field
    packed_item = st.one_of(scalars, st.dictionaries(keys, scalars, max_size=15))
    import msgpack

    packed = st.one_of(st.lists(packed_item, max_size=4).map(pages.pack_items), st.binary(max_size=40),
                       st.just(msgpack.packb([{"data": msgpack.Timestamp(1, 0)}])), st.lists(item, max_size=4))
    page = st.fixed_dictionaries({"type": st.just("page"), "share": st.sampled_from(["events:>", "notebook:ops", "x", "events:a..b"]),
                                  "more": st.booleans()},
                                 optional={"cursor_from": st.one_of(st.integers(-1, 3), st.booleans()),
                                           "cursor_to": st.integers(-1, 5), "items": packed})

    def contents():
        return [copy.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("events", "event_chains", "notebooks", "notebook_updates", "sync_cursors")]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(page)
    def check(candidate):
        before = contents()
        try:
            replica.apply(copy, alice.node_id, page_signing.signed(candidate, alice.key))
        except replica.PageRefused:
            assert contents() == before  # refused: nothing written
        assert not copy.in_transaction

    check()


def test_one_byte_of_an_events_data_flipped_on_the_wire_is_refused(alice_bob):
    alice, bob = alice_bob
    events.append_many(alice.conn, [("deploy.web", {"host": f"web-{i:03d}"}) for i in range(5)])
    share(alice, "events:deploy.>")

    def flip(frame, index):
        if index != 1:
            return frame
        at = frame.index(b"web-003") + 4  # one digit inside one event's data
        return frame[:at] + bytes([frame[at] ^ 0x01]) + frame[at + 1:]

    report, _ = pull(bob, alice, tamper_frame=flip)
    assert not report.ok and report.exit_code == 1 and "not signed" in report.error
    assert replica_of(bob, alice).execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_a_peer_that_does_not_know_us_is_reported_with_exit_5_and_the_fix(alice_bob, tmp_path):
    alice, bob = alice_bob
    with transaction(alice.conn):
        peer_list.remove(alice.conn, bob.node_id)
    report, wire = pull(bob, alice)
    assert not report.ok and report.exit_code == 5
    assert f"tessera peer add {bob.node_id} --publish" in report.error
    assert len(wire.sent) == 1 and sync.report_line(report)["status"] == "error"
    assert peer_list.get(bob.conn, alice.node_id).last_error == report.error[:300]
