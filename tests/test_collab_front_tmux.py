"""Two nodes' dashboards in real terminals (tmux) over a real `tessera serve` on 127.0.0.1
(issue 15, front): what bob types in his dashboard's editor shows in alice's dashboard, with
presence in both banners and where the panes run; a viewer's typing is refused by alice's node
with its message in the viewer's dashboard, and the viewer's text goes back to alice's."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.collab_helpers import befriend, init_node, owner_notebook, point_at, share, sources
from tests.test_dash_tmux import Tmux
from tests.test_peer_serve import env_for, procs, start_serve, tessera  # noqa: F401  (procs is a fixture)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

TESSERA = str(Path(sys.executable).parent / "tessera")
NOTE = "Notes for the shop team."


@pytest.fixture
def tmux():
    t = Tmux()
    yield t
    t.close()


def screen(tmux: Tmux, target: str) -> str:
    return tmux("capture-pane", "-p", "-t", target)


def wait_screen(tmux: Tmux, target: str, pattern: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(tmux, target)
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} did not appear in {target}; the screen was:\n{text}")


def close_editor_and_quit(tmux: Tmux, target: str) -> None:
    """Escape, then q once the editor is gone (an Escape followed at once by a key reads as Alt+key)."""
    tmux("send-keys", "-t", target, "Escape")
    deadline = time.monotonic() + 60
    while "saved as you type" in screen(tmux, target):
        assert time.monotonic() < deadline, screen(tmux, target)
        time.sleep(0.1)
    tmux("send-keys", "-t", target, "q")
    wait_screen(tmux, target, r"EXIT=0")


def start_dash(tmux: Tmux, target: str, home: Path, address: str) -> None:
    """``tessera dash ADDRESS`` as node ``home`` in tmux session ``target`` (no kubeconfig: cells
    run at the owner). The shell prints EXIT=code afterwards."""
    env = env_for(home)
    keep = {k: env[k] for k in ("TESSERA_HOME", "TESSERA_CONFIG_DIR", "TESSERA_PEER_LOOPBACK")}
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in keep.items())
    command = f"env -u COLUMNS -u LINES -u KUBECONFIG {assigns} {TESSERA} dash {address}; echo EXIT=$?; sleep 600"
    tmux("new-session", "-d", "-s", target, "-x", "110", "-y", "24", command)


@pytest.fixture
def shared_notes(tmp_path, procs):
    """alice serving notebook ops (one markdown cell) to bob (editor) and carol (viewer)."""
    alice, bob, carol = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    for home, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        init_node(home, name)
    befriend(alice, bob, role="editor")
    befriend(alice, carol, role="viewer")
    assert tessera(alice, "notebook", "new", "ops").returncode == 0
    added = tessera(alice, "cell", "add", "ops", NOTE, "--type", "markdown")
    assert added.returncode == 0, added.stderr
    share(alice, "ops", "bob", "carol")
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    point_at(carol, alice, listening["ticket"])
    return {"alice": alice, "bob": bob, "carol": carol, "serve": serve}


def test_text_typed_in_one_nodes_dashboard_shows_in_the_others(tmux, shared_notes):
    start_dash(tmux, "a", shared_notes["alice"], "ops")
    start_dash(tmux, "b", shared_notes["bob"], "alice:ops")
    wait_screen(tmux, "a", re.escape(NOTE))
    wait_screen(tmux, "b", re.escape(NOTE))
    wait_screen(tmux, "b", r"@alice")  # where bob's panes run
    wait_screen(tmux, "a", r"here: bob")  # alice's dashboard sees bob...
    wait_screen(tmux, "b", r"here: alice")  # ...and bob's sees alice's dashboard
    tmux("send-keys", "-t", "b", "e")
    wait_screen(tmux, "b", r"saved as you type")
    tmux("send-keys", "-t", "b", "End")
    tmux("send-keys", "-t", "b", "-l", " Bob was here.")
    wait_screen(tmux, "a", r"Notes for the shop team\. Bob was here\.")  # alice's pane shows bob's typing
    wait_screen(tmux, "a", r"bob \(cell 1\)")  # and that he is in cell 1
    want = NOTE + " Bob was here."
    assert sources(owner_notebook(shared_notes["alice"], "ops")).popitem()[1] == want
    close_editor_and_quit(tmux, "b")


def test_a_viewers_typing_is_refused_with_the_owners_message(tmux, shared_notes):
    start_dash(tmux, "c", shared_notes["carol"], "alice:ops")
    wait_screen(tmux, "c", re.escape(NOTE))
    wait_screen(tmux, "c", r"you are a viewer")
    tmux("send-keys", "-t", "c", "e")
    wait_screen(tmux, "c", r"saved as you type")
    tmux("send-keys", "-t", "c", "End")
    tmux("send-keys", "-t", "c", "-l", "X")
    wait_screen(tmux, "c", r"refused the edit: you are a viewer of ops")
    # nothing stored at alice; carol's open editor is back to alice's text
    assert sources(owner_notebook(shared_notes["alice"], "ops")).popitem()[1] == NOTE
    deadline = time.monotonic() + 60
    while "team.X" in screen(tmux, "c"):
        assert time.monotonic() < deadline, screen(tmux, "c")
        time.sleep(0.1)
    assert re.search(re.escape(NOTE), screen(tmux, "c"))
    close_editor_and_quit(tmux, "c")


def test_pane_of_a_peers_cell_on_a_terminal_follows_the_owners_cluster(tmux, tmp_path, procs, kubeconfig, kube_api,
                                                                        monkeypatch):
    """`tessera pane alice:ops/1` at bob, who has no kubeconfig: alice's serve runs the cell over
    her cluster and bob's pane shows its rows, says @alice, and follows a change there."""
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    init_node(alice, "alice")
    init_node(bob, "bob")
    befriend(alice, bob)
    assert tessera(alice, "notebook", "new", "ops").returncode == 0
    query = 'MATCH (p:Pod) WHERE p.metadata.namespace = "shop" RETURN p.metadata.name AS pod, p.status.phase AS phase'
    assert tessera(alice, "cell", "add", "ops", query, "--refresh", "watch").returncode == 0
    share(alice, "ops", "bob")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # alice's serve: her credentials
    _, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    env = env_for(bob)
    keep = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("TESSERA_HOME", "TESSERA_CONFIG_DIR", "TESSERA_PEER_LOOPBACK"))
    empty = tmp_path / "empty-home"
    empty.mkdir()
    command = (f"env -u COLUMNS -u LINES -u KUBECONFIG HOME={shlex.quote(str(empty))} {keep} {TESSERA} pane "
               "alice:ops/1; echo EXIT=$?; sleep 600")
    tmux("new-session", "-d", "-s", "p", "-x", "100", "-y", "20", command)
    wait_screen(tmux, "p", r"web-5d8f-0\s+Running")
    wait_screen(tmux, "p", r"@alice")
    pod = kube_api.get("v1", "Pod", "shop", "web-5d8f-0")
    kube_api.update({**pod, "status": {"phase": "Failed"}})
    wait_screen(tmux, "p", r"web-5d8f-0\s+Failed")
    tmux("send-keys", "-t", "p", "q")
    wait_screen(tmux, "p", r"EXIT=0")


