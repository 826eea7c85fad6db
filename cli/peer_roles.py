"""``tessera peer role PEER viewer|editor``: what a peer may do with the notebooks this node
shares with it. A thin shell over core/peers/peer_list.set_role; added to ``peer_app``."""

from __future__ import annotations

from typing import Annotated

import typer

from tessera.cli import completers
from tessera.cli.messages import open_store
from tessera.cli.peer import peer_app
from tessera.core.errors import printable

RoleArg = Annotated[str, typer.Argument(metavar="ROLE", show_default=False, autocompletion=lambda: ["viewer", "editor"],
                                        help="viewer (sees the notebooks shared with it, live) or editor (may also change them).")]


@peer_app.command("role")
def role(peer: Annotated[str, typer.Argument(metavar="PEER", show_default=False, autocompletion=completers.peers,
                                             help="A peer's name, full node id, or a unique start of its id (10+ characters).")],
         new_role: RoleArg) -> None:
    """Make a peer a viewer or an editor of what this node shares with it. A running `tessera
    serve` applies it from the peer's next edit on, without reconnecting: a viewer's edits are
    refused by this node.

    Example: tessera peer role bob editor
    """
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction

    peer_list.check_role(new_role)
    conn = open_store()
    found = peer_list.resolve(conn, peer)
    with transaction(conn):
        before = peer_list.set_role(conn, found.node_id, new_role)
    name = printable(found.name)
    if before == new_role:
        print(f"{name} ({found.node_id[:10]}) is already {new_role}")
    else:
        print(f"{name} ({found.node_id[:10]}) is now {new_role} (was {before})")
