"""End to end: ``tessera dash`` on the bundled demo workspace in a real terminal (tmux), driven
with send-keys and read with capture-pane — including a change from the replayed recording."""

from __future__ import annotations

import json
import os
import re
import signal
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

TESSERA = str(Path(sys.executable).parent / "tessera")
DEMO_NOTEBOOK = Path(__file__).resolve().parents[1] / "plugins" / "sources" / "demo_data" / "dashboard.md"


class Tmux:
    """A private tmux server (its own socket) holding one session."""

    def __init__(self) -> None:
        self.socket = f"tessera-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} did not appear; the screen was:\n{text}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux():
    t = Tmux()
    yield t
    t.close()


def import_demo() -> None:
    subprocess.run([TESSERA, "notebook", "import", str(DEMO_NOTEBOOK), "--name", "demo"], check=True,
                   capture_output=True)


def start_dash(tmux: Tmux, flags: str = "", size: tuple[int, int] = (100, 30)) -> None:
    """``tessera dash demo FLAGS`` in a fresh tmux session; the shell then prints EXIT=code."""
    import_demo()
    # COLUMNS/LINES from the test's environment would override the pane's real size
    command = (f"env -u COLUMNS -u LINES TESSERA_HOME={os.environ['TESSERA_HOME']} {TESSERA} dash demo {flags}; "
               "echo EXIT=$?; sleep 600")
    tmux("new-session", "-d", "-s", "t", "-x", str(size[0]), "-y", str(size[1]), command)


def test_dash_on_the_demo_workspace(tmux):
    # Looped, so a slow start on a busy machine still sees the change: 30 s a cycle at 20x.
    start_dash(tmux, "--speed 20 --loop", size=(120, 40))
    tmux.wait_for(r"(?s)Pods in trouble.*Deployments.*Pods by phase.*Ingress routes.*payments wiring")
    # the recording starts with payments-api at 2 replicas...
    tmux.wait_for(r"payments-api\s+2\s+2", timeout=90)
    tmux("send-keys", "-t", "t", "?")
    tmux.wait_for(r"Cycle the view")
    tmux("send-keys", "-t", "t", "Escape")
    # the help gone: the Escape has been read (an Escape followed at once by a key reads as Alt+key)
    deadline = time.monotonic() + 60
    while "Cycle the view" in tmux.screen() and time.monotonic() < deadline:
        time.sleep(0.1)
    tmux("send-keys", "-t", "t", "v")  # the first pane as json
    tmux.wait_for(r'"pod": "')
    # ...and scales it to 4 about 65 recording seconds into each cycle (3.25 s at --speed 20)
    tmux.wait_for(r"payments-api\s+4\s+4", timeout=90)
    tmux("send-keys", "-t", "t", "q")
    tmux.wait_for(r"EXIT=0")
    assert "Traceback" not in tmux.screen()
    shown = subprocess.run([TESSERA, "notebook", "show", "demo", "-o", "json"], check=True, capture_output=True,
                           text=True).stdout
    first = json.loads(shown)["rows"][0]["cells"][0]
    assert first["id"] == "trouble" and first["view"] == "json"  # the key press was saved through the store


def test_dash_without_a_terminal_runs_once():
    import_demo()
    done = subprocess.run([TESSERA, "dash", "demo"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r["cell"] for r in rows} >= {"trouble", "deploys", "phases", "requests", "routes", "payments"}
    assert any(r.get("deployment") == "payments-api" for r in rows)


@pytest.mark.parametrize("flag, tracking", [("--mouse", "1"), ("--no-mouse", "0")])
def test_mouse_can_be_left_to_the_terminal(tmux, flag, tracking):
    start_dash(tmux, flag)
    tmux.wait_for(r"monitoring\s+grafana")
    # tmux knows whether the program in the pane asked the terminal for mouse events
    assert tmux("display-message", "-p", "-t", "t", "#{mouse_any_flag}").strip() == tracking
    if flag == "--mouse":
        # a wheel notch down over the Deployments pane (an SGR mouse report, as a terminal sends it)
        lines = tmux.screen().splitlines()
        row = next(i for i, line in enumerate(lines) if "monitoring grafana" in re.sub(r"\s+", " ", line))
        tmux("send-keys", "-t", "t", "-l", f"\x1b[<65;5;{row + 1}M")
        text = tmux.wait_for(r"Deployments")
        deadline = time.monotonic() + 60
        while "grafana" in text and time.monotonic() < deadline:
            time.sleep(0.1)
            text = tmux.screen()
        assert "grafana" not in text  # scrolled three rows: monitoring's deployments went by
    tmux("send-keys", "-t", "t", "j", "k")  # the keys work either way
    tmux("send-keys", "-t", "t", "q")
    tmux.wait_for(r"EXIT=0")


@pytest.mark.parametrize("signal_name, code", [("TERM", 143), ("HUP", 129), ("INT", 130)])
def test_signals_end_the_dashboard_cleanly(tmux, signal_name, code):
    start_dash(tmux)
    tmux.wait_for(r"Pods in trouble")
    shell = tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip()
    dash = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True).stdout.split()
    assert len(dash) == 1
    os.kill(int(dash[0]), getattr(signal, f"SIG{signal_name}"))
    tmux.wait_for(rf"EXIT={code}")
    # the terminal is handed back as it was: main screen, no mouse reports, no traceback
    assert tmux("display-message", "-p", "-t", "t", "#{alternate_on} #{mouse_any_flag}").strip() == "0 0"
    assert "Traceback" not in tmux.screen()
    verify = subprocess.run([TESSERA, "events", "verify"], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
