"""A CollabClient in a process of its own, for the collab tests: started as
``python tests/collab_driver.py PEER NOTEBOOK [RUN]`` with the data home in the environment, it
reads one JSON command a line on stdin and prints one JSON line for each (and one for each event
the client reports), so a test can type, wait and kill it like a user's front end.

Commands: {"op": "show"} -> the notebook, people, status, role;
{"op": "type", "cell": ID, "text": T, "at": N|null} (insert T at N, default the end);
{"op": "add", "source": S} -> the new cell id; {"op": "move", "cell": ID, "to": N};
{"op": "split", "cell": ID}; {"op": "merge", "cell": ID}; {"op": "remove", "cell": ID};
{"op": "set_cell", "cell": ID|null}; {"op": "stop"}.
"""

from __future__ import annotations

import json
import os
import sys
import threading

lock = threading.Lock()


def emit(**fields) -> None:
    with lock:
        print(json.dumps(fields, default=str), flush=True)


def main() -> int:
    from tessera.core.collab.client import CollabClient
    from tessera.core.store.db import db_path

    peer, notebook = sys.argv[1], sys.argv[2]
    run = sys.argv[3] if len(sys.argv) > 3 else "none"
    client = CollabClient(str(db_path()), peer, notebook, run=run,
                          on_change=lambda how: emit(event="change", how=how),
                          on_presence=lambda people: emit(event="presence", people=people),
                          on_refused=lambda text: emit(event="refused", message=text),
                          on_status=lambda status, reason: emit(event="status", status=status, reason=reason))
    client.start()
    emit(event="started", pid=os.getpid())
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "stop":
            break
        try:
            emit(event="done", op=op, result=run_op(client, op, command))
        except Exception as exc:  # reported to the test, which asserts on it
            emit(event="done", op=op, error=f"{type(exc).__name__}: {exc}")
    client.stop()
    emit(event="stopped")
    return 0


def run_op(client, op: str, command: dict):
    if op == "show":
        with client.lock:
            doc = client.notebook.to_dict()
        return {"notebook": doc, "people": client.people(), "status": client.status, "role": client.role,
                "synced": client.wait_synced(0)}
    if op == "wait_synced":
        return client.wait_synced(command.get("timeout", 30))
    if op == "type":
        def typing(nb):
            source = nb.cell_by_id(command["cell"])["source"] if hasattr(nb, "cell_by_id") else \
                nb.cell(nb.number_of(command["cell"]))["source"]
            at = len(source) if command.get("at") is None else command["at"]
            text = source[:at] + command["text"] + source[at:]
            if hasattr(nb, "edit_source_by_id"):
                return nb.edit_source_by_id(command["cell"], text)
            return nb.edit_source(nb.number_of(command["cell"]), text)
        return client.edit(typing)
    if op == "add":
        return client.edit(lambda nb: nb.add_cell(source=command.get("source", ""))[0])
    if op == "move":
        return client.edit(lambda nb: nb.move_cell(nb.number_of(command["cell"]), command["to"]))
    if op == "split":
        return client.edit(lambda nb: nb.split_row(nb.number_of(command["cell"])))
    if op == "merge":
        return client.edit(lambda nb: nb.merge_rows(nb.number_of(command["cell"])))
    if op == "remove":
        return client.edit(lambda nb: nb.remove_cell(nb.number_of(command["cell"]))["id"])
    if op == "set_cell":
        client.set_cell(command["cell"])
        return True
    raise ValueError(f"unknown op {op}")


if __name__ == "__main__":
    sys.exit(main())
