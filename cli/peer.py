"""``tessera peer ...``: this node's identity among peers (``init``, ``id``); pairing, sharing
and sync come with the rest of issue 14. The commands are thin shells over tessera.core.peers."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from tessera.cli.messages import open_store

_SETTINGS = dict(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                 context_settings={"help_option_names": ["-h", "--help"]})
peer_app = typer.Typer(name="peer", help="Peers: identity, pairing by PIN, sharing, sync and sneakernet bundles.", **_SETTINGS)

NameOpt = Annotated[Optional[str], typer.Option("--name", metavar="NAME", show_default=False,
                                                help="The name peers see (default: the one set before, else user@host).")]
ShortOpt = Annotated[bool, typer.Option("--short", help="Print only the short form (the first 10 characters).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print node_id, short_id and name as one JSON object.")]




def _print_identity(identity) -> None:
    print(f"node id   {identity.node_id}\nshort id  {identity.short_id}\nname      {identity.name}")


@peer_app.command("init")
def init(name: NameOpt = None) -> None:
    """Make this node's key if it has none and set the name peers see; prints the identity.

    Example: tessera peer init --name alice@laptop
    """
    from tessera.core.peers import identity

    if name is not None:
        identity.check_name(name)  # before the store is opened or a key made
    _print_identity(identity.init(open_store(), name))


@peer_app.command("id")
def node_id(short: ShortOpt = False, as_json: JsonOpt = False) -> None:
    """Print this node's id: the full id (its Ed25519 public key, as iroh prints an endpoint id)
    alone in a pipe, with the short form and name on a terminal.

    Example: tessera peer id --short
    """
    from tessera.core.peers import identity

    me = identity.local_identity(open_store())
    if as_json:
        print(json.dumps(me.as_dict()))
    elif short:
        print(me.short_id)
    elif sys.stdout.isatty():
        _print_identity(me)
    else:
        print(me.node_id)


def register(app: typer.Typer) -> None:
    """Add the peer commands to ``app``."""
    import tessera.cli.peer_network  # noqa: F401  (invite, join, sync)
    import tessera.cli.peer_sharing  # noqa: F401  (add/remove/list, share/unshare/shared, export/import)
    import tessera.cli.peer_roles  # noqa: F401  (role)
    app.add_typer(peer_app, name="peer")
