"""``tessera shell``: scripted through stdin (a subprocess, as a pipeline uses it), interactive
through prompt-toolkit's pipe input, and for real on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
import threading
import time

import pytest

from tessera.cli.options import OutputSettings
from tessera.core import config

SHELL = [sys.executable, "-m", "tessera.cli.main", "shell"]


def shell(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SHELL, *args], input=script, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def jsonl(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- scripted: stdin is not a terminal ------------------------------------------------------


def test_statements_one_per_line_over_lines_or_split_by_semicolons():
    script = (
        'MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n LIMIT 2\n'
        'MATCH (c:Certificate) RETURN count(c) AS certs; MATCH (n:Namespace) RETURN count(n) AS ns;\n'
        '\n'
        '// a statement over lines runs once it parses\n'
        'MATCH (d:Deployment)\n'
        'WHERE d.metadata.namespace = "shop"\n'
        'RETURN count(d) AS shop\n'
        'MATCH (s:Service) RETURN count(s) AS services'  # the end of input runs the last one
    )
    proc = shell(script, "-s", "demo")
    assert proc.returncode == 0, proc.stderr
    assert jsonl(proc.stdout) == [{"n": "ads"}, {"n": "auth"}, {"certs": 3}, {"ns": 4}, {"shop": 6}, {"services": 18}]
    assert proc.stderr == ""


def test_limit_gives_each_statement_its_first_rows():
    script = ("MATCH (d:Deployment)->(rs:ReplicaSet) RETURN rs.metadata.name AS rs\n"
              "MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n DESC\n")
    everything = jsonl(shell(script, "-s", "demo").stdout)
    limited = shell(script, "-s", "demo", "--limit", "2")
    assert limited.returncode == 0, limited.stderr
    joined = [r for r in everything if "rs" in r]
    names = [r for r in everything if "n" in r]
    assert len(joined) > 2 and jsonl(limited.stdout) == joined[:2] + names[:2]


def test_an_incomplete_statement_stops_the_script_with_its_exit_code():
    proc = shell("MATCH (p:Pod)\n\nMATCH (s:Service) RETURN count(s) AS n\n", "-s", "demo")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines()[0].startswith("tessera: parse error at line 1, column 14: incomplete query")


def test_a_parse_error_prints_one_line_and_a_caret_then_stops():
    proc = shell('MATCH (p:Pod RETURN p\nMATCH (p:Pod) RETURN count(p) AS n\n', "-s", "demo")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == ('tessera: parse error at line 1, column 14: expected ) or {, got "RETURN"\n'
                           "  MATCH (p:Pod RETURN p\n"
                           "               ^\n")
    assert "Traceback" not in proc.stderr


def test_backslash_commands_change_format_and_scope():
    script = (
        "\\o json\n"
        "MATCH (n:Namespace) RETURN count(n) AS n\n"
        "\\o\n"
        "\\o csv\n"
        "\\n payments\n"
        "MATCH (d:Deployment) RETURN d.metadata.name AS name ORDER BY name\n"
        "\\A\n"
        "\\o jsonl\n"
        "MATCH (d:Deployment) RETURN count(d) AS all_deployments\n"
        "\\n shop\n"
        "MATCH (d:Deployment) RETURN count(d) AS shop\n"
        "\\n\n"
        "MATCH (d:Deployment) RETURN count(d) AS default_scope\n"
        "\\q\n"
        "MATCH (p:Pod) RETURN p\n"
    )
    proc = shell(script, "-s", "demo")
    assert proc.returncode == 0, proc.stderr
    json_part, rest = proc.stdout.split("]\n", 1)
    assert json.loads(json_part + "]") == [{"n": 4}]
    lines = rest.splitlines()
    assert lines[0] == "json", "\\o alone prints the format"
    assert lines[1:5] == ["name", "fraud-detector", "ledger", "payments-api"], "csv, payments only"
    assert jsonl("\n".join(lines[5:])) == [{"all_deployments": 14}, {"shop": 6}, {"default_scope": 14}]
    assert "output format: json" in proc.stderr and "namespace: payments" in proc.stderr
    assert "all namespaces: on" in proc.stderr


def test_quiet_mutes_acknowledgements():
    proc = shell("\\o json\n\\n shop\n", "-s", "demo", "-q")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""


def test_macros_run_and_list():
    proc = shell(":ns\n:public_deploy frontend\n\\m\n\\m expose\n", "-s", "demo", "-o", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["Name"] for r in rows[:4]] == ["shop", "payments", "platform", "monitoring"]
    assert {r["Host"] for r in rows[4:]} == {"shop.acme.example"} and len(rows) == 7
    listing = [line for line in proc.stdout.splitlines() if not line.startswith("{")]
    assert any(line.split()[:2] == [":po", "List"] for line in listing)
    assert any(line.split()[:3] == [":expose_public", "deploymentName", "hostname"] for line in listing)
    assert ":expose deploymentName  # Expose a deployment as a service  (built-in)" in listing
    assert "CREATE (deployment)->(service:Service);" in listing


def test_macro_errors_are_usage_errors():
    proc = shell(":deplyo\n", "-s", "demo")
    assert proc.returncode == 2 and proc.stderr == "tessera: unknown macro ':deplyo' (did you mean :deploy?)\n"
    proc = shell(":expose\n", "-s", "demo")
    assert proc.returncode == 2 and "takes 1 argument, got 0 (usage: :expose deploymentName)" in proc.stderr
    proc = shell("\\zz\n", "-s", "demo")
    assert proc.returncode == 2 and proc.stderr == "tessera: unknown command \\zz (\\h lists the commands)\n"
    proc = shell("\\o nope\n", "-s", "demo")
    assert proc.returncode == 2 and "'nope' is not a format" in proc.stderr


def test_user_macro_file_overrides_and_its_errors_name_the_line():
    path = config.macros_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(":po # just count\nMATCH (p:Pod)\n  RETURN count(p) AS n;\n")
    proc = shell(":po\n", "-s", "demo")
    assert proc.returncode == 0 and jsonl(proc.stdout) == [{"n": 31}], proc.stderr
    path.write_text(":ok\nMATCH (p:Pod) RETURN p;\n:bad-name\nMATCH (p:Pod) RETURN p;\n")
    proc = shell("MATCH (p:Pod) RETURN count(p) AS n\n", "-s", "demo")
    assert proc.returncode == 2 and proc.stderr.startswith(f"tessera: {path}:3: 'bad-name' is not a valid macro name")


def test_help_lists_every_command():
    proc = shell("\\h\n", "-s", "demo")
    assert proc.returncode == 0
    for command in ("\\o [FORMAT]", "\\n [NAMESPACE]", "\\A", "\\c [CONTEXT...]", "\\dr", "\\m [NAME]", "\\h", "\\q"):
        assert f"  {command}" in proc.stdout
    assert str(config.macros_file()) in proc.stdout


def test_flags_are_checked():
    proc = shell("", "-s", "-")
    assert proc.returncode == 2 and "stdin cannot be a source" in proc.stderr
    proc = shell("", "-s", "demo", "-n", "a", "-A")
    assert proc.returncode == 2
    proc = shell("", "-s", "demo", "-o", "nope")
    assert proc.returncode == 2


def test_mutations_dry_run_context_switch_and_apply(kubeconfig, kube_api, kube_api_b):
    script = (
        "\\dr\n"
        'MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 4\n'
        "\\dr\n"
        "\\c emu-b\n"
        "MATCH (d:Deployment) RETURN d.metadata.name AS name ORDER BY name\n"
        'MATCH (d:Deployment {name: "api-b"}) SET d.spec.replicas = 3\n'
    )
    proc = shell(script, "--kubeconfig", str(kubeconfig), "-o", "jsonl")
    assert proc.returncode == 0, proc.stderr
    lines = jsonl(proc.stdout)
    assert lines[0]["method"] == "PATCH" and lines[0]["path"].endswith("/namespaces/shop/deployments/web")
    assert kube_api.get("apps/v1", "Deployment", "shop", "web")["spec"]["replicas"] == 2, "dry run changed nothing"
    assert lines[1:2] == [{"name": "api-b"}], "emu-b's default namespace is payments"
    assert lines[2] == {"context": "emu-b", "op": "patched", "kind": "Deployment", "namespace": "payments", "name": "api-b"}
    assert kube_api_b.get("apps/v1", "Deployment", "payments", "api-b")["spec"]["replicas"] == 3
    assert "dry-run: on" in proc.stderr and "context: emu-b" in proc.stderr
    proc = shell("\\c nowhere\n", "--kubeconfig", str(kubeconfig))
    assert proc.returncode == 2 and proc.stderr == "tessera: no context named 'nowhere' (contexts: emu-a, emu-b)\n"


def test_the_scripted_shell_does_not_load_prompt_toolkit():
    code = ("import sys, io\nfrom tessera.cli.main import main\n"
            "sys.stdin = io.StringIO('MATCH (n:Namespace) RETURN count(n) AS n\\n')\n"
            "rc = main(['shell', '-s', 'demo', '-o', 'jsonl'])\n"
            "print(rc, 'prompt_toolkit' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout == '{"n":4}\n' and proc.stderr.strip() == "0 False", proc.stderr


def test_the_shell_command_is_registered_with_the_shared_flags():
    from typer.main import get_command

    from tessera.cli.main import app

    command = get_command(app).commands["shell"]
    flags = {opt for param in command.params for opt in param.opts}
    assert {"-s", "--context", "-n", "-A", "--kubeconfig", "-o", "--dry-run", "--yes", "--read-only"} <= flags


# --- completion as the prompt offers it --------------------------------------------------------


def test_shell_completion_of_commands_arguments_kinds_and_fields():
    from tessera.cli.shell.repl import Shell

    sh = Shell(specs=["demo"])

    def at_end(text):
        start, candidates = sh.complete(text, len(text))
        return text[start:], candidates

    assert at_end("\\") == ("\\", ["\\o", "\\n", "\\A", "\\c", "\\dr", "\\m", "\\h", "\\q", "\\?"])
    assert at_end("\\o js") == ("js", ["json", "jsonl"])
    assert at_end("\\n p") == ("p", ["payments", "platform"])
    assert at_end("\\m exp") == ("exp", ["expose", "expose_public"])
    assert at_end("MATCH (c:Cert") == ("Cert", ["Certificate", "CertificateSigningRequest"])
    assert at_end("MATCH (c:Certificate) RETURN c.spec.") == ("", ["dnsNames", "dnsNames[*]", "dnsNames[0]",
                                                                   "duration", "issuerRef", "secretName"])
    assert at_end("MATCH (p:po) WHERE p.status.containerStatuses[*].rest") == ("rest", ["restartCount"])
    assert at_end(":cron") == ("cron", ["cronjob"])


# --- interactive: prompt-toolkit's pipe input -----------------------------------------------


def drive(chunks: list, pause: float = 0.1, **options) -> int:
    """Run the interactive shell, typing each chunk after a pause; a (chunk, seconds) item waits
    that long after it; a (chunk, predicate) item waits, up to 60 s, until ``predicate(session)``
    holds for the shell's PromptSession (a completion or the history load needs its turn on the
    event loop before the next key, however busy the machine)."""
    from unittest import mock

    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from tessera.cli.shell import prompt_ui as shell_app

    sessions: list = []

    class RecordedSession(PromptSession):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            sessions.append(self)

    def wait_until(predicate) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shell_session = next((s for s in sessions if s.completer is not None), None)
            if shell_session is not None and predicate(shell_session):
                return
            time.sleep(0.02)

    options.setdefault("out", OutputSettings(output="jsonl", color="never"))
    with create_pipe_input() as pipe, mock.patch.object(shell_app, "PromptSession", RecordedSession):
        def typist() -> None:
            for item in chunks:
                chunk, wait = item if isinstance(item, tuple) else (item, pause)
                pipe.send_text(chunk)
                if callable(wait):
                    wait_until(wait)
                else:
                    time.sleep(wait)

        threading.Thread(target=typist, daemon=True).start()
        return shell_app.run_interactive(input=pipe, output=DummyOutput(), threaded=False, **options)


def menu_for(text: str):
    """A drive() predicate: the completion menu is up with candidates for exactly ``text``."""
    def up(session) -> bool:
        state = session.default_buffer.complete_state
        return state is not None and state.original_document.text == text and bool(state.completions)
    return up


def test_interactive_multi_line_completion_history_and_commands(capsys):
    code = drive([
        "MATCH (d:Deployment)\r",              # incomplete: Enter starts a new line
        "RETURN count(d) AS n\r",              # now it parses: Enter runs it
        # Tab completes the field. It is sent once the menu from typing is up: a Tab handled before
        # that completion has run is dropped by prompt-toolkit (one completion at a time).
        ("MATCH (c:Certificate) RETURN c.spec.secretNa", menu_for("MATCH (c:Certificate) RETURN c.spec.secretNa")),
        ("\t", lambda s: s.default_buffer.text.endswith("secretName")), ",\r",
        "\x1b\r",                               # (Alt-Enter on a trailing comma runs it: an error)
        "\\o json\r",
        "MATCH (n:Namespace) RETURN count(n) AS ns ORDER BY ns\r",
        "MATCH (p:Pod) WHERE p.x = 1 AND\x03",  # Ctrl-C clears the input
        "\\q\r",
    ], specs=["demo"])
    assert code == 0
    out, err = capsys.readouterr()
    assert out == '{"n":14}\n[\n  {\n    "ns": 4\n  }\n]\n', err
    assert "tessera: parse error at line 1, column 48" in err  # "c.spec.secretName," then nothing
    history = (config.data_home() / "shell_history")
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    entries = [e for e in history.read_text().split("\n\n") if e.strip()]
    bodies = ["\n".join(line[1:] for line in e.splitlines() if line.startswith("+")) for e in entries]
    assert bodies == ["MATCH (d:Deployment)\nRETURN count(d) AS n",
                      "MATCH (c:Certificate) RETURN c.spec.secretName,\n",
                      "\\o json", "MATCH (n:Namespace) RETURN count(n) AS ns ORDER BY ns", "\\q"]


def test_interactive_history_is_kept_between_sessions(capsys):
    drive(["MATCH (n:Namespace) RETURN count(n) AS first\r", "MATCH (d:Deployment) RETURN count(d) AS second\r",
           "\x04"], specs=["demo"])
    code = drive([("", lambda s: len(s.history.get_strings()) >= 2),  # the history loads in the background
                  "\x1b[A", "\r",              # Up: the previous session's last query
                  "\x12", "Names", "\r", "\r",  # Ctrl-R search, Enter accepts it, Enter runs it
                  "\x04"], specs=["demo"])
    assert code == 0
    assert jsonl(capsys.readouterr().out) == [{"first": 4}, {"second": 14}, {"second": 14}, {"first": 4}]


def test_interactive_mutation_asks_first(capsys, kubeconfig, kube_api):
    code = drive([
        'MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 6\r', "n\r",
        'MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 7\r', "y\r",
        "\\q\r",
    ], kubeconfig=str(kubeconfig))
    assert code == 0
    out, err = capsys.readouterr()
    assert "cancelled: nothing was changed" in err and "patch  Deployment shop/web" in err
    assert kube_api.get("apps/v1", "Deployment", "shop", "web")["spec"]["replicas"] == 7
    assert jsonl(out) == [{"context": "emu-a", "op": "patched", "kind": "Deployment", "namespace": "shop", "name": "web"}]


def test_a_broken_macro_file_does_not_stop_the_interactive_shell(capsys):
    path = config.macros_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("MATCH (p:Pod) RETURN p\n")
    assert drive([":ns\r", "\\q\r"], specs=["demo"]) == 0
    out, err = capsys.readouterr()
    assert f"{path}:1: a statement outside a macro" in err and "using the built-in macros only" in err
    assert len(jsonl(out)) == 4


# --- the real thing: a pseudo-terminal ------------------------------------------------------


class TerminalShell:
    """``tessera shell -s demo`` on a pseudo-terminal of 120x40, read as a terminal would."""

    def __init__(self) -> None:
        import fcntl
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {**os.environ, "TERM": "xterm", "NO_COLOR": ""}
        self.proc = subprocess.Popen([*SHELL, "-s", "demo"], stdin=slave, stdout=slave, stderr=slave, env=env,
                                     close_fds=True)
        os.close(slave)
        self.seen = bytearray()

    def read_until(self, marker: bytes, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while marker not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return False
                self.seen.extend(chunk)
                if b"\x1b[6n" in chunk:  # answer the cursor-position request as a terminal does
                    os.write(self.master, b"\x1b[1;1R")
        return marker in self.seen

    def canonical(self) -> bool:
        """Whether the terminal is in its normal (line-editing, echoing) mode."""
        import termios

        lflag = termios.tcgetattr(self.master)[3]
        return bool(lflag & termios.ICANON) and bool(lflag & termios.ECHO)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        os.close(self.master)


def test_on_a_terminal(tmp_path):
    term = TerminalShell()
    try:
        assert term.read_until(b"tessera(demo|all)>"), bytes(term.seen)
        term.seen.clear()
        os.write(term.master, b'MATCH (d:Deployment {name: "frontend"}) RETURN d.spec.replicas AS replicas\r')
        assert term.read_until(b" 3 "), bytes(term.seen)  # a table on a terminal
        os.write(term.master, b"\\n shop\r")
        assert term.read_until(b"tessera(demo|shop)>"), bytes(term.seen).decode(errors="replace")
        os.write(term.master, b"\\q\r")
        assert term.proc.wait(timeout=60) == 0
    finally:
        term.close()
    assert "\\q" in (config.data_home() / "shell_history").read_text()


@pytest.mark.parametrize("signal_name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_kill_and_hangup_hand_the_terminal_back(signal_name, code):
    import signal

    term = TerminalShell()
    try:
        assert term.read_until(b"tessera(demo|all)>"), bytes(term.seen)
        os.write(term.master, b"MATCH (d:Deploy")
        assert term.read_until(b"Deploy")
        assert not term.canonical()  # the prompt holds the terminal in raw mode...
        term.proc.send_signal(getattr(signal, signal_name))
        assert term.proc.wait(timeout=60) == code
        assert term.canonical()  # ...and gives it back when a signal ends the shell
        assert b"Traceback" not in term.seen
    finally:
        term.close()
