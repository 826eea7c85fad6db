"""Owner-run panes: the owner's node runs a shared notebook's cells for its peers and streams
each pane's state to them (``collab_pane``), so a viewer sees live results without any cluster
credentials of its own.

``PaneFeed`` is one NotebookSession at the owner, in ``tessera serve``'s process, with serve's
own sources and kubeconfig; only results leave it (pane_wire messages), never a credential. It
runs with SessionOptions.for_peers: a cell whose query writes is refused in its pane, and Secret
values stay hidden even where the owner opted in to see them. It records nothing in the owner's
store (the owner's own front ends record their runs): a feed is a view for peers.

The room (core/collab/) starts a feed when the first client asking for owner-run panes joins,
sends ``snapshot()`` to each client joining later, and stops it when the last such client leaves.

A pane snapshot over PANE_INLINE_LIMIT goes as a blob (core/blobs/, chunks of MAX_CHUNK_SIZE so a
64 MiB one is 32 chunk requests, inside the owner's per-peer burst): stored here, granted to the
node ids ``viewers()`` gives (the room's run=owner clients; ``grant`` adds a late joiner), named
``pane:<notebook id>:<cell id>``. Only the newest blob of a cell is kept (the one it supersedes is
removed, its grants with it), and all of them when the feed stops or starts (a serve killed
before it could remove its own).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

log = logging.getLogger(__name__)

PANE_BLOB_PREFIX = "pane:"


class PaneFeed:
    """A notebook's cells run at the owner, each pane change handed to ``send``.

    Args:
        db_path: the owner's store.
        notebook: the notebook's name (followed by id across a rename).
        send: ``send(cell id, pane_wire data)``, called from the feed's thread whenever a pane
            changes (row changes after a first snapshot; see core/collab/pane_wire.py).
        notebook_id: names the feed's pane blobs (default: the notebook's name).
        viewers: the node ids a pane blob is granted to (the room's run=owner clients; read
            on the feed's thread, so it returns a copy).
    """

    def __init__(self, db_path: str, notebook: str, send: Callable[[str, bytes], None], *,
                 notebook_id: str | None = None, viewers: Callable[[], Iterable[str]] = tuple):
        from tessera.core.collab.pane_wire import PaneEncoder
        from tessera.core.notebook.session import NotebookSession, SessionOptions

        self.send = send
        self.db_path = db_path
        self.viewers = viewers
        self._blob_prefix = f"{PANE_BLOB_PREFIX}{notebook_id or notebook}:"
        self._blobs: dict[str, str] = {}  # cell id -> its current pane blob
        self._encoder = PaneEncoder(store_blob=self._store_blob)
        self._lock = threading.Lock()
        self._sent: dict[str, object] = {}  # cell id -> the PaneState viewers were last sent
        options = SessionOptions(record=False, for_peers=True)
        self.session = NotebookSession(db_path, notebook, options, on_update=self._on_update,
                                       on_layout=self._on_layout)

    def start(self) -> None:
        self._remove_blobs()  # a killed serve's
        self.session.start()

    def stop(self) -> None:
        self.session.stop()
        with self._lock:
            self._remove_blobs()
            self._blobs.clear()

    def grant(self, node_id: str) -> None:
        """Let ``node_id`` (a client joining) fetch the panes' current blobs. (Its snapshot's
        blobs are granted to it as they are stored; this covers the others.)"""
        from tessera.core.blobs import grants

        with self._lock:
            if not self._blobs:
                return
            try:
                with self._store() as conn:
                    for blob_id in self._blobs.values():
                        grants.grant(conn, blob_id, [node_id])
            except Exception as err:  # the store busy: its fetch is refused, one line in its pane
                log.warning("owner-run pane blobs not granted: %s", err)

    def wait_loaded(self, timeout: float) -> bool:
        """True once the notebook has been read (every pane then has a state)."""
        return self.session.loaded.wait(timeout)

    def snapshot(self) -> list[tuple[str, bytes]]:
        """Every pane as it was last sent, each as a full snapshot, for a client joining late:
        the changes sent after it apply to exactly these rows."""
        with self._lock:
            return [(cell_id, self._encoder.snapshot(cell_id, state)) for cell_id, state in self._sent.items()]

    def run_now(self, cell_id: str) -> None:
        """Run the cell again now (a viewer's ``collab_run``; an unknown id is ignored), its next
        message a snapshot: a viewer that lost step with the cell's changes asks this way."""
        with self._lock:
            self._encoder.forget(cell_id)
        self.session.run_now(cell_id)

    # --- the session's callbacks (its worker thread) ---------------------------------------

    def _on_update(self, state: object) -> None:
        cell_id = state.cell["id"]  # type: ignore[attr-defined]
        with self._lock:
            data = self._encoder.encode(cell_id, state)
            self._sent[cell_id] = state
            self._deliver(cell_id, data)

    def _on_layout(self, session: object) -> None:
        shown = {c for row in self.session.layout for c in row}
        with self._lock:
            for cell_id in set(self._sent) - shown:
                del self._sent[cell_id]
                self._encoder.forget(cell_id)
                self._forget_blob(cell_id)
        if self.session.failure is not None:
            log.warning("owner-run panes of %s stopped: %s", self.session.name, self.session.failure)

    # --- pane blobs (under self._lock: called by the encoder) -----------------------------------

    def _store(self):
        from contextlib import closing

        from tessera.core.store.db import connect

        return closing(connect(self.db_path))

    def _store_blob(self, cell_id: str, data: bytes) -> str:
        """Store one pane's snapshot as a blob for the viewers; the cell's previous one goes."""
        from tessera.core.blobs import blob_store
        from tessera.core.blobs.manifest import MAX_CHUNK_SIZE

        with self._store() as conn:
            blob_id = blob_store.put_bytes(conn, data, chunk_size=MAX_CHUNK_SIZE, grant_to=list(self.viewers()),
                                           name=f"{self._blob_prefix}{cell_id}")
            previous = self._blobs.get(cell_id)
            self._blobs[cell_id] = blob_id
            if previous is not None and previous != blob_id and previous not in self._blobs.values():
                try:
                    blob_store.remove(conn, previous)
                except Exception as err:  # the store busy: removed when the feed stops or starts again
                    log.warning("superseded pane blob not removed: %s", err)
        return blob_id

    def _forget_blob(self, cell_id: str) -> None:
        """The cell is gone from the notebook: its blob too."""
        from tessera.core.blobs import blob_store

        blob_id = self._blobs.pop(cell_id, None)
        if blob_id is not None and blob_id not in self._blobs.values():
            try:
                with self._store() as conn:
                    blob_store.remove(conn, blob_id)
            except Exception as err:  # the store busy: removed when the feed stops or starts again
                log.warning("owner-run pane blob not removed: %s", err)

    def _remove_blobs(self) -> None:
        """Every pane blob of this notebook in the store (those of this feed and of a serve killed
        before it removed its own)."""
        from tessera.core.blobs import blob_store

        try:
            with self._store() as conn:
                prefix = self._blob_prefix
                for (blob_id,) in conn.execute("SELECT id FROM blobs WHERE substr(name, 1, ?) = ?",
                                               (len(prefix), prefix)).fetchall():
                    blob_store.remove(conn, blob_id)
        except Exception as err:  # the store busy: they are removed at the next start
            log.warning("owner-run pane blobs not removed: %s", err)

    def _deliver(self, cell_id: str, data: bytes) -> None:
        try:
            self.send(cell_id, data)
        except Exception as err:  # a room's failing send must not end the cells' runs
            log.warning("owner-run pane %s not sent: %s", cell_id, err)
