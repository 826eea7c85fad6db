"""Sneakernet bundles: what this node shares, carried as a file instead of over a connection
(``tessera peer export`` / ``peer import``, docs/peers.md "Sneakernet").

A bundle is a sequence of frames (core/peers/frames.py: a 4-byte big-endian length, then one
msgpack map), first a signed manifest, then the pages it lists, in order:

    manifest {type: "bundle", version: 1, signer: node id, name, created, to: node id or "",
              pages: [{share, cursor_from, cursor_to, items, sha256: 32 bytes}], signature: 64 bytes}
    page     exactly a page as sync sends it (signed by the signer: core/peers/pages.py)

The manifest's signature is the signer's node key over its canonical bytes with the tag
``tessera-bundle/1\\0`` (core/peers/page_signing.py); each ``sha256`` is over that page's frame
body. Import checks the manifest's signature, that the signer is a known peer (and the bundle is
for this node when it names one), each page's hash and signature, and only then files every page
in the signer's replica in one transaction: an altered or truncated bundle writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tessera.core.errors import NotAuthorized, TesseraError, UsageError, printable
from tessera.core.peers import frames, message_types, page_signing, pages, peer_list, replica, shares

BUNDLE_TAG = b"tessera-bundle/1\0"
VERSION = 1
_MANIFEST_FIELDS = {"type": str, "version": int, "signer": str, "name": str, "created": str, "to": str, "pages": list,
                    "signature": bytes}


class BundleRefused(TesseraError):
    """The file is not a bundle, or was altered, truncated or signed by someone else (exit 1)."""


@dataclass
class Bundle:
    manifest: dict
    pages: list[dict] = field(default_factory=list)

    @property
    def signer(self) -> str:
        return self.manifest["signer"]


def export_items(conn: sqlite3.Connection, requested: list[str] | None, recipient: str | None) -> list[str]:
    """The items a bundle carries: those asked for (each must be shared with the recipient, or
    with someone when there is none), else every item granted to the recipient, else every item
    shared with every peer.

    Raises:
        UsageError (exit 2) for an item that is not shared so, or when there is nothing to export.
    """
    if requested:
        items = list(dict.fromkeys(shares.parse_item(i) for i in requested))
        for item in items:
            allowed = shares.is_granted(conn, recipient, item) if recipient else item in shares.grants(conn)
            if not allowed:
                whom = f" with {recipient[:10]}" if recipient else ""
                raise UsageError(f"{printable(item)} is not shared{whom}, so it is not exported",
                                 hint=f"share it first: tessera peer share {printable(item)}" + (f" --with {recipient[:10]}" if recipient else ""))
        return items
    if recipient:
        items = shares.granted(conn, recipient)
    else:
        items = [item for item, ids in shares.grants(conn).items() if shares.EVERY_PEER in ids]
    if not items:
        raise UsageError("nothing is shared" + (f" with {recipient[:10]}" if recipient else " with every peer") + ", so there is nothing to export",
                         hint="share something (tessera peer share ITEM [--with PEER]) or name it with --share")
    return items


def write(conn: sqlite3.Connection, path: Path, items: list[str], *, signing_key: Any, signer: str, name: str,
          recipient: str | None = None) -> dict:
    """Write the bundle of ``items`` (every page from cursor 0) to ``path``: 0600, atomically
    (a temporary file beside it, then renamed). Returns the manifest."""
    from tessera.core.times import now

    bodies, listed = [], []
    for item in items:
        cursor, more = 0, True
        while more:
            page = pages.build(conn, item, cursor, limit=pages.MAX_LIMIT, signing_key=signing_key)
            body = frames.encode(page)
            bodies.append(body)
            listed.append({"share": item, "cursor_from": page["cursor_from"], "cursor_to": page["cursor_to"],
                           "items": len(pages.items_of(page)), "sha256": hashlib.sha256(body[frames.HEADER_BYTES:]).digest()})
            cursor, more = page["cursor_to"], page["more"]
    manifest = {"type": "bundle", "version": VERSION, "signer": signer, "name": name, "created": now(),
                "to": recipient or "", "pages": listed}
    manifest = page_signing.signed(manifest, signing_key, tag=BUNDLE_TAG)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")  # 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(frames.encode(manifest))
            for body in bodies:
                out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return manifest


def _frames(data: bytes, where: str):
    """Each frame body's bytes in ``data``; refused when one is cut short."""
    offset = 0
    while offset < len(data):
        header = data[offset:offset + frames.HEADER_BYTES]
        if len(header) < frames.HEADER_BYTES:
            raise BundleRefused(f"{where} ends inside a frame header: it was cut short or altered")
        try:
            length = frames.body_length(header)
        except frames.ProtocolError:
            raise BundleRefused(f"{where} announces a frame over {frames.MAX_FRAME_BYTES} bytes: it is not a bundle, or was altered") from None
        start = offset + frames.HEADER_BYTES
        if start + length > len(data):
            raise BundleRefused(f"{where} ends inside a frame: it was cut short or altered")
        yield data[start:start + length]
        offset = start + length


