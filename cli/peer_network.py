"""``tessera peer invite``, ``peer join`` and ``peer sync``: pairing and pulling over the network.
Thin shells over tessera.core.peers (pairing_session, server, sync_dial); adds its commands to
``peer_app`` (cli/peer.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Annotated, List, Optional

import typer

from tessera.cli.peer import peer_app

POLL_SECONDS = 0.1  # how often `peer invite` looks at its invite's state in the store
CLOSE_SECONDS = 5.0  # for the endpoint to close on the way out

RoleOpt = Annotated[str, typer.Option("--role", metavar="ROLE", help="What the joiner may do with what you share: viewer or editor.")]
ShareOpt = Annotated[Optional[List[str]], typer.Option(
    "--share", metavar="ITEM", show_default=False,
    help="Share ITEM with the joiner once paired (notebook:NAME, events:PATTERN, or a notebook NAME); repeatable.")]
PinOpt = Annotated[Optional[str], typer.Option("--pin", metavar="PIN", show_default=False,
                                               help="The 6-digit PIN (asked for, without echo, on a terminal).")]
JoinNameOpt = Annotated[Optional[str], typer.Option("--name", metavar="NAME", show_default=False,
                                                    help="Add the inviting node under NAME (default: the name it announces).")]


def _conn():
    from tessera.cli.messages import print_message
    from tessera.core.store.db import connect

    return connect(on_wait=print_message)


def _data_home():
    from tessera.core.config import data_home

    return data_home()


@peer_app.command("invite")
def invite(role: RoleOpt = "viewer", share: ShareOpt = None) -> None:
    """Invite a node to pair: print a ticket and a 6-digit PIN (valid 10 minutes, one attempt),
    then wait for `tessera peer join TICKET` on the other node. Exits 0 once paired, 5 on a wrong
    PIN (saying which node tried, from where), 4 when the invite expires.

    Example: tessera peer invite --role viewer --share ops
    """
    from tessera.core.peers import locks, pins, shares

    pins.check_role(role)
    items = pins.check_shares([shares.parse_item(s) for s in share or []])
    conn = _conn()
    if locks.serve_running(_data_home()):
        from tessera.core.peers.daemon import TICKET_FILE

        ticket_file = _data_home() / TICKET_FILE
        endpoint_ticket = ticket_file.read_text().strip() if ticket_file.exists() else ""
        created, pin = pins.create_invite(conn, role=role, shares=items)
        _announce(created, pin, endpoint_ticket)
        _wait_for(conn, created.id)
        return
    lock = locks.serve_lock(_data_home())
    try:
        asyncio.run(_invite_alone(conn, role, items))
    finally:
        lock.release()


def _announce(created, pin: str, endpoint_ticket: str) -> None:
    from tessera.core.peers.invite_ticket import InviteTicket

    print(f"ticket  {InviteTicket(created.id, endpoint_ticket)}")
    print(f"pin     {pin}")
    print(f"expires {created.expires_at} (one attempt)", flush=True)
    print("tessera: on the other node run: tessera peer join TICKET (it asks for the PIN)", file=sys.stderr, flush=True)


async def _invite_alone(conn, role: str, items: tuple[str, ...]) -> None:
    """No serve runs: bind the node's endpoint here and answer connections until the invite ends.
    Ctrl-C (or SIGTERM) is taken by the loop, as serve takes it, so the invite is cancelled and the
    endpoint closed in order before the process exits 130."""
    import signal

    from tessera.core.peers import node_endpoint, pins
    from tessera.core.peers.server import Server

    endpoint = await node_endpoint.bind(conn, listen=True)
    server = Server(conn, endpoint, signing_key=node_endpoint.signing_key(conn), local_ticket=endpoint.ticket())
    accepting = asyncio.create_task(server.run())
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    try:
        created, pin = pins.create_invite(conn, role=role, shares=items)
        _announce(created, pin, endpoint.ticket())
        await _await_outcome(conn, created.id, interrupted)
    finally:
        await server.stop(grace=5.0)
        accepting.cancel()
        await asyncio.gather(accepting, return_exceptions=True)
        try:
            await asyncio.wait_for(endpoint.close(), CLOSE_SECONDS)
        except asyncio.TimeoutError:  # the process exits anyway; the OS frees the socket
            pass


def _outcome(conn, invite_id: str) -> str | None:
    """What became of the invite: the line to print once paired, None while it is pending.

    Raises:
        NotAuthorized (exit 5) after a wrong PIN, TesseraError when it was cancelled otherwise
        (exit 1) or expired unused (exit 4), naming where a failed attempt came from.
    """
    from tessera.core.errors import EXIT_TIMEOUT, NotAuthorized, TesseraError
    from tessera.core.peers import identity, peer_list, pins

    current = pins.get_invite(conn, invite_id)
    if current.paired_at is not None:
        peer = peer_list.get(conn, current.used_by)  # added just after paired_at is set
        return None if peer is None else f"paired with {peer.name} ({identity.short_id(peer.node_id)}), role {peer.role}"
    if current.state == "cancelled":
        origin = f"node {current.cancelled_by} at {current.cancelled_from or 'an unknown address'}" \
            if current.cancelled_by else "this node"
        reason = current.cancel_reason or "cancelled"
        error_type = NotAuthorized if "PIN" in reason else TesseraError
        raise error_type(f"pairing failed: {reason} (the attempt came from {origin})",
                         hint="the invite is cancelled: run `tessera peer invite` again")
    if current.expired():
        error = TesseraError(f"the invite expired at {current.expires_at} with no pairing",
                             hint="run `tessera peer invite` again when the other node is ready")
        error.exit_code = EXIT_TIMEOUT
        raise error
    return None


def _cancel(conn, invite_id: str) -> None:
    from tessera.core.peers import pins

    pins.cancel_invite(conn, invite_id, reason="cancelled by the user")


def _wait_for(conn, invite_id: str) -> None:
    """Poll the invite until it is paired (print whom it added), cancelled or expired; Ctrl-C
    cancels it."""
    try:
        while (line := _outcome(conn, invite_id)) is None:
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        _cancel(conn, invite_id)
        raise
    print(line, flush=True)


async def _await_outcome(conn, invite_id: str, interrupted: asyncio.Event) -> None:
    """``_wait_for`` inside the event loop that answers the pairing connection; ``interrupted``
    (Ctrl-C) cancels the invite and raises KeyboardInterrupt."""
    while (line := _outcome(conn, invite_id)) is None:
        if interrupted.is_set():
            _cancel(conn, invite_id)
            raise KeyboardInterrupt
        try:
            await asyncio.wait_for(interrupted.wait(), POLL_SECONDS)
        except asyncio.TimeoutError:
            pass
    print(line, flush=True)


@peer_app.command("join")
def join(ticket: Annotated[str, typer.Argument(metavar="TICKET", help="The ticket `tessera peer invite` printed.")],
         name: JoinNameOpt = None, pin: PinOpt = None) -> None:
    """Pair with the node that printed TICKET, proving the PIN it showed; adds it as a peer
    (publish and subscribe; nothing is shared until `tessera peer share`).

    Example: tessera peer join tessera:Ab3...:endpoint... --pin 123456
    """
    from tessera.core.errors import UsageError
    from tessera.core.peers import identity, invite_ticket, pins

    parsed = invite_ticket.parse(ticket)
    if name is not None:
        name = identity.check_name(name)
    if pin is None:
        if not sys.stdin.isatty():
            raise UsageError("no PIN given", hint="pass --pin PIN, or run on a terminal to be asked for it")
        import getpass

        pin = getpass.getpass("PIN shown by `tessera peer invite`: ")
    pin = pins.normalize_pin(pin)  # before any connection: a typo never spends the attempt
    conn = _conn()
    shown, result = asyncio.run(_join(conn, parsed, pin, name))
    print(f"paired with {shown} ({identity.short_id(result.peer_id)}); it may pull what you share with it "
          f"(tessera peer share), and you may pull what it shares with you (tessera peer sync)")


async def _join(conn, parsed, pin: str, name: str | None):
    from tessera.core.errors import TesseraError
    from tessera.core.peers import channel as channels
    from tessera.core.peers import identity, node_endpoint, pairing_session

    me = identity.local_identity(conn)
    endpoint = await node_endpoint.bind(conn, listen=False)
    try:
        channel = await channels.dial_for_pairing(endpoint, parsed.endpoint_ticket)
        try:
            result, shown = await pairing_session.join(conn, channel, pin=pin, invite_id=parsed.invite_id,
                                                       local_id=me.node_id, local_name=me.name,
                                                       inviter_ticket=parsed.endpoint_ticket, name=name)
        except TesseraError as exc:
            if getattr(exc, "from_peer", False):
                channel.close()
            else:
                await channel.finish()
            raise
        await channel.finish()
        return shown, result
    finally:
        await endpoint.close()


@peer_app.command("sync")
def sync(peer: Annotated[Optional[str], typer.Argument(metavar="PEER", show_default=False,
                                                       help="Only this peer (name or id); default every subscribed peer.")] = None,
         full: Annotated[bool, typer.Option("--full", help="Pull everything again, not only what is new.")] = False) -> None:
    """Pull what each subscribed peer (or PEER) shares with this node into its replica. One JSON
    line per peer on stdout in a pipe, a progress bar on a terminal. Exits 0 when all succeeded,
    3 when a peer was unreachable, 1 when a page was refused.

    Example: tessera peer sync alice
    """
    from tessera.cli.messages import print_message
    from tessera.core.errors import UsageError
    from tessera.core.peers import locks, peer_list

    conn = _conn()
    if peer is not None:
        peers = [peer_list.resolve(conn, peer)]
    else:
        peers = [p for p in peer_list.all_peers(conn) if p.subscribe]
        if not peers:
            raise UsageError("no peer to sync from (none is subscribed to)",
                             hint="pair with `tessera peer join`, or `tessera peer add ID --subscribe`")
    lock = locks.sync_lock(_data_home(), on_wait=print_message)
    try:
        code = asyncio.run(_sync(conn, peers, full))
    finally:
        lock.release()
    raise typer.Exit(code)


async def _sync(conn, peers, full: bool) -> int:
    """Pull from each peer in turn: a progress bar on stderr when it is a terminal; one JSON line
    per peer on stdout in a pipe, a readable line on a terminal. The exit code of the worst."""
    from tessera.cli.messages import print_message
    from tessera.core.errors import EXIT_ERROR, EXIT_OK, EXIT_UNAVAILABLE, TesseraError
    from tessera.core.peers import node_endpoint, sync_dial
    from tessera.core.peers.sync import report_line

    endpoint = await node_endpoint.bind(conn, listen=False)
    codes = []
    try:
        progress = _progress() if sys.stderr.isatty() else None
        with progress or _Nothing():
            for peer in peers:
                on_page = None
                if progress is not None:
                    task = progress.add_task(peer.name, total=None)
                    on_page = lambda share, added, cursor, _t=task: progress.advance(_t, added)  # noqa: E731
                try:
                    report = await sync_dial.pull_from(conn, endpoint, peer, full=full, on_page=on_page)
                except TesseraError as exc:
                    codes.append(exc.exit_code)
                    print_message(f"{peer.name}: {exc.one_line()}")
                    line = {"peer": peer.name, "node_id": peer.node_id, "shares": {}, "items": 0, "status": "error",
                            "error": exc.one_line()}
                else:
                    codes.append(report.exit_code)
                    if report.error is not None:
                        print_message(f"{peer.name}: {report.error}")
                    line = report_line(report)
                _print_outcome(line)
    finally:
        await endpoint.close()
    failed = [c for c in codes if c != EXIT_OK]
    if not failed:
        return EXIT_OK
    if EXIT_ERROR in failed:
        return EXIT_ERROR
    if EXIT_UNAVAILABLE in failed:
        return EXIT_UNAVAILABLE
    return failed[0]


def _print_outcome(line: dict) -> None:
    if not sys.stdout.isatty():
        print(json.dumps(line), flush=True)
        return
    from tessera.core.errors import printable

    if line["status"] != "ok":
        print(printable(f"{line['peer']}: failed (see above)"), flush=True)
        return
    per_share = ", ".join(f"{item} {share['items']}" for item, share in line["shares"].items()) or "nothing shared"
    print(printable(f"{line['peer']}: {line['items']} new items ({per_share})"), flush=True)


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} items"),
                    console=Console(stderr=True), transient=True,
                    redirect_stdout=False, redirect_stderr=False)  # the JSON lines stay on stdout
