"""``tessera peer add/remove/list``, ``share/unshare/shared`` and ``export/import``: the peer
list, what this node shares with whom, and sneakernet bundles. Thin shells over
tessera.core.peers (shares, peer_list, replica, bundle); added to ``peer_app``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from tessera.cli.messages import open_store, print_message

from tessera.cli import completers
from tessera.cli.peer import peer_app
from tessera.core.errors import UsageError, printable

PeerArg = Annotated[str, typer.Argument(metavar="PEER", show_default=False, autocompletion=completers.peers,
                                        help="A peer's name, full node id, or a unique start of its id (10+ characters).")]
ItemArg = Annotated[str, typer.Argument(metavar="ITEM", show_default=False, autocompletion=completers.share_items,
                                        help="notebook:NAME (or just NAME), events:SUBJECT_PATTERN (e.g. events:deploy.>) or knowledge:PATH (what was ingested under it).")]
WithOpt = Annotated[Optional[list[str]], typer.Option("--with", metavar="PEER", show_default=False,
                                                      autocompletion=completers.peers, help="Only with this peer (repeatable; default: every peer this node publishes to).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]




def _now() -> str:
    from tessera.core.times import now

    return now()


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _with_ids(conn: Any, names: list[str] | None) -> list[str]:
    from tessera.core.peers import peer_list, shares

    if not names:
        return [shares.EVERY_PEER]
    return list(dict.fromkeys(peer_list.resolve(conn, name).node_id for name in names))


# --- the peer list --------------------------------------------------------------------------


@peer_app.command("add")
def add(node: Annotated[str, typer.Argument(metavar="NODE_ID", show_default=False,
                                            help="The peer's node id (as `tessera peer id` prints it on its machine).")],
        name: Annotated[Optional[str], typer.Option("--name", metavar="NAME", show_default=False,
                                                    help="The name to show for it (default: its short id).")] = None,
        role: Annotated[Optional[str], typer.Option("--role", metavar="ROLE", show_default=False,
                                                    help="viewer (default) or editor: what it may do with what we share.")] = None,
        publish: Annotated[Optional[bool], typer.Option("--publish/--no-publish", show_default=False,
                                                        help="It may connect and pull what we share with it.")] = None,
        subscribe: Annotated[Optional[bool], typer.Option("--subscribe/--no-subscribe", show_default=False,
                                                          help="We pull what it shares with us.")] = None) -> None:
    """Add a peer by its node id, or change one already added (options not given are kept).

    Example: tessera peer add 3f2a...c9 --name bob --publish --subscribe
    """
    from tessera.core.peers import identity, peer_list
    from tessera.core.store.db import transaction

    node_id = identity.parse_node_id(node)
    if name is not None:
        identity.check_name(name)
    if role is not None and role not in peer_list.ROLES:
        raise UsageError(f"--role '{printable(role)}' is not a role", hint="use viewer or editor")
    conn = open_store()
    if node_id == identity.local_identity(conn).node_id:
        raise UsageError("that node id is this node's own", hint="add the id `tessera peer id` prints on the other machine")
    with transaction(conn):
        before = peer_list.get(conn, node_id)
        name = name if name is not None else before.name if before else identity.short_id(node_id)
        clash = [p for p in peer_list.all_peers(conn) if p.name == name and p.node_id != node_id]
        if clash:
            raise UsageError(f"the name '{printable(name)}' is another peer's ({clash[0].node_id[:10]})",
                             hint="choose another --name")
        peer_list.add(conn, node_id, name, role=role or (before.role if before else "viewer"),
                      publish=publish if publish is not None else bool(before and before.publish),
                      subscribe=subscribe if subscribe is not None else bool(before and before.subscribe),
                      added_at=_now())
        peer = peer_list.get(conn, node_id)
    print(f"{'updated' if before else 'added'} {printable(peer.name)} ({node_id[:10]}): {_direction(peer)}, {peer.role}")


@peer_app.command("remove")
def remove(peer: PeerArg) -> None:
    """Remove a peer: from the peer list, the shares given to it alone, and its replica (what it
    shared with us). A running `tessera serve` refuses its next request.

    Example: tessera peer remove bob
    """
    import shutil

    from tessera.core.peers import peer_list, replica_files
    from tessera.core.store.db import transaction

    conn = open_store()
    with transaction(conn):
        found = peer_list.resolve(conn, peer)
        peer_list.remove(conn, found.node_id)
    directory = replica_files.replica_path(found.node_id, conn.path).parent
    shutil.rmtree(directory, ignore_errors=True)
    print(f"removed {printable(found.name)} ({found.node_id[:10]}) and its replica")


def _direction(peer: Any) -> str:
    return {(True, True): "both", (True, False): "publish", (False, True): "subscribe"}.get((peer.publish, peer.subscribe), "none")


def _reachable(peer: Any) -> str:
    if peer.last_error is not None:
        return f"no: {peer.last_error}"
    return "yes" if peer.last_sync else "unknown"


def _replica_items(node_id: str, store_path: Any) -> int:
    import sqlite3

    from tessera.core.peers import replica, replica_files

    copy = replica_files.open_read_only(node_id, store_path)
    if copy is None:
        return 0
    try:
        return sum(replica.item_counts(copy).values())
    except sqlite3.Error:  # a replica made before anything was filed in it
        return 0
    finally:
        copy.close()


@peer_app.command("list")
def list_peers(as_json: JsonOpt = False) -> None:
    """List the peers: name, short id, direction (publish/subscribe/both/none), role, last sync,
    items in its replica, and whether it was reachable the last time.

    Example: tessera peer list --json
    """
    from tessera.core.peers import peer_list

    conn = open_store()
    rows = [{"name": p.name, "node_id": p.node_id, "short_id": p.node_id[:10], "direction": _direction(p),
             "role": p.role, "last_sync": p.last_sync, "items": _replica_items(p.node_id, conn.path),
             "reachable": _reachable(p), "added_at": p.added_at} for p in peer_list.all_peers(conn)]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("no peers yet (add one: tessera peer add NODE_ID, or pair: tessera peer invite)")
        return
    _table(["NAME", "ID", "DIRECTION", "ROLE", "LAST SYNC", "ITEMS", "REACHABLE"],
           [[printable(r["name"]), r["short_id"], r["direction"], r["role"], r["last_sync"] or "never", str(r["items"]),
             printable(r["reachable"])] for r in rows])


# --- sharing ---------------------------------------------------------------------------------


@peer_app.command("share")
def share(item: ItemArg, with_peers: WithOpt = None) -> None:
    """Share a notebook, events, or what was ingested under a path, with every peer this node
    publishes to, or only --with some. Nothing is shared until this (private by default).

    Example: tessera peer share ops --with bob; tessera peer share 'events:deploy.>'; tessera peer share knowledge:~/notes
    """
    from tessera.core.notebook import repository
    from tessera.core.peers import shares
    from tessera.core.store.db import transaction

    item = shares.parse_item(item)
    conn = open_store()
    if shares.kind_of(item) == "notebook" and not repository.exists(conn, shares.target_of(item)):
        raise UsageError(f"there is no notebook '{printable(shares.target_of(item))}' to share",
                         hint="see `tessera notebook list` for the notebooks")
    documents = _knowledge_documents(conn, item) if shares.kind_of(item) == "knowledge" else None
    with transaction(conn):
        ids = _with_ids(conn, with_peers)
        shares.add(conn, item, ids, added_at=_now())
    held = "" if documents is None else f" ({documents} document{'' if documents == 1 else 's'} ingested under it now)"
    print(f"shared {printable(item)} with {_whom(conn, ids)}{held}")
    if documents == 0:
        print_message(f"note: nothing is ingested under {shares.target_of(item)} yet; peers get what "
                      f"`tessera ingest {shares.target_of(item)}` stores there")


def _knowledge_documents(conn: Any, item: str) -> int:
    """How many documents the knowledge share holds now; a path that neither exists nor has any
    document ingested under it is refused (a typo would otherwise share nothing, silently)."""
    import os

    from tessera.core.peers import knowledge_share, shares

    path = shares.target_of(item)
    count = knowledge_share.document_count(conn, path)
    if count == 0 and not os.path.exists(path):
        raise UsageError(f"there is no {printable(path)}, and nothing is ingested under it, to share",
                         hint="give the path of a folder or file you ingested (tessera ingest PATH)")
    return count


def _whom(conn: Any, ids: list[str]) -> str:
    from tessera.core.peers import peer_list, shares

    names = []
    for node_id in ids:
        if node_id == shares.EVERY_PEER:
            names.append("every peer this node publishes to")
        else:
            peer = peer_list.get(conn, node_id)
            names.append(printable(peer.name) if peer else node_id[:10])
    return ", ".join(names)


@peer_app.command("unshare")
def unshare(item: ItemArg, with_peers: WithOpt = None) -> None:
    """Stop sharing an item: with everyone, or only --with some peers. A running `tessera serve`
    refuses the next pull of it.

    Example: tessera peer unshare ops --with bob
    """
    from tessera.core.peers import shares
    from tessera.core.store.db import transaction

    item = shares.parse_item(item)
    conn = open_store()
    with transaction(conn):
        granted = shares.grants(conn).get(item, [])
        if not granted:
            raise UsageError(f"{printable(item)} is not shared", hint="see `tessera peer shared`")
        if with_peers:
            ids = _with_ids(conn, with_peers)
            if shares.EVERY_PEER in granted:
                raise UsageError(f"{printable(item)} is shared with every peer this node publishes to, so unsharing it "
                                 "with one would change nothing",
                                 hint=f"run `tessera peer unshare {printable(item)}`, then share it --with each peer who keeps it")
            missing = [n for n in ids if n not in granted]
            if missing:
                raise UsageError(f"{printable(item)} is not shared with {_whom(conn, missing)}", hint="see `tessera peer shared`")
            shares.remove(conn, item, ids)
            print(f"stopped sharing {printable(item)} with {_whom(conn, ids)}")
        else:
            shares.remove(conn, item)
            print(f"stopped sharing {printable(item)}")


@peer_app.command("shared")
def shared(as_json: JsonOpt = False) -> None:
    """List what this node shares: each item, with whom, and how many items it holds now.

    Example: tessera peer shared --json
    """
    from tessera.core.peers import peer_list, shares

    conn = open_store()
    names = {p.node_id: p.name for p in peer_list.all_peers(conn)}
    rows = [{"item": item, "kind": shares.kind_of(item),
             "with": ["*" if n == shares.EVERY_PEER else names.get(n, n[:10]) for n in ids],
             "node_ids": ids, "items": shares.item_count(conn, item)}
            for item, ids in shares.grants(conn).items()]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("nothing is shared (share something: tessera peer share NOTEBOOK, or events:SUBJECT_PATTERN)")
        return
    _table(["ITEM", "WITH", "ITEMS"],
           [[printable(r["item"]), ", ".join("every peer" if w == "*" else printable(w) for w in r["with"]), str(r["items"])]
            for r in rows])


# --- sneakernet ------------------------------------------------------------------------------


@peer_app.command("export")
def export(output: Annotated[str, typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                               help="The bundle file to write (0600, replaced whole).")],
           share_items: Annotated[Optional[list[str]], typer.Option(
               "--share", metavar="ITEM", show_default=False, autocompletion=completers.share_items,
               help="Only this share (repeatable; default: what is shared with --to, else with every peer).")] = None,
           to: Annotated[Optional[str], typer.Option("--to", metavar="PEER", show_default=False,
                                                     autocompletion=completers.peers, help="The peer it is for: only what is shared with it, and only it may import it.")] = None) -> None:
    """Write what this node shares to a bundle file, signed by the node key, for a peer without
    a network path to this node (import it there with `tessera peer import FILE`).

    Example: tessera peer export --to bob -o ops.tbundle
    """
    from pathlib import Path

    from tessera.core import node_key
    from tessera.core.peers import bundle, identity, peer_list

    conn = open_store()
    recipient = peer_list.resolve(conn, to).node_id if to else None
    items = bundle.export_items(conn, share_items, recipient)
    path = Path(output)
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {printable(output)}: {printable(str(path.parent))} is not a directory",
                         hint="give -o a path in an existing directory")
    me = identity.local_identity(conn)
    manifest = bundle.write(conn, path, items, signing_key=node_key.signing_key(conn.path), signer=me.node_id,
                            name=me.name, recipient=recipient)
    counts: dict[str, int] = {}
    for entry in manifest["pages"]:
        counts[entry["share"]] = counts.get(entry["share"], 0) + entry["items"]
    print(f"wrote {printable(output)}: " + ", ".join(f"{printable(k)} ({v} items)" for k, v in counts.items()))


@peer_app.command("import")
def import_(file: Annotated[str, typer.Argument(metavar="FILE", show_default=False, help="A bundle `tessera peer export` wrote.")]) -> None:
    """Check a bundle (its signature, every hash and page signature; the signer must be a peer)
    and file it in the signer's replica. A bundle altered anywhere is refused whole.

    Example: tessera peer import ops.tbundle
    """
    from pathlib import Path

    from tessera.core.peers import bundle, identity

    conn = open_store()
    signer, stored = bundle.import_bundle(conn, Path(file), local_node_id=identity.local_identity(conn).node_id)
    print(f"imported from {printable(signer.name)} ({signer.node_id[:10]}): "
          + (", ".join(f"{printable(k)} ({v} new items)" for k, v in stored.items()) or "nothing new"))
