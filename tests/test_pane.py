"""``tessera pane NB/N``: one live cell, full screen, in a real terminal (tmux, or a pty).

Each test runs its own tmux server (``tmux -L <unique>``, config /dev/null) and kills it at the
end; the pane runs under ``sh -c`` so the test can read its exit code and check that the
terminal mode came back (``stty -g`` before and after).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_NOTEBOOK = REPO / "plugins" / "sources" / "demo_data" / "dashboard.md"
_SCRIPT = Path(sys.executable).with_name("tessera")
# The installed console script when there is one (what users run), else the module.
TSR = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tessera.cli.main"]

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tsr(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                          **kwargs)


@pytest.fixture
def notebooks() -> None:
    """The bundled demo notebook (cells over replay:demo) as ``demo``, and ``ops`` over -s demo."""
    assert tsr("notebook", "import", str(DEMO_NOTEBOOK), "--name", "demo").returncode == 0
    assert tsr("notebook", "new", "ops").returncode == 0
    assert tsr("cell", "add", "ops", "-s", "demo", "--refresh", "watch", "--title", "Deployments",
               "MATCH (d:Deployment) RETURN d.metadata.name AS name, d.spec.replicas AS want").returncode == 0
    assert tsr("cell", "add", "ops", "-s", "demo", "--title", "Broken", "MATCH (x:Nope) RETURN x").returncode == 0


class Tmux:
    """An isolated tmux server for one test."""

    def __init__(self, width: int = 100, height: int = 30):
        self.socket = f"tessera-test-{uuid.uuid4().hex[:10]}"
        self.width, self.height = width, height
        self.windows = 0

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def start(self) -> None:
        self("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height))
        self("set-option", "-g", "remain-on-exit", "off")

    def run(self, command: str) -> str:
        """Run a shell command in a new window of the test's size; returns its target."""
        self.windows += 1
        name = f"w{self.windows}"
        env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("TESSERA_HOME", "TESSERA_CONFIG_DIR"))
        self("new-window", "-d", "-t", "t:", "-n", name, f"env {env} sh -c {shlex.quote(command)}")
        self("resize-window", "-t", f"t:{name}", "-x", str(self.width), "-y", str(self.height), check=False)
        return f"t:{name}"

    def capture(self, target: str) -> str:
        return self("capture-pane", "-p", "-t", target)

    def value(self, target: str, fmt: str) -> str:
        return self("display-message", "-p", "-t", target, fmt).strip()

    def wait_for(self, target: str, predicate, timeout: float = 60.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture(target)
            if predicate(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}; screen:\n{screen}")

    def kill(self) -> None:
        path = self("display-message", "-p", "#{socket_path}", check=False).strip()
        self("kill-server", check=False)
        if path:
            Path(path).unlink(missing_ok=True)  # tmux leaves the socket file behind


@pytest.fixture
def tmux(notebooks):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    server = Tmux()
    server.start()
    yield server
    server.kill()


def pane_script(args: str, pidfile: Path) -> str:
    """sh: run tessera pane (its pid in ``pidfile``), then report its exit code and whether the
    terminal mode is what it was before; keep the window open for the capture."""
    exe = shlex.join(TSR)
    # The trap keeps this shell alive through Ctrl-C (sent to the whole foreground group), as an
    # interactive shell would be; trapped (not ignored) signals are reset for the child.
    return (f"trap : INT; before=$(stty -g); sh -c 'echo $$ > {pidfile}; exec \"$@\"' sh {exe} pane {args}; echo EXIT=$?; "
            f"[ \"$(stty -g)\" = \"$before\" ] && echo TTY=restored || echo TTY=changed; sleep 600")


def deployments_row(screen: str, name: str) -> str | None:
    m = re.search(rf"^\S+\s+{re.escape(name)}\s+(\d+)", screen, re.M)
    return m.group(1) if m else None


def assert_clean_exit(tmux: Tmux, target: str, code: int) -> str:
    screen = tmux.wait_for(target, lambda s: "TTY=" in s, what=f"EXIT={code}")
    assert f"EXIT={code}" in screen, screen
    assert "TTY=restored" in screen, screen
    assert "Traceback" not in screen and "Error" not in screen, screen
    assert tmux.value(target, "#{alternate_on} #{cursor_flag}") == "0 1"  # normal screen, cursor shown
    return screen


@needs_tmux
def test_pane_paints_the_cell_and_quits_on_q(tmux, tmp_path):
    target = tmux.run(pane_script("demo/2", tmp_path / "pid"))
    screen = tmux.wait_for(target, lambda s: "payments-api" in s and "demo/2 Deployments live" in s,
                           what="the deployments table")
    lines = screen.rstrip("\n").split("\n")
    assert re.match(r"ns\s+deployment\s+want\s+ready", lines[0]), screen  # the result starts at the top
    status = lines[-1]
    assert "● demo/2 Deployments live" in status and "replay:demo · table · 14 rows · watch" in status
    assert tmux.value(target, "#{alternate_on} #{cursor_flag}") == "1 0"  # alternate screen, no cursor
    tmux("send-keys", "-t", target, "q")
    assert_clean_exit(tmux, target, 0)


@needs_tmux
def test_pane_keeps_the_last_column_of_full_width_lines(tmux, tmp_path):
    # At 49 columns the markdown cell wraps "...ten minutes of a small" to exactly 49 characters.
    tmux.width = 49
    target = tmux.run(pane_script("demo/7", tmp_path / "pid"))
    screen = tmux.wait_for(target, lambda s: "demo/7 markdown static" in s, what="the markdown cell")
    first = screen.split("\n")[0]
    assert first == "The demo recording replays ten minutes of a small", screen
    tmux("send-keys", "-t", target, "q")
    assert_clean_exit(tmux, target, 0)


@needs_tmux
@pytest.mark.parametrize("how, code", [("C-c", 130), ("HUP", 129), ("TERM", 143)])
def test_pane_exits_cleanly_on_signals(tmux, tmp_path, how, code):
    pidfile = tmp_path / "pid"
    target = tmux.run(pane_script("ops/1", pidfile))
    tmux.wait_for(target, lambda s: "grafana" in s, what="the first rows")
    if how == "C-c":
        tmux("send-keys", "-t", target, "C-c")
    else:
        os.kill(int(pidfile.read_text()), getattr(__import__("signal"), f"SIG{how}"))
    assert_clean_exit(tmux, target, code)


@needs_tmux
def test_pane_follows_a_replay(tmux, tmp_path):
    # The demo recording scales payments-api from 2 to 4 replicas about 70 s in: 1.75 s at 40x,
    # every 15 s with --loop, so a slow start (a busy machine) still sees 2 and then 4.
    target = tmux.run(pane_script("demo/2 --speed 40 --loop", tmp_path / "pid"))
    tmux.wait_for(target, lambda s: deployments_row(s, "payments-api") == "2", what="payments-api at 2 replicas")
    screen = tmux.wait_for(target, lambda s: deployments_row(s, "payments-api") == "4",
                           what="payments-api at 4 replicas")
    assert screen.rstrip("\n").split("\n")[-1].count("demo/2 Deployments live") == 1
    tmux("send-keys", "-t", target, "q")
    assert_clean_exit(tmux, target, 0)


@needs_tmux
def test_pane_keys(tmux, tmp_path):
    target = tmux.run(pane_script("demo/2", tmp_path / "pid"))
    tmux.wait_for(target, lambda s: "payments-api" in s, what="the table")
    tmux("send-keys", "-t", target, "v")  # json, not saved
    screen = tmux.wait_for(target, lambda s: '"deployment": "grafana"' in s, what="the json view")
    assert "· json* ·" in screen
    tmux("send-keys", "-t", target, "G")  # the end of the json text
    tmux.wait_for(target, lambda s: s.rstrip("\n").split("\n")[-2].strip() == "]", what="the last line")
    tmux("send-keys", "-t", target, "g")
    tmux.wait_for(target, lambda s: s.split("\n")[0] == "[", what="the first line")
    for _ in range(3):
        tmux("send-keys", "-t", target, "v")  # yaml, tree (the subgraph is planned for), graph
    tmux.wait_for(target, lambda s: "Deployment/payments/payments-api" in s, what="the graph view")
    tmux("send-keys", "-t", target, "v")  # back to the stored view
    tmux.wait_for(target, lambda s: "· table ·" in s and "payments-api" in s, what="the table again")
    tmux("send-keys", "-t", target, "p")
    tmux.wait_for(target, lambda s: "‖ demo/2 Deployments paused" in s, what="paused")
    tmux("send-keys", "-t", target, "p")
    tmux.wait_for(target, lambda s: "● demo/2 Deployments live" in s, what="live again")
    tmux("send-keys", "-t", target, "r")
    tmux("resize-window", "-t", target, "-x", "90", "-y", "8")  # SIGWINCH: drawn at the new size
    screen = tmux.wait_for(target, lambda s: "rows 1-6/14" in s, what="the table cut to 8 lines")
    assert len(screen.rstrip("\n").split("\n")) == 8
    tmux("send-keys", "-t", target, "j", "j")
    tmux.wait_for(target, lambda s: "rows 3-8/14" in s, what="scrolled by two rows")
    tmux("send-keys", "-t", target, "q")
    assert_clean_exit(tmux, target, 0)
    shown = tsr("notebook", "show", "demo/2", "-o", "json")
    assert '"view": "table"' in shown.stdout  # v changed nothing in the notebook


@needs_tmux
def test_pane_shows_errors_and_bad_addresses(tmux, tmp_path):
    target = tmux.run(pane_script("ops/2", tmp_path / "pid"))
    screen = tmux.wait_for(target, lambda s: "✖ ops/2 Broken error" in s, what="the error status")
    assert 'resource "Nope" not found' in screen.split("\n")[0]
    tmux("send-keys", "-t", target, "q")
    assert_clean_exit(tmux, target, 0)
    # A bad address is one line on stderr, before the terminal is touched.
    bad = tmux.run(pane_script("ops/9", tmp_path / "pid2"))
    screen = tmux.wait_for(bad, lambda s: "TTY=" in s, what="the exit")
    assert "tessera: notebook 'ops' has 2 cells; there is no cell 9" in screen and "EXIT=1" in screen
    assert "TTY=restored" in screen and "Traceback" not in screen


def test_pane_without_a_terminal_prints_jsonl(notebooks):
    proc = tsr("pane", "ops/1", "-o", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [__import__("json").loads(line) for line in proc.stdout.splitlines()]
    assert {"cell", "name", "want"} <= set(rows[0]) and any(r["name"] == "payments-api" for r in rows)
    piped = tsr("pane", "demo/2")  # stdout is a pipe: the same, without -o
    assert piped.returncode == 0 and '"deployment":"payments-api"' in piped.stdout.replace(" ", "")
    assert tsr("pane", "ops").returncode == 2  # a notebook, not a cell
    bad_view = tsr("pane", "ops/1", "--view", "pie")
    assert bad_view.returncode == 2 and bad_view.stderr.count("\n") == 1


# --- first paint, in a pty ---------------------------------------------------------------------


def _first_paint(args: list[str], marker: bytes, rows: bytes, *, importtime: bool = False) -> tuple[float, float, str]:
    """Spawn ``tessera pane`` on a 100x30 pty; seconds until ``marker`` (the status line) and
    ``rows`` (a result) appear, and what -X importtime wrote (when asked)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    cmd = [sys.executable, "-X", "importtime", "-m", "tessera.cli.main"] if importtime else TSR
    start = time.monotonic()
    proc = subprocess.Popen([*cmd, "pane", *args], stdin=slave, stdout=slave,
                            stderr=subprocess.PIPE if importtime else slave, start_new_session=True)
    os.close(slave)
    out = b""
    first = result = None
    try:
        while time.monotonic() - start < 60 and result is None:
            if select.select([master], [], [], 0.02)[0]:
                out += os.read(master, 65536)
            now = time.monotonic() - start
            if first is None and marker in out:
                first = now
            if result is None and rows in out:
                result = now
        os.write(master, b"q")
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and first is not None and result is not None, out[-2000:]
    return first, result, (err or b"").decode()


@pytest.mark.parametrize("args, marker", [(["demo/2"], b"Deployments"), (["ops/1"], b"Deployments")])
def test_pane_paints_its_status_line_no_later_than_the_rows(notebooks, args, marker):
    """The status line comes with the first frame, before (or with) the first rows; how soon is
    measured by bench/pane.py, not asserted here (a busy machine would fail any bound)."""
    paint, rows, _ = _first_paint(args, marker, b"payments-api")
    assert 0 < paint <= rows


def test_pane_imports_no_ui_toolkits(notebooks):
    _, _, imports = _first_paint(["ops/1"], b"Deployments", b"payments-api", importtime=True)
    modules = {line.split("|")[-1].strip() for line in imports.splitlines() if line.startswith("import time:")}
    assert "tessera.cli.pane" in modules and "rich.console" in modules
    assert not {m for m in modules if m.split(".")[0] in ("textual", "prompt_toolkit", "kubernetes")}


@needs_tmux
def test_pane_shows_a_lost_connection_and_the_recovery(tmux, tmp_path, kubeconfig, kube_api):
    assert tsr("notebook", "new", "kube").returncode == 0
    assert tsr("cell", "add", "kube", "--refresh", "watch", "--title", "Pods",
               "MATCH (p:Pod) RETURN p.metadata.name AS pod ORDER BY pod").returncode == 0
    target = tmux.run(pane_script(f"kube/1 --kubeconfig {kubeconfig}", tmp_path / "pid"))
    tmux.wait_for(target, lambda s: "web-5d8f-0" in s and "kube/1 Pods live" in s, timeout=60, what="the pods")
    kube_api.stop()
    screen = tmux.wait_for(target, lambda s: "kube/1 Pods reconnecting" in s, timeout=60, what="the lost connection")
    assert "connection lost" in screen and "retrying" in screen
    assert "web-5d8f-0" in screen, "the last rows stay on show"
    kube_api.start()
    screen = tmux.wait_for(target, lambda s: "kube/1 Pods live" in s, timeout=60, what="the recovery")
    assert "reconnected" in screen.rstrip("\n").split("\n")[-1] and "connection lost" not in screen
    tmux("send-keys", "-t", target, "q")
    assert_clean_exit(tmux, target, 0)
