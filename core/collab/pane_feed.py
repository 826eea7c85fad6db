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
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class PaneFeed:
    """A notebook's cells run at the owner, each pane change handed to ``send``.

    Args:
        db_path: the owner's store.
        notebook: the notebook's name (followed by id across a rename).
        send: ``send(cell id, pane_wire data)``, called from the feed's thread whenever a pane
            changes (row changes after a first snapshot; see core/collab/pane_wire.py).
    """

    def __init__(self, db_path: str, notebook: str, send: Callable[[str, bytes], None]):
        from tessera.core.collab.pane_wire import PaneEncoder
        from tessera.core.notebook.session import NotebookSession, SessionOptions

        self.send = send
        self._encoder = PaneEncoder()
        self._lock = threading.Lock()
        self._sent: dict[str, object] = {}  # cell id -> the PaneState viewers were last sent
        options = SessionOptions(record=False, for_peers=True)
        self.session = NotebookSession(db_path, notebook, options, on_update=self._on_update,
                                       on_layout=self._on_layout)

    def start(self) -> None:
        self.session.start()

    def stop(self) -> None:
        self.session.stop()

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
        if self.session.failure is not None:
            log.warning("owner-run panes of %s stopped: %s", self.session.name, self.session.failure)

    def _deliver(self, cell_id: str, data: bytes) -> None:
        try:
            self.send(cell_id, data)
        except Exception as err:  # a room's failing send must not end the cells' runs
            log.warning("owner-run pane %s not sent: %s", cell_id, err)
