"""Awareness states as a client sees them: who else is in the notebook, from the AWARENESS
messages the owner relays (core/collab/y_messages.py decodes them).

Two kinds of state, by who set them:

- a client's: ``{"name", "node", "cell": cell id | None, "run"}`` (the owner overwrites name and
  node with the peer's authenticated identity before relaying it);
- the owner's: ``{"name", "node", "people": [its local front ends: {client, name, node, cell}]}``.

``people`` flattens them into the list front ends show: ``{client, name, node, cell, where}``,
``where`` 'local' for a front end at the owner's node, 'peer' for a peer's.
"""

from __future__ import annotations

from tessera.core.collab.y_messages import short_text


class AwarenessView:
    """The latest state of each awareness client id (a newer clock wins, as in y-protocols)."""

    def __init__(self) -> None:
        self.states: dict[int, dict] = {}
        self.clocks: dict[int, int] = {}

    def apply(self, entries: list[tuple[int, int, dict | None]], *, own: int | None = None) -> bool:
        """Take the entries of one awareness update (ours, ``own``, skipped); whether anyone's
        state changed."""
        changed = False
        for client_id, clock, state in entries:
            if client_id == own:
                continue
            known = self.clocks.get(client_id)
            if known is not None and (clock < known or (clock == known and state is not None)):
                continue
            self.clocks[client_id] = clock
            if state is None:
                changed |= self.states.pop(client_id, None) is not None
            elif self.states.get(client_id) != state:
                self.states[client_id] = state
                changed = True
        return changed

    def clear(self) -> None:
        self.states.clear()
        self.clocks.clear()

    def people(self) -> list[dict]:
        out = []
        for client_id, state in sorted(self.states.items()):
            if isinstance(state.get("people"), list):  # the owner's: its own front ends
                for person in state["people"][:64]:
                    entry = _person(person, str(person.get("client", "")) if isinstance(person, dict) else "", "local")
                    if entry is not None:
                        out.append(entry)
            else:
                entry = _person(state, str(client_id), "peer")
                if entry is not None:
                    out.append(entry)
        return sorted(out, key=lambda p: (p["name"], p["client"]))


def _person(state: object, client: str, where: str) -> dict | None:
    if not isinstance(state, dict):
        return None
    name, node = short_text(state.get("name")), short_text(state.get("node"))
    if name is None or node is None:
        return None
    return {"client": client[:80], "name": name, "node": node, "cell": short_text(state.get("cell")), "where": where}
