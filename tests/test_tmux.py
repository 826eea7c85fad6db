"""``tessera tmux NB``: a tmux window laid out like the notebook, one ``tessera pane`` per cell.

Each test has its own tmux server (``-L <unique>``, started with ``-f /dev/null`` so no user
configuration applies), killed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_NOTEBOOK = REPO / "plugins" / "sources" / "demo_data" / "dashboard.md"
TSR = [sys.executable, "-m", "tessera.cli.main"]
DEMO_TITLES = ["Pods in trouble", "Deployments", "Pods by phase", "Requests per namespace", "Ingress routes",
               "payments wiring", "demo/7", "System"]  # the markdown cell has no title: its address instead


def tsr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, env=env)


def outside_env() -> dict:
    """This environment, as if not inside tmux (the test runner may be)."""
    return {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}


class Server:
    def __init__(self) -> None:
        self.socket = f"tessera-test-{uuid.uuid4().hex[:10]}"

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"tmux {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def panes(self, target: str) -> list[list[str]]:
        out = self("list-panes", "-t", target, "-F", "#{pane_top}\t#{pane_left}\t#{pane_width}\t#{pane_height}\t#{pane_title}")
        return [line.split("\t") for line in out.splitlines()]

    def wait_for_cells(self, target: str, addresses: list[str], timeout: float = 60.0) -> None:
        """Until pane i's status line names addresses[i] with a live, idle or static mark."""
        deadline = time.monotonic() + timeout
        missing = addresses
        while time.monotonic() < deadline:
            missing = []
            for i, address in enumerate(addresses):
                screen = self("capture-pane", "-p", "-t", f"{target}.{i}").rstrip("\n")
                last = screen.split("\n")[-1] if screen else ""
                if address not in last or "Traceback" in screen or not any(m in last for m in "●○¶"):
                    missing.append(address)
            if not missing:
                return
            time.sleep(0.1)
        raise AssertionError(f"panes not showing {missing}")


@pytest.fixture
def server():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    s = Server()
    s("-f", "/dev/null", "new-session", "-d", "-s", "keep", "-x", "120", "-y", "40")
    yield s
    path = s("display-message", "-p", "#{socket_path}").strip()
    subprocess.run(["tmux", "-L", s.socket, "kill-server"], capture_output=True, timeout=10)
    Path(path).unlink(missing_ok=True)  # tmux leaves the socket file behind