def read(path: Path) -> Bundle:
    """The bundle in ``path``, its manifest's signature checked and each page's hash and
    signature checked against the manifest (not yet whether the signer is a peer).

    Raises:
        BundleRefused naming what is wrong; UsageError when the file cannot be read.
    """
    where = f"the bundle {printable(str(path))}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {where}: {exc.strerror}", hint="give the file `tessera peer export` wrote") from None
    bodies = _frames(data, where)
    first = next(bodies, None)
    try:
        manifest = frames.decode_body(first) if first is not None else None
    except frames.ProtocolError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("type") != "bundle":
        raise BundleRefused(f"{where} is not a tessera bundle", hint="give the file `tessera peer export` wrote")
    for name, kind in _MANIFEST_FIELDS.items():
        if type(manifest.get(name)) is not kind:
            raise BundleRefused(f"{where} has a manifest without a valid {name}: it was altered")
    if manifest["version"] != VERSION:
        raise BundleRefused(f"{where} is of bundle version {manifest['version']}; this Tessera reads version {VERSION}",
                            hint="import it with the Tessera that wrote it, or a newer one")
    if not message_types.NODE_ID.fullmatch(manifest["signer"]):
        raise BundleRefused(f"{where} names no valid signer: it was altered")
    if not page_signing.valid(manifest, manifest["signer"], tag=BUNDLE_TAG):
        raise BundleRefused(f"{where} has a manifest its signer did not sign: it was altered after it was written")
    bundle = Bundle(manifest)
    listed = manifest["pages"]
    for index, body in enumerate(bodies):
        if index >= len(listed):
            raise BundleRefused(f"{where} holds more pages than its manifest lists: it was altered")
        entry = listed[index]
        if not isinstance(entry, dict) or hashlib.sha256(body).digest() != entry.get("sha256"):
            raise BundleRefused(f"{where}: page {index + 1} does not match its hash in the manifest: it was altered")
        try:
            page = message_types.check(frames.decode_body(body))
        except frames.ProtocolError as exc:
            raise BundleRefused(f"{where}: page {index + 1} is not a page ({exc.message})") from None
        if page["type"] != "page" or page["share"] != entry.get("share"):
            raise BundleRefused(f"{where}: page {index + 1} is not the page its manifest lists")
        if not page_signing.valid(page, bundle.signer):
            raise BundleRefused(f"{where}: page {index + 1} is not signed by the bundle's signer")
        bundle.pages.append(page)
    if len(bundle.pages) != len(listed):
        raise BundleRefused(f"{where} holds {len(bundle.pages)} of the {len(listed)} pages its manifest lists: it was cut short")
    return bundle


def import_bundle(conn: sqlite3.Connection, path: Path, *, local_node_id: str) -> tuple[peer_list.Peer, dict[str, int]]:
    """Check the bundle in ``path`` whole, then file its pages in the signer's replica in one
    transaction. Pages already received (by sync or an earlier import) are skipped by hash.

    Returns:
        (the signer as a peer, items stored per share).
    Raises:
        BundleRefused (exit 1) for a bundle altered anywhere; NotAuthorized (exit 5) when the
        signer is not a peer of this node or the bundle was made for another node.
    """
    from tessera.core.store.db import transaction

    bundle = read(path)
    signer = peer_list.get(conn, bundle.signer)
    if signer is None:
        raise NotAuthorized(f"the bundle is signed by {bundle.signer[:10]} ({printable(bundle.manifest['name'][:64])}), "
                            "which is not a peer of this node", hint=f"tessera peer add {bundle.signer}")
    to = bundle.manifest["to"]
    if to and to != local_node_id:
        raise NotAuthorized(f"the bundle was made for {to[:10]}, not for this node ({local_node_id[:10]})",
                            hint=f"ask {printable(signer.name)} for a bundle made with --to {local_node_id[:10]}")
    stored: dict[str, int] = {}
    target = replica.open_for_write(signer.node_id, conn.path)
    try:
        with transaction(target):
            for page in bundle.pages:
                try:
                    added = replica.apply(target, signer.node_id, page, overlap=True)
                except replica.PageRefused as exc:
                    raise BundleRefused(f"the bundle {printable(str(path))} was refused: {exc.message}") from None
                stored[page["share"]] = stored.get(page["share"], 0) + added
    finally:
        target.close()
    return signer, stored