def test_dash_of_a_peers_notebook_not_shared_is_one_line_and_exit_5(tmux, shared_notes):
    assert tessera(shared_notes["alice"], "notebook", "new", "private").returncode == 0
    start_dash(tmux, "n", shared_notes["bob"], "alice:private")
    text = wait_screen(tmux, "n", r"EXIT=5")
    assert "not shared" in text or "not_shared" in text
    assert "Traceback" not in text


def test_dash_run_local_runs_a_peers_cells_with_this_nodes_kubeconfig(tmux, tmp_path, procs, kube_api_b):
    """`tessera dash alice:ops --run local` at bob: the cells run at bob over his own cluster, and
    each pane says `local`."""
    from tests.kube_emulator import write_kubeconfig

    alice, bob = tmp_path / "alice", tmp_path / "bob"
    init_node(alice, "alice")
    init_node(bob, "bob")
    befriend(alice, bob)
    assert tessera(alice, "notebook", "new", "ops").returncode == 0
    query = 'MATCH (p:Pod) WHERE p.metadata.namespace = "shop" RETURN p.metadata.name AS pod, p.status.phase AS phase'
    assert tessera(alice, "cell", "add", "ops", query, "--refresh", "watch").returncode == 0
    share(alice, "ops", "bob")
    _, listening = start_serve(procs, alice)  # alice has no cluster at all here
    point_at(bob, alice, listening["ticket"])
    mine = write_kubeconfig(tmp_path / "bob-kubeconfig", {"bobs": (kube_api_b.url, "shop")}, current="bobs")
    start_dash(tmux, "l", bob, f"alice:ops --run local --kubeconfig {shlex.quote(str(mine))}")
    wait_screen(tmux, "l", r"web-b-5d8f-0\s+Running")
    wait_screen(tmux, "l", r"local · ")
    assert "@alice" not in screen(tmux, "l")
    tmux("send-keys", "-t", "l", "q")
    wait_screen(tmux, "l", r"EXIT=0")


def test_a_dashboard_opens_a_peers_notebook_offline_and_its_typing_reaches_the_owner_later(tmux, shared_notes, procs):
    """bob opened alice:ops before (his node keeps a copy); with alice's serve stopped his
    dashboard still opens it, says it is offline, takes his typing, and once alice's serve is
    back the typing reaches her store."""
    start_dash(tmux, "b", shared_notes["bob"], "alice:ops")
    wait_screen(tmux, "b", re.escape(NOTE))
    tmux("send-keys", "-t", "b", "q")
    wait_screen(tmux, "b", r"EXIT=0")
    tmux("kill-session", "-t", "b")
    serve = shared_notes["serve"]
    serve.terminate()
    assert serve.wait(60) == 0
    start_dash(tmux, "b2", shared_notes["bob"], "alice:ops")
    wait_screen(tmux, "b2", r"offline")
    wait_screen(tmux, "b2", re.escape(NOTE))
    tmux("send-keys", "-t", "b2", "e")
    wait_screen(tmux, "b2", r"saved as you type")
    tmux("send-keys", "-t", "b2", "End")
    tmux("send-keys", "-t", "b2", "-l", " Typed offline.")
    wait_screen(tmux, "b2", r"Typed offline\.")
    _, listening = start_serve(procs, shared_notes["alice"])
    point_at(shared_notes["bob"], shared_notes["alice"], listening["ticket"])
    deadline = time.monotonic() + 90
    while sources(owner_notebook(shared_notes["alice"], "ops")).popitem()[1] != NOTE + " Typed offline.":
        assert time.monotonic() < deadline, sources(owner_notebook(shared_notes["alice"], "ops"))
        time.sleep(0.2)
    close_editor_and_quit(tmux, "b2")