def expected_sizes(total: int, parts: int) -> list[tuple[int, int]]:
    """(start, size) of ``parts`` panes sharing ``total`` cells with 1-cell borders, as equal as
    can be."""
    room = total - (parts - 1)
    sizes = [room // parts + (1 if k < room % parts else 0) for k in range(parts)]
    starts = [sum(sizes[:k]) + k for k in range(parts)]
    return list(zip(starts, sizes, strict=True))


def test_tmux_lays_out_the_notebook_rows(server):
    assert tsr("notebook", "import", str(DEMO_NOTEBOOK), "--name", "demo").returncode == 0  # rows of 1, 2, 4 and 1
    proc = tsr("tmux", "demo", "-L", server.socket, "--speed", "30", env=outside_env())
    assert proc.returncode == 0, proc.stderr
    target = proc.stdout.strip()
    assert target == "tessera-demo:0" and proc.stderr == ""
    width, height = map(int, server("display-message", "-p", "-t", target, "#{window_width} #{window_height}").split())
    bands = expected_sizes(height, 4)
    expected = []
    for (top, h), cells in zip(bands, (1, 2, 4, 1), strict=True):
        for left, w in expected_sizes(width, cells):
            expected.append([str(top), str(left), str(w), str(h)])
    panes = server.panes(target)
    assert [p[:4] for p in panes] == expected
    assert [p[4] for p in panes] == DEMO_TITLES
    assert server("display-message", "-p", "-t", target, "#{window_name}").strip() == "demo"
    # Every pane runs tessera pane with this data home and the flags given.
    commands = server("list-panes", "-t", target, "-F", "#{pane_start_command}")
    assert commands.count(f"TESSERA_HOME={os.environ['TESSERA_HOME']}") == 8
    assert commands.count("--speed 30.0") == 8
    server.wait_for_cells(target, [f"demo/{n}" for n in range(1, 9)])
    deployments = server("capture-pane", "-p", "-t", f"{target}.1")
    assert "grafana" in deployments  # the first rows: four bands leave each pane a few lines
    # Again: the session exists now, so the window goes into it.
    again = tsr("tmux", "demo", "-L", server.socket, "--window", "second", env=outside_env())
    assert again.returncode == 0 and again.stdout.strip() == "tessera-demo:1"
    assert len(server.panes("tessera-demo:1")) == 8


def test_tmux_inside_tmux_adds_a_window_to_the_current_session(server):
    assert tsr("notebook", "new", "ops").returncode == 0
    for title in ("Everything", "Deployments", "Services"):
        kind = {"Everything": "Pod", "Deployments": "Deployment", "Services": "Service"}[title]
        add = tsr("cell", "add", "ops", "--title", title, f"MATCH (x:{kind}) RETURN x.metadata.name AS name")
        assert add.returncode == 0
    assert tsr("cell", "merge", "ops/2").returncode == 0  # rows: [1], [2, 3]
    socket_path, pid, session_id, pane_id = server(
        "display-message", "-p", "-t", "keep", "#{socket_path}\t#{pid}\t#{session_id}\t#{pane_id}").strip().split("\t")
    env = {**outside_env(), "TMUX": f"{socket_path},{pid},{session_id.lstrip('$')}", "TMUX_PANE": pane_id}
    proc = tsr("tmux", "ops", "-s", "demo", "--window", "opsw", "--attach", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "keep:1"
    windows = server("list-windows", "-t", "keep", "-F", "#{window_index} #{window_name} #{window_active}").split("\n")
    assert "1 opsw 1" in windows  # --attach inside tmux: the window is selected
    width, height = map(int, server("display-message", "-p", "-t", "keep:1", "#{window_width} #{window_height}").split())
    (top0, h0), (top1, h1) = expected_sizes(height, 2)
    (left0, w0), (left1, w1) = expected_sizes(width, 2)
    assert server.panes("keep:1") == [
        [str(top0), "0", str(width), str(h0), "Everything"],
        [str(top1), str(left0), str(w0), str(h1), "Deployments"],
        [str(top1), str(left1), str(w1), str(h1), "Services"],
    ]
    # The cells have no sources: -s demo reached every pane.
    server.wait_for_cells("keep:1", ["ops/1", "ops/2", "ops/3"])
    assert "payments-api" in server("capture-pane", "-p", "-t", "keep:1.1")


def test_tmux_errors_are_one_line(tmp_path, server):
    assert tsr("notebook", "new", "empty").returncode == 0
    proc = tsr("tmux", "empty", "-L", server.socket, env=outside_env())
    assert proc.returncode == 2 and proc.stderr.startswith("tessera: notebook 'empty' has no cells")
    proc = tsr("tmux", "nope", "-L", server.socket, env=outside_env())
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    proc = tsr("tmux", "empty", "-L", server.socket, "-n", "x", "-A", env=outside_env())
    assert proc.returncode == 2
    assert tsr("cell", "add", "empty", "-s", "demo", "MATCH (p:Pod) RETURN count(p)").returncode == 0
    proc = tsr("tmux", "empty", "-L", server.socket, "--attach", env=outside_env())  # no terminal here
    assert proc.returncode == 2 and f"attach later with: tmux -L {server.socket} attach -t tessera-empty" in proc.stderr
    assert "tessera-empty" not in server("list-sessions")  # refused before building anything


def test_tmux_without_a_notebook_suggests_tmux_name(server):
    assert tsr("notebook", "new", "a").returncode == 0
    assert tsr("notebook", "new", "b").returncode == 0
    proc = tsr("tmux", "-L", server.socket, env=outside_env())
    assert proc.returncode == 2
    assert proc.stderr == "tessera: which notebook? (a, b) (tessera tmux NAME)\n"


def test_tmux_needs_tmux(tmp_path):
    assert tsr("notebook", "new", "ops").returncode == 0
    proc = tsr("tmux", "ops", env={**outside_env(), "PATH": str(tmp_path)})  # no tmux on this PATH
    assert proc.returncode == 3
    assert proc.stderr == "tessera: tmux is not installed (install tmux, or run tessera pane NB/N in each terminal)\n"


def test_panes_get_the_request_timeout_the_window_was_given():
    from tessera.cli.options import LiveFlags
    from tessera.cli.tmux import pane_command

    flags = LiveFlags(context=["prod"], request_timeout="5s").as_args()
    assert flags == ["--context", "prod", "--request-timeout", "5s"]
    assert "--request-timeout 5s" in pane_command("ops", 2, flags)
    assert "--request-timeout" not in " ".join(LiveFlags().as_args())
