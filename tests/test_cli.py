"""The tessera command as a user runs it: formats, flags, errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TSR = [sys.executable, "-m", "tessera.cli.main"]


def run(*args, stdin=None, env=None):
    return subprocess.run([*TSR, *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_version():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("tessera 0.")


def test_default_format_in_a_pipe_is_jsonl():
    proc = run("query", "-s", "demo", "MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n LIMIT 2")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [{"n": "ads"}, {"n": "auth"}]


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "yaml", "csv", "cyphernetes", "tree", "graph", "dot", "mermaid"])
def test_every_format_runs(fmt):
    proc = run("query", "-s", "demo", "-o", fmt, "MATCH (d:Deployment {name: \"frontend\"})->(rs:ReplicaSet) RETURN d.metadata.name AS d, rs.metadata.name AS rs")
    assert proc.returncode == 0, proc.stderr
    assert "frontend" in proc.stdout
    assert proc.stderr == ""


def test_limit_and_color_flags():
    proc = run("query", "-s", "demo", "-o", "table", "--color", "always", "--limit", "1", "MATCH (p:Pod) RETURN p.metadata.name AS n ORDER BY n")
    assert "\x1b[" in proc.stdout and proc.stdout.count("\n") <= 3
    proc = run("query", "-s", "demo", "-o", "table", "--color", "auto", "MATCH (p:Pod) RETURN p.metadata.name AS n LIMIT 1",
               env={"NO_COLOR": "1"})
    assert "\x1b[" not in proc.stdout


def test_query_from_file_and_stdin(tmp_path):
    f = tmp_path / "q.cypher"
    f.write_text("// count pods\nMATCH (p:Pod) RETURN count(p) AS pods;\n")
    assert json.loads(run("query", "-s", "demo", "-f", str(f)).stdout) == {"pods": 31}
    assert json.loads(run("query", "-s", "demo", "-f", "-", stdin=f.read_text()).stdout) == {"pods": 31}


def test_manifests_from_stdin():
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n"
    proc = run("query", "-s", "-", "MATCH (c:cm) RETURN c.metadata.name AS n", stdin=doc)
    assert json.loads(proc.stdout) == {"n": "a"}


def test_parse_error_has_position_token_expectation_and_caret():
    proc = run("query", "-s", "demo", "MATCH (d:Deployment)\nWHERE d.spec.replicas >\nRETURN d")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == 'tessera: parse error at line 3, column 1: expected value, got "RETURN"'
    assert lines[1:] == ["  RETURN d", "  ^"]


@pytest.mark.parametrize("args, code, text", [
    (["query", "-s", "demo", "MATCH (x:Nope) RETURN x"], 1, 'resource "Nope" not found'),
    (["query", "-s", "/nonexistent", "MATCH (p:Pod) RETURN p"], 3, "no such file or directory"),
    (["query", "-s", "demo", "-n", "a", "-A", "MATCH (p:Pod) RETURN p"], 2, "cannot be used together"),
    (["query", "-s", "demo"], 2, "no query given"),
    (["query", "-s", "demo", "-o", "xml", "MATCH (p:Pod) RETURN p"], 2, "'xml' is not a format"),
    (["query", "-s", "demo", "MATCH (p:Pod) RETURN q"], 1, "unknown variable 'q' in RETURN"),
    (["nosuchcommand"], 2, "No such command"),
])
def test_errors_are_one_line_with_typed_exit_codes(args, code, text):
    proc = run(*args)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("tessera: ") and text in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""


def test_explain():
    proc = run("explain", "MATCH (p:Pod) WHERE p.status.phase = \"Failed\" RETURN p.metadata.name")
    plan = json.loads(proc.stdout)
    assert plan["mutation"] is False and plan["query"]["type"] == "Query"
    assert plan["query"]["where"]["op"] == "="
    bad = run("explain", "MATCH (p:Pod")
    assert bad.returncode == 1 and bad.stderr.startswith("tessera: parse error at line 1, column 13")


def test_kinds_over_manifests():
    rows = [json.loads(x) for x in run("kinds", "-s", "demo").stdout.splitlines()]
    cert = next(r for r in rows if r["kind"] == "Certificate")
    assert cert["group"] == "cert-manager.io" and cert["short_names"] == "cert,certs"
    assert any(r["kind"] == "Deployment" and r["short_names"] == "deploy" for r in rows)


def test_ambiguous_kind_lists_choices(tmp_path):
    crds = ""
    for group in ("a.io", "b.io"):
        crds += f"""---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec: {{group: {group}, scope: Namespaced, names: {{kind: Widget, plural: widgets}}, versions: [{{name: v1, served: true, storage: true}}]}}
"""
    f = tmp_path / "crds.yaml"
    f.write_text(crds)
    proc = run("query", "-s", str(f), "MATCH (w:widget) RETURN w")
    assert proc.returncode == 1
    assert "ambiguous" in proc.stderr and "widgets.a.io, widgets.b.io" in proc.stderr
    assert run("query", "-s", str(f), "MATCH (w:widgets.b.io) RETURN w").returncode == 0


def test_user_relationships_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "relationships.yaml").write_text("""relationships:
  - from: Certificate
    to: Secret
    type: CERT_STORED_IN
    match:
      - {from: spec.secretName, to: metadata.name, compare: exact}
