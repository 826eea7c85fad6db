"""``tessera serve``: this node's peer daemon (core/peers/daemon.py)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


def _interval(text: str) -> float:
    """``30m``, ``2h``, ``90s`` or a number of seconds, as seconds (at least 10)."""
    from tessera.core.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError:
        seconds = -1
    if not seconds >= 10:
        raise UsageError(f"--sync-interval '{text}' is not a duration of at least 10 s", hint="e.g. 30m, 2h, 90s")
    return seconds


def serve(port: Annotated[Optional[int], typer.Option("--port", metavar="N", min=1, max=65535, show_default=False,
                                                      help="The UDP port to listen on (kept as this node's port).")] = None,
          sync: Annotated[bool, typer.Option("--sync", help="Also pull every --sync-interval from subscribed peers that have no live subscription.")] = False,
          sync_interval: Annotated[str, typer.Option("--sync-interval", metavar="DURATION",
                                                     help="How often --sync pulls from peers without a live subscription.")] = "30m") -> None:
    """Run this node's peer endpoint: answer peers' pulls, subscriptions and pairings, and keep a
    live subscription to every peer this node subscribes to, until SIGTERM or Ctrl-C. Logs JSON lines on stderr (readable lines on a terminal).

    Example: tessera serve --sync
    """
    from tessera.core.peers import daemon

    seconds = _interval(sync_interval)
    daemon.serve(port=port, sync=sync, sync_interval=seconds)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
