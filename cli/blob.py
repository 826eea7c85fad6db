"""``tessera blob put/get/share/unshare/list/rm``: the content-addressed blob store and fetching blobs from
peers (large results, recordings, notebook exports). Thin shells over tessera.core.blobs."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, List, Optional

import typer

from tessera.cli import completers
from tessera.cli.messages import open_store

_SETTINGS = dict(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                 context_settings={"help_option_names": ["-h", "--help"]})
blob_app = typer.Typer(name="blob", help="Blobs: files moved to and from peers in verified, resumable chunks.", **_SETTINGS)

IdArg = Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                      help="A blob's id (as `blob put` printed it; a unique start of 10+ characters "
                                           "for blobs held here).")]
PeersOpt = Annotated[Optional[List[str]], typer.Option("--from", metavar="PEER", show_default=False,
                                                       autocompletion=completers.peers,
                                                       help="Fetch from this peer (repeatable: chunks are split between them; "
                                                            "default: every peer this node subscribes to).")]


@blob_app.command("put")
def put(file: Annotated[str, typer.Argument(metavar="FILE", show_default=False,
                                            help="Any file: a `tessera record` recording, a `notebook export`, a result.")],
        chunk_size: Annotated[str, typer.Option("--chunk-size", metavar="SIZE",
                                                help="Chunk size, 16KiB to 2MiB (the id depends on it; a serve answers 20 chunk "
                                                     "requests a second, so small chunks fetch slowly).")] = "1MiB",
        share_with: Annotated[Optional[List[str]], typer.Option(
            "--share-with", metavar="PEER", show_default=False, autocompletion=completers.peers,
            help="Let this peer fetch it (repeatable).")] = None) -> None:
    """Store FILE in this node's blob store and print its id (the same content with the same
    chunk size has the same id on every node).

    Example: tessera blob put incident.tsrec --share-with bob
    """
    from pathlib import Path

    from tessera.core.blobs import blob_store, manifest
    from tessera.core.peers import peer_list

    size = manifest.parse_chunk_size(chunk_size)
    conn = open_store()
    peers = [peer_list.resolve(conn, name) for name in share_with or []]
    print(blob_store.put_file(conn, Path(file), chunk_size=size, grant_to=[p.node_id for p in peers]))
    _warn_unpublished(peers)


def _warn_unpublished(peers: list) -> None:
    """A grant to a peer this node does not publish to is kept, but serve refuses that peer."""
    from tessera.cli.messages import print_warning
    from tessera.core.errors import printable

    for peer in peers:
        if not peer.publish:
            print_warning(f"{printable(peer.name)} cannot fetch it yet: this node does not publish to it "
                          f"(tessera peer add {peer.node_id} --publish)")


@blob_app.command("get")
def get(blob: IdArg, from_peers: PeersOpt = None,
        output: Annotated[Optional[str], typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                                      help="Also write the blob to FILE (0600, replaced whole).")] = None) -> None:
    """Fetch a blob from peers into this node's blob store (resuming a fetch that was stopped),
    verifying every chunk. A progress bar on a terminal; one JSON line on stdout otherwise.
    Exits 5 when no peer shares it with this node, 3 when none could be reached.

    Example: tessera blob get 3f2a...c9 --from bob --from carol -o incident.tsrec
    """
    from tessera.core.errors import UsageError, printable
    from tessera.core.peers import message_types, peer_list

    blob_id = blob.strip().lower()
    conn = open_store()
    if not message_types.BLOB_ID.fullmatch(blob_id):
        from tessera.core.blobs import blob_store

        try:
            blob_id = blob_store.resolve(conn, blob_id)
        except UsageError:
            raise UsageError(f"'{printable(blob)}' is not a blob id (64 hex digits)",
                             hint="give the whole id `tessera blob put` printed") from None
    if from_peers:
        peers = list({p.node_id: p for p in (peer_list.resolve(conn, name) for name in from_peers)}.values())
    else:
        peers = [p for p in peer_list.all_peers(conn) if p.subscribe]
    report = asyncio.run(_get(conn, blob_id, peers))
    if output is not None:
        _write_out(conn, blob_id, output)
    line = report.as_dict()
    if output is not None:
        line["output"] = output
    if sys.stdout.isatty():
        shown = "already held" if report.already_held else \
            f"{report.fetched} chunks fetched" + (f", {report.resumed} kept from before" if report.resumed else "")
        print(printable(f"{blob_id}  {report.size} bytes, {shown}  {output or report.path}"))
    else:
        print(json.dumps(line), flush=True)


async def _get(conn, blob_id: str, peers: list):
    from tessera.cli.messages import print_message
    from tessera.core.blobs import fetch
    from tessera.core.peers import node_endpoint

    report = fetch.FetchReport(blob_id)
    endpoint = await node_endpoint.bind(conn, listen=False)
    try:
        progress = _progress() if sys.stderr.isatty() else None
        if progress is None:
            await fetch.fetch(conn, endpoint, blob_id, peers, on_note=print_message, report=report)
            return report
        with progress:
            task = progress.add_task(blob_id[:16], total=None)

            def on_chunk(index: int, size: int, peer: str) -> None:
                if progress.tasks[0].total is None:
                    progress.update(task, total=report.size, completed=report.size * report.resumed
                                    // max(report.chunk_count, 1))
                progress.advance(task, size)

            await fetch.fetch(conn, endpoint, blob_id, peers, on_chunk=on_chunk, on_note=print_message, report=report)
        return report
    finally:
        await endpoint.close()


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                    TransferSpeedColumn(), console=Console(stderr=True), transient=True,
                    redirect_stdout=False, redirect_stderr=False)


def _write_out(conn, blob_id: str, output: str) -> None:
    """Copy the held blob to ``output`` atomically (a temporary file beside it, fsync, rename), 0600."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from tessera.core.blobs import blob_store
    from tessera.core.errors import UsageError, printable

    target = Path(output)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {printable(output)}: {printable(str(target.parent))} is not a directory",
                         hint="give -o a path in an existing directory")
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        try:
            with os.fdopen(fd, "wb") as out, open(blob_store.blob_path(conn, blob_id), "rb") as source:
                shutil.copyfileobj(source, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if blob_store.is_disk_full(exc):
                raise blob_store.disk_full(exc, target.parent) from None
            raise blob_store.BlobError(f"cannot write {printable(output)}: {exc.strerror}", hint="check the path") from None
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@blob_app.command("share")
def share(blob: IdArg, with_peers: Annotated[List[str], typer.Option(
        "--with", metavar="PEER", show_default=False, autocompletion=completers.peers,
        help="The peer that may fetch it (repeatable).")]) -> None:
    """Let peers fetch a blob this node holds (a peer this node publishes to).

    Example: tessera blob share 3f2a...c9 --with bob
    """
    from tessera.core.blobs import blob_store, grants
    from tessera.core.errors import printable
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction

    conn = open_store()
    blob_id = blob_store.resolve(conn, blob)
    peers = [peer_list.resolve(conn, name) for name in with_peers]
    with transaction(conn):
        grants.grant(conn, blob_id, [p.node_id for p in peers])
    print(printable(f"shared blob {blob_id[:16]} with {', '.join(p.name for p in peers)}"))
    _warn_unpublished(peers)


@blob_app.command("unshare")
def unshare(blob: IdArg, with_peers: Annotated[List[str], typer.Option(
        "--with", metavar="PEER", show_default=False, autocompletion=completers.peers,
        help="The peer that may no longer fetch it (repeatable).")]) -> None:
    """Take back a blob's grant: a running `tessera serve` refuses the peer's next request for it.

    Example: tessera blob unshare 3f2a...c9 --with bob
    """
    from tessera.core.blobs import blob_store, grants
    from tessera.core.errors import UsageError, printable
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction

    conn = open_store()
    blob_id = blob_store.resolve(conn, blob)
    peers = [peer_list.resolve(conn, name) for name in with_peers]
    with transaction(conn):
        missing = [p.name for p in peers if not grants.is_granted(conn, blob_id, p.node_id)]
        if missing:
            raise UsageError(f"blob {blob_id[:16]} is not shared with {printable(', '.join(missing))}",
                             hint="see `tessera blob list`")
        grants.revoke(conn, blob_id, [p.node_id for p in peers])
    print(printable(f"stopped sharing blob {blob_id[:16]} with {', '.join(p.name for p in peers)}"))


@blob_app.command("list")
def list_blobs(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the blobs held here (and fetches under way): id, size, chunks, state, with whom shared.

    Example: tessera blob list --json
    """
    from tessera.core.blobs import blob_store, grants
    from tessera.core.errors import printable
    from tessera.core.peers import peer_list

    conn = open_store()
    names = {p.node_id: p.name for p in peer_list.all_peers(conn)}
    rows = []
    for found in blob_store.all_blobs(conn):
        done = found.manifest.chunk_count if found.complete else conn.execute(
            "SELECT count(*) FROM blob_progress WHERE blob_id = ?", (found.blob_id,)).fetchone()[0]
        rows.append({"id": found.blob_id, "size": found.size, "chunk_size": found.chunk_size,
                     "chunks": found.manifest.chunk_count, "verified_chunks": done,
                     "state": "held" if found.complete else "partial", "name": found.name,
                     "shared_with": [names.get(n, n[:10]) for n in grants.grantees(conn, found.blob_id)],
                     "added_at": found.added_at})
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("no blobs yet (store one: tessera blob put FILE)")
        return
    table = [["ID", "SIZE", "CHUNKS", "STATE", "NAME", "SHARED WITH"]]
    for r in rows:
        state = r["state"] if r["state"] == "held" else f"partial {r['verified_chunks']}/{r['chunks']}"
        table.append([r["id"][:16], str(r["size"]), str(r["chunks"]), state, printable(r["name"]),
                      printable(", ".join(r["shared_with"])) or "-"])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


@blob_app.command("rm")
def rm(blob: IdArg) -> None:
    """Delete a blob (or a fetch under way) from this node: its file, its grants, its progress.

    Example: tessera blob rm 3f2a...c9
    """
    from tessera.core.blobs import blob_store

    conn = open_store()
    blob_id = blob_store.resolve(conn, blob)
    blob_store.remove(conn, blob_id)
    print(f"removed blob {blob_id[:16]}")


def register(app: typer.Typer) -> None:
    """Add the blob commands to ``app``."""
    app.add_typer(blob_app, name="blob")
