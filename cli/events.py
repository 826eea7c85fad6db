"""``tessera events``: tail, publish, verify, checkpoint and prune the event log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tessera.cli.messages import open_store

from tessera.cli import completers
from tessera.cli.options import OutputSettings, emit, output_options

events_app = typer.Typer(help="The event log: tail, publish, verify, checkpoint, prune.", no_args_is_help=True)

Pattern = Annotated[Optional[str], typer.Argument(metavar="[PATTERN]", help="Subject pattern: * is one token, > the rest (e.g. notebook.ops.>).", show_default=False)]
Since = Annotated[Optional[str], typer.Option("--since", metavar="WHEN", help="Only events at or after WHEN: a duration back (15m, 2h, 7d) or an RFC 3339 time.", show_default=False)]
Until = Annotated[Optional[str], typer.Option("--until", metavar="WHEN", help="Only events at or before WHEN (same forms as --since).", show_default=False)]
def _seq(value: int | None) -> int | None:
    if value is not None and value >= 2**63:  # SQLite integers are 64-bit
        raise typer.BadParameter(f"{value} is larger than any seq (at most {2**63 - 1})")
    return value


AfterSeq = Annotated[Optional[int], typer.Option("--after-seq", metavar="N", min=0, callback=_seq, help="Only events with seq greater than N.", show_default=False)]
Correlation = Annotated[Optional[str], typer.Option("--correlation", metavar="ID", help="Only events of this correlation id (one CLI invocation).", show_default=False)]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events as they are written (by any process).")]
PeerOpt = Annotated[Optional[str], typer.Option("--peer", metavar="PEER", show_default=False, autocompletion=completers.peers,
                                                help="Read a peer's events from its replica (its name or id), read-only; "
                                                     "with -f, keep printing them as sync receives them.")]




def _replica(peer: str):
    from tessera.core.peers.replica_reading import open_peer

    return open_peer(peer).conn


@events_app.command("tail")
@output_options
def tail(
    pattern: Pattern = None,
    follow: Follow = False,
    since: Since = None,
    until: Until = None,
    after_seq: AfterSeq = None,
    correlation: Correlation = None,
    peer: PeerOpt = None,
    *,
    out: OutputSettings,
) -> None:
    """Print events in order (JSON lines in a pipe, a table on a terminal); -f keeps following.

    --peer NAME reads that peer's events from its replica instead of this node's log.
    Example: tessera events tail -f 'query.ops.>' --since 1h
    """
    from tessera.core import events
    from tessera.core.result import Result

    filters = {
        "pattern": events.check_subject(pattern, pattern=True) if pattern else None,
        "since": events.parse_when(since, flag="--since") if since else None,
        "until": events.parse_when(until, flag="--until") if until else None,
        "correlation": correlation,
    }
    conn = open_store() if peer is None else _replica(peer)
    top = events.last_position(conn)  # read before the backlog: nothing written meanwhile is skipped
    found = events.read(conn, after_seq=after_seq, **filters)
    fmt = out.format()
    if not follow:
        columns = ["seq", "time", "subject", "type", "actor", "correlation", "data", "id", "prev_hash", "hash"]
        if fmt == "table":
            columns = ["seq", "time", "subject", "type", "data"]
        emit(Result(columns=columns, rows=[e.as_dict() for e in found]), out)
        return
    import orjson

    if out.limit is not None:
        found = found[-out.limit:] if out.limit else []
    write = sys.stdout.buffer.write
    for event in found:
        write(_line(event, fmt, orjson))
    sys.stdout.flush()
    last = max([top] + [e.position for e in found[-1:]])
    for event in events.follow(conn, after_position=last, **filters):
        write(_line(event, fmt, orjson))
        sys.stdout.flush()


def _line(event, fmt: str, orjson) -> bytes:
    if fmt == "table":
        from tessera.core.errors import printable

        data = _dumps(event.data, orjson).decode()
        # a peer's replica holds what the peer wrote: nothing of it reaches the terminal raw
        return printable(f"{event.seq:>8}  {event.time}  {event.subject}  {event.type}  {data}").encode() + b"\n"
    return _dumps(event.as_dict(), orjson) + b"\n"


def _dumps(value, orjson) -> bytes:
    """JSON bytes; data orjson refuses (nested past its 254 levels, stored before publish capped
    depth) is written by the json module instead, so the log stays readable."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        import json

        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@events_app.command("publish")