""")
    proc = run("query", "-s", "demo", "-o", "jsonl", "MATCH (c:Certificate)->(s:Secret) RETURN c.metadata.name AS c, s.metadata.name AS s ORDER BY c",
               env={"TESSERA_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x) for x in proc.stdout.splitlines()] == [{"c": "gateway-tls", "s": "gateway-tls"}, {"c": "shop-tls", "s": "shop-tls"}]
    (home / "relationships.yaml").write_text("relationships:\n  - from: Certificate\n    to: Secret\n    typo: X\n")
    bad = run("query", "-s", "demo", "MATCH (c:Certificate) RETURN c", env={"TESSERA_HOME": str(home)})
    assert bad.returncode == 2 and "relationships.yaml:4" in bad.stderr


def test_info_prints_paths(tmp_path):
    info = json.loads(run("info", env={"TESSERA_HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}).stdout)
    assert info["paths"]["data_home"] == str(tmp_path)
    assert info["paths"]["relationships_file"] == str(tmp_path / "relationships.yaml")
    assert "manifests" in info["source_plugins"] and info["version"]


def test_broken_pipe_is_quiet():
    proc = subprocess.run(f"{sys.executable} -m tessera.cli.main query -s demo 'MATCH (p:Pod) RETURN p' | head -c 10",
                          shell=True, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "Broken" not in proc.stderr


def test_namespace_relates_to_every_namespaced_kind_in_it():
    proc = run("query", "-s", "demo", "-o", "jsonl", 'MATCH (n:Namespace {name: "payments"})->(d:Deployment) RETURN d.metadata.name AS d ORDER BY d')
    assert [json.loads(x)["d"] for x in proc.stdout.splitlines()] == ["fraud-detector", "ledger", "payments-api"]


# --- files tessera reads on its own (issue 12): one typed line, never a crash ------------------


def _one_typed_line(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("tessera: ") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr and "\x1b" not in proc.stderr
    return proc.stderr


def _capped(*args, env=None):
    """``run`` with the address space capped at 2 GiB: a segfault or a memory blow-up fails the test."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    proc = subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=120, preexec_fn=cap,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return proc


DEEP_YAML = "a: " + "{b: " * 50_000 + "1" + "}" * 50_000 + "\n"
ALIAS_BOMB = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))


@pytest.mark.parametrize("content,expected", [
    (DEEP_YAML, "nested deeper than 200 levels"),
    (ALIAS_BOMB, "aliases expand this document"),
    (b"current-context: caf\xe9\n", "kc.yaml:1:21: not UTF-8 text (byte 0xe9)"),
    ("[1, 2]\n", "has no current context"),
    ("contexts: 5\ncurrent-context: x\n", "no context named 'x'"),
], ids=["deep", "alias-bomb", "not-utf8", "a-list", "contexts-not-a-list"])
def test_hostile_kubeconfig(tmp_path, content, expected):
    kc = tmp_path / "kc.yaml"
    kc.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = _one_typed_line(_capped("query", "--kubeconfig", str(kc), "MATCH (p:Pod) RETURN p"), 3)
    assert expected in err


def test_kubeconfig_that_is_a_directory(tmp_path):
    err = _one_typed_line(_capped("query", "--kubeconfig", str(tmp_path), "MATCH (p:Pod) RETURN p"), 3)
    assert f"{tmp_path} is a directory" in err


@pytest.mark.parametrize("content,expected", [
    (DEEP_YAML, "nested deeper than 200 levels"),
    (b"relationships: []\n# caf\xe9\n", "relationships.yaml:2:6: not UTF-8 text (byte 0xe9)"),
], ids=["deep", "not-utf8"])
def test_hostile_relationships_file(isolated_home, content, expected):
    rules = isolated_home / "data" / "relationships.yaml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = _one_typed_line(_capped("query", "-s", "demo", "MATCH (p:Pod) RETURN p.metadata.name LIMIT 1"), 2)
    assert expected in err


@pytest.mark.parametrize("make,expected", [
    (lambda p: p.write_bytes(b'title = "caf\xe9"\n'), "not UTF-8 text (byte 0xe9 at offset 12)"),
    (lambda p: p.mkdir(), "Is a directory"),
], ids=["not-utf8", "directory"])
def test_hostile_config_toml(isolated_home, make, expected):
    config = isolated_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    make(config / "config.toml")
    err = _one_typed_line(_capped("query", "-s", "demo", "MATCH (p:Pod) RETURN p.metadata.name LIMIT 1"), 2)
    assert "config.toml" in err and expected in err


