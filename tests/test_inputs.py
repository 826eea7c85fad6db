"""Hostile and empty input, as a user hands it to the ``tessera`` command (issue 12).

Every case runs the real command in a subprocess and checks the error contract: a typed exit
code, exactly one ``tessera: ...`` line on stderr (a parse error adds its source line and caret),
no traceback, no "internal error", and no ESC byte, whatever the input held. The cases that
crashed the process (YAML nested 50,000 deep: SIGSEGV in libyaml) or ate its memory (an alias
bomb, a huge sparse file) run with the address space capped at 2 GiB, so the old code fails
fast instead of taking the machine down. Limits and settings: docs/limits.md.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

TSR = [sys.executable, "-m", "tessera.cli.main"]
MEMORY_CAP = 2 * 1024**3
POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\n"
Q = "MATCH (p:Pod) RETURN p.metadata.name AS n ORDER BY n"


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _close_stdin() -> None:
    os.close(0)  # as the shell's <&-


def tessera(*args: str, stdin: str | bytes | None = None, env: dict | None = None, cwd: Path | None = None,
            closed_stdin: bool = False, cap_memory: bool = False) -> subprocess.CompletedProcess:
    """Run ``tessera ARGS``; stdin is empty unless given (never the terminal of the test run)."""
    def before() -> None:
        if cap_memory:
            _cap_memory()
        if closed_stdin:
            _close_stdin()

    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([*TSR, *args], input=data, stdin=None if data is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=120, cwd=cwd, env={**os.environ, **(env or {})},
                          preexec_fn=before)


def refused(proc: subprocess.CompletedProcess, code: int, *, lines: int = 1) -> str:
    """Check the error contract and return the stderr text."""
    err = proc.stderr.decode("utf-8", errors="replace")
    assert proc.returncode == code, (proc.returncode, err)
    assert b"\x1b" not in proc.stderr, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(err.splitlines()) == lines, err
    assert err.startswith("tessera: "), err
    return err


# --- 3. one line, typed exit code: query files, stdin ------------------------------------------


def test_query_file_not_utf8_is_a_usage_error_at_the_bad_byte(tmp_path):
    f = tmp_path / "q.cypher"
    f.write_bytes(b"MATCH (p:Pod)\nRETURN p.metadata.name AS caf\xe9\n")
    err = refused(tessera("query", "-s", "demo", "-f", str(f)), 2)
    assert f"{f}:2:30: not UTF-8 text (byte 0xe9)" in err


def test_query_file_that_is_a_directory_or_missing(tmp_path):
    err = refused(tessera("query", "-s", "demo", "-f", str(tmp_path)), 2)
    assert f"{tmp_path} is a directory" in err
    err = refused(tessera("query", "-s", "demo", "-f", str(tmp_path / "nope.cypher")), 2)
    assert "No such file or directory" in err


@pytest.mark.parametrize("args", [["query", "-s", "-", Q], ["query", "-s", "demo", "-f", "-"],
                                  ["events", "publish", "a.b", "-"]])
def test_stdin_closed_is_a_usage_error(args):
    err = refused(tessera(*args, closed_stdin=True), 2)
    assert "stdin is closed" in err


def test_empty_query_file_and_empty_stdin_query(tmp_path):
    f = tmp_path / "q.cypher"
    f.write_text("  \n")
    assert "is empty" in refused(tessera("query", "-s", "demo", "-f", str(f)), 2)
    assert "the query read from stdin is empty" in refused(tessera("query", "-s", "demo", "-f", "-", stdin=""), 2)


# --- 3. YAML nested 50,000 deep, alias bombs ------------------------------------------------------


def _deep_block_yaml(levels: int) -> str:
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n" + "".join(
        " " * (i + 1) + f"k{i}:\n" for i in range(levels)) + " " * (levels + 1) + "v\n"


@pytest.mark.parametrize("text", [
    pytest.param("[" * 50_000 + "]" * 50_000 + "\n", id="flow-50000"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n",
                 id="flow-map-in-object-50000"),
    pytest.param("- " * 50_000 + "x\n", id="block-seq-one-line-50000"),
    pytest.param("a: " + "[" * 200_000 + "]" * 200_000 + "\n", id="flow-200000"),
    pytest.param("a: " + "[" * 20_000 + "]" * 20_000 + "\n", id="flow-20000"),
    pytest.param(_deep_block_yaml(3_000), id="block-indent-3000"),
])
def test_deeply_nested_yaml_is_refused_before_parsing(tmp_path, text):
    f = tmp_path / "deep.yaml"
    f.write_text(text)
    err = refused(tessera("query", "-s", str(f), Q, cap_memory=True), 2)
    assert f"{f}" in err and "nested deeper than 200 levels" in err


def test_nesting_within_the_cap_still_reads(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\nspec: " + "{a: " * 150 + "1" + "}" * 150 + "\n")
    proc = tessera("query", "-s", str(f), "-o", "json", "MATCH (p:Pod) RETURN p.metadata.name AS n", cap_memory=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": "deep"}]


def test_brackets_in_quoted_strings_are_not_nesting(tmp_path):
    # the early refusal reads the text up to where its brackets run 216 deep: here they are all in
    # a string, so it finds no deep level there and the document reads whole
    f = tmp_path / "quoted.yaml"
    f.write_text('apiVersion: v1\nkind: Pod\nmetadata:\n  name: quoted\n  annotations:\n    note: "' + "{[" * 3000
                 + '"\nspec: {containers: [{name: a}]}\n')
    proc = tessera("query", "-s", str(f), "-o", "json", "MATCH (p:Pod) RETURN p.metadata.name AS n", cap_memory=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": "quoted"}]


def test_deeply_nested_json_is_refused(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": ' + "[" * 300 + "]" * 300 + "}")
    err = refused(tessera("query", "-s", str(f), Q, cap_memory=True), 2)
    assert "nested deeper than 200 levels" in err


def billion_laughs(levels: int = 10) -> str:
    lines = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n" + "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_before_memory_goes(tmp_path):
    f = tmp_path / "lol.yaml"
    f.write_text(billion_laughs())
    err = refused(tessera("query", "-s", str(f), "MATCH (c:ConfigMap) RETURN c", cap_memory=True), 2)
    assert "aliases expand this document by more than 1,000,000 nodes" in err


def test_alias_bomb_on_stdin_is_refused(tmp_path):
    err = refused(tessera("query", "-s", "-", "MATCH (c:ConfigMap) RETURN c", stdin=billion_laughs(), cap_memory=True), 2)
    assert "stdin:" in err and "aliases expand" in err


def test_recursive_alias_is_refused(tmp_path):
    f = tmp_path / "loop.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loop}\ndata: &d\n  self: *d\n")
    err = refused(tessera("query", "-s", str(f), "MATCH (c:ConfigMap) RETURN c", cap_memory=True), 2)
    assert "an alias refers to a collection that contains it" in err


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path):
    f = tmp_path / "anchors.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: &l {app: web, tier: front}\n"
                 "  annotations:\n    <<: *l\n    extra: 'yes'\n")
    proc = tessera("query", "-s", str(f), "-o", "json", "MATCH (p:Pod) RETURN p.metadata.annotations AS a", cap_memory=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"a": {"app": "web", "tier": "front", "extra": "yes"}}]


# --- 3. values Python cannot build ------------------------------------------------------------------


@pytest.mark.parametrize("value,problem", [("1" * 5000, "cannot read int value"), ("2026-13-45", "cannot read timestamp value")],
                         ids=["int-5000-digits", "month-13"])
def test_yaml_value_that_cannot_be_built_is_a_yaml_error_at_its_line(tmp_path, value, problem):
    f = tmp_path / "odd.yaml"
    f.write_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: a}}\nspec: {{n: {value}}}\n")
    err = refused(tessera("query", "-s", str(f), Q), 2)
    assert f"{f}:4:11: invalid YAML: {problem}" in err


def test_object_whose_metadata_is_not_a_mapping_is_dropped_with_a_warning(tmp_path):
    f = tmp_path / "odd.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: 5\n---\n" + POD.format(name="ok")
                 + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, labels: [1, 2]}\n")
    for query in (Q, 'MATCH (p:Pod {app: "x"}) RETURN p.metadata.name AS n', "MATCH (p:Pod) RETURN p"):
        proc = tessera("query", "-s", str(f), "-o", "json", query)
        assert proc.returncode == 0, proc.stderr
        assert b"Traceback" not in proc.stderr and b"internal error" not in proc.stderr
        assert proc.stderr.decode().count("warning:") == 1
        assert "skipped 1 item that is not a Kubernetes object" in proc.stderr.decode()
    assert json.loads(tessera("query", "-s", str(f), "-o", "json", Q).stdout) == [{"n": "b"}, {"n": "ok"}]


# --- 3. control characters in echoed input ---------------------------------------------------------


def test_query_with_escape_sequence_is_echoed_escaped_and_the_caret_lines_up():
    proc = tessera("query", "-s", "demo", "MATCH (p:Pod) RETURN \x1b[2J p")
    err = refused(proc, 1, lines=3)
    first, source, caret = err.splitlines()
    assert '"\\x1b"' in first
    assert source == "  MATCH (p:Pod) RETURN \\x1b[2J p"
    assert caret.index("^") == source.index("\\x1b")


def test_query_with_a_newline_and_escape_in_a_file_name():
    name = "no\x1b[2Jsuch\nfile.yaml"
    err = refused(tessera("query", "-s", name, Q), 3)
    assert "no\\x1b[2Jsuch\\nfile.yaml" in err


def test_file_name_with_escape_in_a_parse_error_and_a_warning(tmp_path):
    bad = tmp_path / "bad\x1b[31m.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n")
    err = refused(tessera("query", "-s", str(bad), Q), 2)
    assert "bad\\x1b[31m.yaml:" in err
    listed = tmp_path / "list\x1b]0;pwned\x07.json"
    listed.write_text(json.dumps({"kind": "List", "items": [1, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}]}))
    proc = tessera("query", "-s", str(listed), Q)
    assert proc.returncode == 0, proc.stderr
    assert b"\x1b" not in proc.stderr and b"\x07" not in proc.stderr
    assert proc.stderr.decode().count("\n") == 1 and "list\\x1b]0;pwned\\x07.json" in proc.stderr.decode()


def test_bad_flag_value_with_escape_is_escaped():
    err = refused(tessera("query", "-s", "demo", "-o", "\x1b[2Jtable", Q), 2)
    assert "\\x1b[2Jtable" in err


# --- 4. input with no objects is an error -----------------------------------------------------------


def test_empty_stdin_has_no_objects():
    err = refused(tessera("query", "-s", "-", Q, stdin=""), 2)
    assert "no Kubernetes objects read from stdin" in err


@pytest.mark.parametrize("content", [b"", b"just some words\n", b"# only a comment\n---\n", b"values: {a: 1}\n",
                                     b"kind: Pod\nmetadata: {name: \xff}\n"],
                         ids=["empty", "text", "comment", "no-kind", "not-utf8"])
def test_file_with_no_objects(tmp_path, content):
    f = tmp_path / "in.yaml"
    f.write_bytes(content)
    err = refused(tessera("query", "-s", str(f), Q), 2)
    assert f"no Kubernetes objects read from {f}" in err
    if content.endswith(b"\xff}\n"):
        assert f"{f}:2:18: not UTF-8 text (byte 0xff)" in err


def test_directory_with_nothing_readable(tmp_path):
    (tmp_path / "notes.txt").write_text(POD.format(name="a"))
    (tmp_path / ".hidden.yaml").write_text(POD.format(name="b"))
    (tmp_path / "empty.yaml").write_text("")
    err = refused(tessera("query", "-s", str(tmp_path), Q), 2)
    assert f"no Kubernetes objects read from {tmp_path}" in err
    empty = tmp_path / "sub"
    empty.mkdir()
    assert f"no Kubernetes objects read from {empty}" in refused(tessera("query", "-s", str(empty), Q), 2)


def test_list_items_that_are_not_objects_are_dropped_with_one_warning(tmp_path):
    f = tmp_path / "list.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        1, "two", None, {"metadata": {"name": "nokind"}}, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}]}))
    proc = tessera("query", "-s", str(f), "-o", "json", Q)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": "a"}]
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "warning:" in err and "skipped 4 items that are not Kubernetes objects" in err
    assert tessera("query", "-q", "-s", str(f), Q).stderr == b""


def test_fifo_in_a_directory_is_skipped_and_a_pipe_is_read(tmp_path):
    (tmp_path / "a.yaml").write_text(POD.format(name="a"))
    os.mkfifo(tmp_path / "pipe.yaml")  # nobody writes it: reading it would wait forever
    proc = tessera("query", "-s", str(tmp_path), "-o", "json", Q)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": "a"}]
    proc = subprocess.run(["bash", "-c", f'{" ".join(map(repr, TSR))} query -o json -s <(printf "%s" "$POD") "$Q"'],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "POD": POD.format(name="p"), "Q": Q})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": "p"}]


# --- 4. size limits -------------------------------------------------------------------------------


def test_file_over_the_limit_is_refused_with_its_size_and_the_setting(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text(POD.format(name="a") * 100)
    err = refused(tessera("query", "-s", str(f), Q, env={"TESSERA_MAX_INPUT_BYTES": "1KiB"}), 2)
    assert f"{f} is " in err and "over the 1 KiB input limit" in err and "TESSERA_MAX_INPUT_BYTES" in err
    assert tessera("query", "-s", str(f), Q, env={"TESSERA_MAX_INPUT_BYTES": "1MiB"}).returncode == 0


def test_sparse_file_far_over_the_limit_is_refused_before_reading(tmp_path):
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as fh:
        fh.truncate(64 * 1024**3)  # 64 GiB of holes: reading it whole needs 64 GiB of memory
    err = refused(tessera("query", "-s", str(f), Q, cap_memory=True), 2)
    assert "is 64 GiB, over the 256 MiB input limit" in err


@pytest.mark.parametrize("via", ["pipe", "file"])
def test_stdin_over_the_limit(tmp_path, via):
    data = (POD.format(name="a") + "---\n") * 100
    if via == "pipe":
        proc = tessera("query", "-s", "-", Q, stdin=data, env={"TESSERA_MAX_INPUT_BYTES": "2000"})
        assert "stdin holds more than the 2,000 bytes input limit (set TESSERA_MAX_INPUT_BYTES" in refused(proc, 2)
    else:
        f = tmp_path / "in.yaml"
        f.write_text(data)
        with open(f, "rb") as fh:
            proc = subprocess.run([*TSR, "query", "-s", "-", Q], stdin=fh, capture_output=True, timeout=120,
                                  env={**os.environ, "TESSERA_MAX_INPUT_BYTES": "2000"})
        assert f"stdin is {len(data):,} bytes, over the 2,000 bytes input limit" in refused(proc, 2)


def test_directory_total_over_the_limit(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.yaml").write_text(POD.format(name=f"p{i}") * 5)
    err = refused(tessera("query", "-s", str(tmp_path), Q, env={"TESSERA_MAX_INPUT_BYTES": "1KiB"}), 2)
    assert f"the files read from {tmp_path} come to" in err and "over the 1 KiB input limit" in err


def test_query_file_over_the_limit(tmp_path):
    f = tmp_path / "q.cypher"
    f.write_text(Q + "\n" + "// padding\n" * 200)
    err = refused(tessera("query", "-s", "demo", "-f", str(f), env={"TESSERA_MAX_INPUT_BYTES": "1KiB"}), 2)
    assert "over the 1 KiB input limit" in err


@pytest.mark.parametrize("value", ["lots", "-5", "0", "1.5GiB", "12 parsecs"])
def test_limit_setting_that_is_not_a_size(tmp_path, value):
    f = tmp_path / "a.yaml"
    f.write_text(POD.format(name="a"))
    err = refused(tessera("query", "-s", str(f), Q, env={"TESSERA_MAX_INPUT_BYTES": value}), 2)
    assert "TESSERA_MAX_INPUT_BYTES" in err and "is not a size" in err


def test_limit_from_config_toml(tmp_path, isolated_home):
    config = isolated_home / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text('max_input_bytes = "1KiB"\n')
    f = tmp_path / "big.yaml"
    f.write_text(POD.format(name="a") * 100)
    assert "over the 1 KiB input limit" in refused(tessera("query", "-s", str(f), Q), 2)


# --- recordings (replay:FILE) get the same limits ---------------------------------------------------

REC_HEADER = json.dumps({"recording": "tessera/1", "context": "x", "started": "2026-01-01T00:00:00Z"}) + "\n"


def _rec_line(spec: str) -> str:
    return ('{"ts": "2026-01-01T00:00:00Z", "type": "ADDED", "object": {"apiVersion": "v1", "kind": "Pod", '
            '"metadata": {"name": "a", "namespace": "default"}, "spec": {"x": %s}}}\n' % spec)


def test_recording_line_nested_too_deep_is_refused(tmp_path):
    f = tmp_path / "deep.jsonl"
    f.write_text(REC_HEADER + _rec_line("[" * 300 + "]" * 300))
    err = refused(tessera("query", "-s", f"replay:{f}", "-o", "jsonl", "MATCH (p:Pod) RETURN p"), 2)
    assert f"{f}:2: nested deeper than 200 levels" in err
    f.write_text(REC_HEADER + _rec_line("[" * 150 + "]" * 150))
    proc = tessera("query", "-s", f"replay:{f}", "-o", "jsonl", "MATCH (p:Pod) RETURN p.metadata.name AS n")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"n": "a"}, proc.stderr


def test_gzip_bomb_recording_is_refused_while_inflating(tmp_path):
    import gzip

    f = tmp_path / "bomb.jsonl.gz"
    f.write_bytes(gzip.compress(REC_HEADER.encode() + b" " * (8 * 1024 * 1024) + b"\n", 9))  # 8 MiB from ~8 KiB
    assert f.stat().st_size < 64 * 1024
    err = refused(tessera("query", "-s", f"replay:{f}", Q, env={"TESSERA_MAX_INPUT_BYTES": "1MiB"}, cap_memory=True), 2)
    assert f"{f} decompressed holds more than the 1 MiB input limit" in err and "TESSERA_MAX_INPUT_BYTES" in err


def test_recording_that_is_a_directory(tmp_path):
    assert f"{tmp_path} is a directory" in refused(tessera("query", "-s", f"replay:{tmp_path}", Q), 2)


def test_errors_in_the_query_come_before_input_with_no_objects(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    kindless = tessera("query", "-s", str(empty), "MATCH (x) RETURN x")
    assert kindless.returncode == 1 and "kindless nodes may only be used in a relationship" in kindless.stderr.decode()
    unknown = tessera("query", "-s", str(empty), "MATCH (p:NoSuchKind) RETURN p")
    assert unknown.returncode == 1 and "NoSuchKind" in unknown.stderr.decode()
    listed = tessera("query", "-s", str(empty), "MATCH (p:Pod) RETURN p")
    assert listed.returncode == 2 and f"no Kubernetes objects read from {empty}" in listed.stderr.decode()