def publish(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="Dot-separated tokens, e.g. deploy.shop.web.")],
    data: Annotated[Optional[str], typer.Argument(metavar="[DATA]", help="JSON data, or - to read it from stdin (default: null).", show_default=False)] = None,
    type: Annotated[str, typer.Option("--type", metavar="TYPE", help="The event type.")] = "event",
) -> None:
    """Append one event and print it as a JSON line.

    Example: tessera events publish deploy.shop.web '{"image": "web:2"}'
    """
    import json

    from tessera.core import events
    from tessera.core.config import format_bytes, max_event_bytes
    from tessera.core.errors import InputError
    from tessera.core.inputs import decode_text, read_stream

    limit = max_event_bytes()  # checked before reading or parsing the data
    if data == "-":
        text = decode_text(read_stream(sys.stdin, where="stdin", limit=limit, setting="TESSERA_MAX_EVENT_BYTES",
                                       limit_name="limit for one event's data"), "stdin")
        if not text.strip():
            raise InputError("no event data on stdin (it was empty)", hint="pipe JSON in, or pass DATA as an argument")
    else:
        text = data
        if text is not None and len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
            raise InputError(f"DATA is {format_bytes(len(text.encode('utf-8', 'surrogatepass')))}, over the "
                             f"{format_bytes(limit)} limit for one event's data",
                             hint="set TESSERA_MAX_EVENT_BYTES to raise it, or store the data elsewhere and publish a reference")
    value = None
    if text is not None:
        from tessera.core.documents import MAX_DEPTH, check_json_depth

        check_json_depth(text.encode("utf-8", "surrogatepass"), "DATA", hint=f"event data may nest {MAX_DEPTH} levels at most")  # json.loads recurses once per level
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"DATA is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                             hint="quote strings: '\"text\"', or pass an object: '{\"k\": 1}'") from None
        except ValueError as exc:  # an integer of more than 4,300 digits
            raise InputError(f"DATA is not usable JSON: {str(exc).split(';')[0]}",
                             hint="pass a long number as a string") from None
    events.check_subject(subject)
    import orjson

    event = events.append(open_store(), subject, value, type=type)
    sys.stdout.buffer.write(orjson.dumps(event.as_dict()) + b"\n")


@events_app.command("verify")
def verify(
    against: Annotated[Optional[Path], typer.Option("--against", metavar="FILE", help="Also check the log still reaches this checkpoint (from events checkpoint, kept elsewhere).", show_default=False)] = None,
) -> None:
    """Check the database file (PRAGMA quick_check), then every actor's hash chain and this
    node's signed head (and, with --against, a checkpoint): exit 0 with a count, or exit 1 naming
    the damage or the first broken seq.

    Example: tessera events verify --against /backup/tessera-checkpoint.json
    """
    from tessera.core import events
    from tessera.core.store.db import StoreDamaged, quick_check

    point = _read_checkpoint(against) if against is not None else None  # a bad FILE is said before any work
    conn = open_store()
    problems = quick_check(conn)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StoreDamaged(f"the store {conn.path} is damaged: PRAGMA quick_check found: {problems[0]}{more}; "
                           "the event chain was not checked",
                           hint="to start a new store, move the file away and keep it for recovery; the sqlite3 shell's "
                                ".recover may save what is left")
    verdict = events.verify(conn)
    if not verdict.ok:
        raise events.verdict_error(verdict)
    if point is not None:
        events.check_against(conn, point, where=str(against))
    chains = "chain intact" if verdict.chains <= 1 else f"{verdict.chains} chains intact"
    reached = f", checkpoint at seq {point['seq']} reached" if point is not None else ""
    print(f"ok: {verdict.checked} events, {chains}{reached}")
    if verdict.signed_now:
        from tessera.cli.messages import print_message

        print_message("this node's chain head had no signature yet (a log from before signed heads); it is signed now")


def _read_checkpoint(path: Path) -> dict:
    from tessera.core import events
    from tessera.core.errors import InputError
    from tessera.core.inputs import decode_text, read_path

    if path.is_file() and path.stat().st_size > _CHECKPOINT_BYTES:  # no setting raises this: nothing that large is one
        raise InputError(f"{path} is not a checkpoint: it is {path.stat().st_size} bytes, a checkpoint is under 1 KiB",
                         hint="give the file `tessera events checkpoint` wrote")
    text = decode_text(read_path(path, limit=_CHECKPOINT_BYTES), str(path))
    return events.parse_checkpoint(text, where=str(path))


_CHECKPOINT_BYTES = 64 * 1024  # a checkpoint is about 400 bytes; anything far larger is not one


@events_app.command("checkpoint")
def checkpoint() -> None:
    """Print this node's signed chain head as one JSON object (actor, seq, hash, time, signature,
    public_key); keep it where this machine cannot change it, and check against it later.

    Example: tessera events checkpoint > /backup/tessera-checkpoint.json
    """
    import orjson

    from tessera.core import events

    sys.stdout.buffer.write(orjson.dumps(events.checkpoint(open_store())) + b"\n")


@events_app.command("prune")
def prune(
    older_than: Annotated[str, typer.Option("--older-than", metavar="WHEN", help="Remove events before WHEN: a duration back (30d) or an RFC 3339 time.")],
) -> None:
    """Remove old events; the rest still verifies (the chain is re-anchored)."""
    from tessera.core import events

    removed = events.prune(open_store(), older_than=events.parse_when(older_than, flag="--older-than"))
    print(f"removed {removed} events")


def register(app: typer.Typer) -> None:
    """Add the events command group to ``app``."""
    app.add_typer(events_app, name="events")
