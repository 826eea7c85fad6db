"""``tessera nats``: push this node's events to a NATS JetStream stream, pull other members'
(core/nats/, docs/nats.md)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

nats_app = typer.Typer(help="Share the event log through a NATS JetStream stream: push, pull.", no_args_is_help=True)

Server = Annotated[str, typer.Option("--server", metavar="URL", show_default=False,
                                     help="The NATS server: nats://HOST[:PORT] or tls://HOST[:PORT]. Credentials come from "
                                          "TESSERA_NATS_USER/TESSERA_NATS_PASSWORD or TESSERA_NATS_TOKEN, never the URL.")]
Stream = Annotated[str, typer.Option("--stream", metavar="NAME", help="The JetStream stream (made when missing).")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Keep running: reconnect with backoff, stop on SIGTERM (0) or Ctrl-C (130). Logs JSON lines on stderr.")]
CaFile = Annotated[Optional[str], typer.Option("--ca", metavar="FILE", show_default=False,
                                               help="PEM file of the CA that signed a tls:// server's certificate (default: the system's).")]


def _setup(server: str, stream: str, ca: str | None):
    from tessera.core.nats import broker

    return broker.check_server(server), broker.check_stream(stream), broker.credentials(ca)


@nats_app.command("push")
def push(
    pattern: Annotated[str, typer.Argument(metavar="[PATTERN]", help="Only own events whose subject matches (* one token, > the rest).")] = ">",
    server: Server = ...,
    stream: Stream = "TESSERA",
    follow: Follow = False,
    ca: CaFile = None,
) -> None:
    """Send this node's own events to the stream through an outbox that advances only on the
    server's ack (Nats-Msg-Id = the event id: a resend is dropped by the server). Once: what is
    there now, then one summary line. Members who pull each other's chains push with the default
    pattern (a chain with gaps cannot be verified).

    Example: tessera nats push --server nats://127.0.0.1:4222 --follow
    """
    from tessera.cli.messages import open_store, print_message
    from tessera.core import events
    from tessera.core.daemon_log import DaemonLog
    from tessera.core.nats import nats_runner, outbox

    url, stream, creds = _setup(server, stream, ca)
    events.check_subject(pattern, pattern=True)
    conn = open_store()
    log = DaemonLog()
    summary, code = nats_runner.run(lambda stop: outbox.push(conn, url, stream, pattern, creds, stop, follow=follow, log=log))
    if follow:
        log("info", "stopped", cursor=summary.cursor, published=summary.published)
    else:
        again = f" ({summary.duplicates} the stream had already)" if summary.duplicates else ""
        left = f"; {summary.skipped} left out by the pattern" if summary.skipped else ""
        print_message(f"pushed {summary.published} events to stream {stream} on {url}{again}{left}; "
                      f"cursor at seq {summary.cursor}")
    if code:
        raise typer.Exit(code)


@nats_app.command("pull")
def pull(
    server: Server = ...,
    stream: Stream = "TESSERA",
    follow: Follow = False,
    from_start: Annotated[bool, typer.Option("--from-start", help="Read the stream again from its first message (what is here already is skipped).")] = False,
    ca: CaFile = None,
) -> None:
    """Ingest other members' events from the stream into their own chains here, each checked
    (its hash, its link to its actor's chain); this node's own are skipped. A refused message is
    reported and nothing of it stored. Once: to the stream's end now, exit 1 if any was refused.

    Example: tessera nats pull --server nats://127.0.0.1:4222 --follow
    """
    from tessera.cli.messages import open_store, print_message
    from tessera.core.daemon_log import DaemonLog
    from tessera.core.nats import nats_runner, stream_mirror

    url, stream, creds = _setup(server, stream, ca)
    conn = open_store()
    log = DaemonLog() if follow else (lambda *args, **fields: None)  # once: the summary says it
    summary, code = nats_runner.run(lambda stop: stream_mirror.pull(conn, url, stream, creds, stop, follow=follow,
                                                                     from_start=from_start, log=log))
    if follow:
        log("info", "stopped", cursor=summary.cursor, ingested=summary.ingested)
    else:
        for actor, refused in summary.refused.items():
            print_message(f"refused {refused.count} events of actor {actor} from seq {refused.first_seq}: {refused.reason}")
        print_message(f"pulled {summary.ingested} events from stream {stream} on {url} ({summary.already} held already, "
                      f"{summary.own} own skipped); cursor at stream seq {summary.cursor}")
    if code:
        raise typer.Exit(code)
    if summary.refused and not follow:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the nats command group to ``app``."""
    app.add_typer(nats_app, name="nats")