def test_print_error_escapes_control_characters_once_centrally(capsys):
    from tessera.cli.messages import print_error, print_warning
    from tessera.core.errors import ParseError, UsageError

    print_error(UsageError("bad \x1b[2J value\nsecond line", hint="tab\there \u202eevil"))
    print_warning("file \x1b]0;title\x07 skipped")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert err.splitlines() == ["tessera: bad \\x1b[2J value\\nsecond line (tab\\there \\u202eevil)",
                                "tessera: warning: file \\x1b]0;title\\x07 skipped"]
    source = "MATCH (p:Pod)\n\tRETURN \x1b[1mp ++"
    offset = source.index("++")
    print_error(ParseError("unexpected", source=source, offset=offset, found='"++"', expected=""))
    lines = capsys.readouterr().err.splitlines()
    assert lines[1] == "  \tRETURN \\x1b[1mp ++" and lines[2].index("^") == lines[1].index("++")


@pytest.mark.parametrize("args", [
    ["query", "-s", "demo", "--speed", "nan", "MATCH (p:Pod) RETURN p"],
    ["query", "-s", "demo", "--watch", "--interval", "inf", "MATCH (p:Pod) RETURN p"],
    ["query", "-s", "demo", "--watch", "--interval", "1e300", "MATCH (p:Pod) RETURN p"],
    ["record", "-o", "x.jsonl", "--duration", "nan"],
], ids=["speed-nan", "interval-inf", "interval-1e300", "duration-nan"])
def test_number_flags_refuse_nan_and_infinity(args, tmp_path):
    proc = subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert "is not a number tessera can use" in _one_typed_line(proc, 2)


def _sh(command: str, **env):
    """``command`` run by bash with $TSR set to the tessera command (for redirections such as >&-)."""
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TSR": " ".join(TSR), **env})


@pytest.mark.parametrize("redirect,reason", [(">&-", "stdout is closed"), (">/dev/full", "No space left on device")])
@pytest.mark.parametrize("command", ["query -s demo -o json 'MATCH (p:Pod) RETURN p'", "kinds -s demo", "info"])
def test_output_that_cannot_be_written_is_one_line(command, redirect, reason):
    if redirect == ">/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    proc = _sh(f"$TSR {command} {redirect}")
    assert f"cannot write the output: {reason}" in _one_typed_line(proc, 1)


def test_closed_stderr_keeps_the_exit_code_and_writes_nothing_elsewhere():
    proc = _sh("$TSR query -s demo 'MATCH (p:Pod) RETURN p ++' 2>&-")
    assert proc.returncode == 1 and proc.stdout == ""  # print(file=None) would have put the error on stdout
    proc = _sh("$TSR query -s demo -o table 'MATCH (p:Pod) RETURN p.metadata.name AS n LIMIT 1' 2>&-")
    assert proc.returncode == 0 and "n" in proc.stdout


def test_stored_event_nested_past_orjson_limits_is_still_readable():
    from tessera.core import events
    from tessera.core.store import db

    deep: list = [1]
    for _ in range(300):  # stored before publish capped depth at 200; orjson writes 254 levels at most
        deep = [deep]
    conn = db.connect()
    events.append(conn, "old.deep", deep)
    conn.close()
    for fmt in ("jsonl", "json", "table"):
        proc = run("events", "tail", "-o", fmt, "old.>")
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads(run("events", "tail", "-o", "jsonl", "old.>").stdout)["subject"] == "old.deep"


@pytest.mark.parametrize("command,expected", [
    ("shell", "stdin is closed, so there are no statements to read"),
    ("query -s - 'MATCH (p:Pod) RETURN p'", "stdin is closed"),
    ("kinds -s -", "stdin is closed"),
], ids=["shell", "query", "kinds"])
def test_closed_stdin_is_a_usage_error_everywhere(command, expected):
    assert expected in _one_typed_line(_sh(f"$TSR {command} <&-"), 2)


def test_parse_error_in_a_very_long_line_shows_the_part_around_the_column(tmp_path):
    f = tmp_path / "long.cypher"
    f.write_text("MATCH (p:Pod) WHERE " + " OR ".join(['p.metadata.name = "x"'] * 30_000) + " RETURN p ++\n")
    proc = run("query", "-s", "demo", "-f", str(f))
    assert proc.returncode == 1
    first, source, caret = proc.stderr.splitlines()
    assert first.startswith("tessera: parse error at line 1, column ")
    assert len(source) < 200 and source.startswith("  …") and source.endswith("RETURN p ++")
    assert caret.index("^") == len(source) - 1  # under the second +


def test_shell_notes_echo_arguments_escaped():
    proc = run("shell", "-s", "demo", stdin="\\n a\x1b[2Jb\nMATCH (p:Pod) RETURN count{p} AS n;\n")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "namespace: a\\x1b[2Jb" in proc.stderr


def test_main_in_process_leaves_the_collector_as_it_found_it():
    # main() turns the cyclic collector off while it builds the app, and a one-shot query keeps
    # it off; a caller in the same process gets it back as it was.
    import gc

    from tessera.cli.main import main

    assert gc.isenabled()
    for args in (["--version"], ["query", "-s", "demo", "-o", "jsonl", "MATCH (c:Certificate) RETURN count(c) AS n"],
                 ["query", "-s", "demo", "MATCH (x:Nope) RETURN x"]):
        main(args)
        assert gc.isenabled(), args
