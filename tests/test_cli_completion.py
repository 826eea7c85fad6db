"""Shell tab completion of the CLI (completions/, cli/complete_shell.py, cli/completers.py), for
both program names, through the real machinery: bash sourcing completions/tessera.bash and
calling its completion function with COMP_WORDS/COMP_LINE as bash sets them, the zsh and fish
scripts' protocol (``_TYPER_COMPLETE_ARGS``) against the installed ``tessera``/``tsr``, and one
real interactive bash in tmux pressing Tab. (tests/test_completion.py is the query editor's
completion, a different thing.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tessera.cli.options import FORMAT_NAMES
from tessera.core.notebook import repository
from tessera.core.store.db import connect

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROGRAMS = ("tessera", "tsr")
EKS = "arn:aws:eks:eu-west-1:123456789012:cluster/lab"
KUBECONFIG = f"""\
apiVersion: v1
kind: Config
current-context: prod
clusters: []
users: []
contexts:
- name: prod
  context: {{cluster: prod-cluster, user: admin, namespace: payments}}
- name: staging
  context: {{cluster: stg, user: admin, namespace: shop}}
- name: {EKS}
  context: {{cluster: lab, user: lab}}
"""


def completion_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_TESSERA", "_TYPER", "COMP_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def bash_words(line: str) -> list[str]:
    """COMP_WORDS as bash fills them for ``line`` (cursor at the end): split at blanks, with
    ``:`` and ``=`` (in COMP_WORDBREAKS) words of their own; an empty word after a blank."""
    words = re.findall(r"[^\s:=]+|[:=]+", line)
    if line[-1:].isspace():
        words.append("")
    return words


def bash_complete(line: str, **env: str) -> list[str]:
    """What bash puts in COMPREPLY for ``line`` through completions/tessera.bash."""
    script = r"""
source "$SCRIPT"
spec=$(complete -p "$1") || exit 9
[[ $spec == *"-F _tessera_completion"* ]] || exit 8
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE=$LINE; COMP_POINT=${#LINE}
_tessera_completion "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", *bash_words(line)],
                          env=completion_env(SCRIPT=str(REPO / "completions" / "tessera.bash"), LINE=line, **env),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [v for v in proc.stdout.split("\n") if v]


def script_protocol(shell: str, line: str, **env: str) -> subprocess.CompletedProcess:
    """Run the program as the zsh or fish script does for ``line``."""
    extra = {"_TESSERA_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line}
    if shell == "fish":
        extra["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    return subprocess.run([str(BIN / line.split()[0])], env=completion_env(**extra, **env), capture_output=True,
                          text=True, timeout=60)


def zsh_values(line: str, **env: str) -> list[str]:
    proc = script_protocol("zsh", line, **env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [v.replace("\\\\:", ":") for v in re.findall(r'^"((?:[^"]|"")*)"', proc.stdout.split("((", 1)[-1], re.M)]


def fish_values(line: str, **env: str) -> list[str]:
    proc = script_protocol("fish", line, **env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [v.split("\t")[0] for v in proc.stdout.split("\n") if v]


@pytest.fixture
def kubeconfig(tmp_path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


@pytest.fixture
def notebooks() -> None:
    """ops (3 cells), other (1 cell), empty (none) in the test's data home."""
    conn = connect()
    attrs = {"type": "query", "view": "table", "refresh": "manual", "sources": []}
    repository.create(conn, "ops", "Ops")
    repository.add_cell(conn, "ops", "MATCH (p:Pod) RETURN p", **attrs, title="Pods")
    repository.add_cell(conn, "ops", "MATCH (d:Deployment)\nRETURN d", **attrs, title="")
    repository.add_cell(conn, "ops", "# notes", **{**attrs, "type": "markdown"}, title="Notes")
    repository.create(conn, "other")
    repository.add_cell(conn, "other", "MATCH (s:Service) RETURN s", **attrs, title="Services")
    repository.create(conn, "empty")
    conn.close()


@pytest.mark.parametrize("prog", PROGRAMS)
def test_output_formats_in_bash_zsh_and_fish(prog):
    assert bash_complete(f"{prog} query -o ") == list(FORMAT_NAMES)
    assert bash_complete(f"{prog} notebook run ops --output js") == ["json", "jsonl"]
    assert zsh_values(f"{prog} events tail -o ") == list(FORMAT_NAMES)
    assert fish_values(f"{prog} dash -o t") == ["table", "tree"]


@pytest.mark.parametrize("prog", PROGRAMS)
def test_contexts_from_the_kubeconfig(prog, kubeconfig):
    contexts = ["prod", "staging", EKS]
    assert bash_complete(f"{prog} query --context ", KUBECONFIG=str(kubeconfig)) == contexts
    assert bash_complete(f"{prog} query --kubeconfig {kubeconfig} --context st") == ["staging"]
    assert zsh_values(f"{prog} dash --kubeconfig {kubeconfig} --context ") == contexts
    assert fish_values(f"{prog} record --context p", KUBECONFIG=str(kubeconfig)) == ["prod"]
    # zsh and fish show the cluster and namespace beside each context
    assert "current; prod-cluster, namespace payments" in script_protocol(
        "fish", f"{prog} pane --context ", KUBECONFIG=str(kubeconfig)).stdout


def test_a_context_with_colons_completes_in_bash(kubeconfig):
    """Bash splits ``arn:aws:...`` at each ``:`` and replaces only the text after the last one."""
    env = {"KUBECONFIG": str(kubeconfig)}
    assert bash_complete("tsr query --context arn:aws:e", **env) == ["eks:eu-west-1:123456789012:cluster/lab"]
    assert bash_complete("tsr query --context arn:aws:eks:eu-west-1:123456789012:cl", **env) == ["cluster/lab"]
    assert bash_complete("tsr query --context=st", **env) == ["staging"]


@pytest.mark.parametrize("prog", PROGRAMS)
def test_namespaces_from_the_kubeconfig_contexts(prog, kubeconfig):
    env = {"KUBECONFIG": str(kubeconfig)}
    assert bash_complete(f"{prog} query -n ", **env) == ["default", "payments", "shop"]
    assert bash_complete(f"{prog} query --context staging --namespace ", **env) == ["default", "shop"]
    assert fish_values(f"{prog} notebook run ops -n p", **env) == ["payments"]
    assert "context staging" in script_protocol("zsh", f"{prog} dash -n s", **env).stdout


CELLS = ["ops/1", "ops/2", "ops/3", "other/1"]
# every command that takes a notebook (N), a notebook or a cell (A), or a cell (C)
NOTEBOOK_COMMANDS = {
    "notebook show": "A", "notebook run": "A", "notebook rm": "N", "notebook rename": "N", "notebook title": "N",
    "notebook history": "N", "notebook export": "N", "cell add": "N", "cell edit": "C", "cell rm": "C",
    "cell move": "C", "cell set": "C", "cell split": "C", "cell merge": "C", "dash": "N", "tmux": "N", "pane": "C",
}


@pytest.mark.parametrize("command", sorted(NOTEBOOK_COMMANDS))
def test_notebooks_and_cells_for_every_command_that_takes_them(command, notebooks):
    kind = NOTEBOOK_COMMANDS[command]
    expected = {"N": ["empty", "ops", "other"], "A": ["empty", "ops", "other"], "C": CELLS}[kind]
    for prog in PROGRAMS:
        assert bash_complete(f"{prog} {command} ") == expected, prog
    assert fish_values(f"tsr {command} o") == [v for v in expected if v.startswith("o")]
    if kind in "AC":
        assert bash_complete(f"tsr {command} ops/") == ["ops/1", "ops/2", "ops/3"]
        assert zsh_values(f"tessera {command} oth") == (["other", "other/1"] if kind == "A" else ["other/1"])


def test_cells_come_with_their_titles_in_zsh_and_fish(notebooks):
    out = script_protocol("fish", "tsr pane ops/").stdout.split("\n")
    assert out[:3] == ["ops/1\tquery: Pods", "ops/2\tquery: MATCH (d:Deployment)", "ops/3\tmarkdown: Notes"]
    assert '"ops/1":"query\\\\: Pods"' in script_protocol("zsh", "tessera cell edit ops/").stdout  # zsh: \\: is :


def test_other_fixed_values(notebooks):
    assert bash_complete("tsr cell set ops/1 --view ") == ["table", "json", "yaml", "tree", "graph"]
    assert bash_complete("tsr pane ops/1 --view g") == ["graph"]
    assert bash_complete("tsr cell add ops --type ") == ["query", "markdown", "sql", "events", "search", "status"]
    assert bash_complete("tsr search web --mode ") == ["hybrid", "bm25", "semantic"]
    assert bash_complete("tsr cell set ops/1 --refresh ") == ["manual", "watch", "every:60"]
    assert bash_complete("tsr notebook export ops -F ") == ["ipynb", "markdown"]
    assert bash_complete("tsr tmux ops --color ") == ["auto", "always", "never"]
    assert bash_complete("tsr query --color n") == ["never"]


def test_peer_names_for_events_tail_peer():
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction

    conn = connect()
    with transaction(conn):
        for node_id, name in (("a1" * 32, "alice"), ("b2" * 32, "bob"), ("c3" * 32, "ev\x1bil")):
            peer_list.add(conn, node_id, name, added_at="2026-12-01T00:00:00.000Z")
    conn.close()
    assert bash_complete("tsr events tail --peer ") == ["alice", "bob"]  # a name with control characters: by id only
    assert fish_values("tessera events tail --peer a") == ["alice"]


def test_completion_creates_nothing_and_stays_quiet_when_there_is_nothing(tmp_path):
    """No store yet: no notebooks, and the data home is not created by a tab press. A missing or
    broken kubeconfig: no contexts, and nothing on stderr (the command reports it when run)."""
    home = Path(os.environ["TESSERA_HOME"])
    assert bash_complete("tsr dash ") == []
    assert bash_complete("tsr pane ") == []
    assert not home.exists()
    broken = tmp_path / "broken"
    broken.write_text("contexts: [unclosed\n")
    for path in (tmp_path / "missing", broken):
        assert bash_complete("tsr query --context ", KUBECONFIG=str(path)) == []
        proc = script_protocol("zsh", "tsr query -n ", KUBECONFIG=str(path))
        assert (proc.returncode, proc.stderr) == (0, "")
        assert '"default"' in proc.stdout


HEAVY = ("kubernetes", "urllib3", "textual", "prompt_toolkit", "rich", "nbformat", "pygments")


@pytest.mark.parametrize("line", ["tsr query -o ", "tsr query --context ", "tsr query -n ", "tsr pane ",
                                  "tsr notebook run ops/"])
def test_completion_imports_nothing_heavy(line, kubeconfig, notebooks):
    """Completion runs on every tab press: the kubernetes client, Textual, prompt-toolkit and
    rich stay unimported (bench/completion.py times it)."""
    env = completion_env(_TESSERA_COMPLETE="complete_bash", _TESSERA_COMP_LINE=line, KUBECONFIG=str(kubeconfig))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tessera.cli.main"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]
    imported = {m.split("|")[-1].strip() for m in proc.stderr.splitlines() if m.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


def test_scripts_register_both_programs():
    text = {p.name: p.read_text() for p in (REPO / "completions").iterdir()}
    assert "complete -o default -F _tessera_completion tessera tsr" in text["tessera.bash"]
    assert text["_tessera"].startswith("#compdef tessera tsr\n")
    assert "compdef _tessera_completion tessera tsr" in text["_tessera"]
    assert "complete --command tessera " in text["tessera.fish"] and "complete --command tsr " in text["tessera.fish"]


def test_tab_in_an_interactive_bash(kubeconfig, notebooks):
    """A real bash with readline in tmux: Tab completes a format, a cell and a context with colons."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    socket = f"tessera-test-{uuid.uuid4().hex[:10]}"

    def tmux(*args: str) -> str:
        proc = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    env = completion_env(KUBECONFIG=str(kubeconfig), PS1="$ ", TERM="xterm")
    env.pop("TMUX", None)
    rc = Path(env["TESSERA_HOME"]).parent / "bashrc"
    rc.write_text(f"source {REPO / 'completions' / 'tessera.bash'}\nbind 'set bell-style none'\n")
    proc = subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "20",
                           f"bash --noprofile --rcfile {rc} -i"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    try:
        for typed, keys, shown in (("tsr query -o yam", ["Tab"], "tsr query -o yaml"),
                                   ("tsr pane ops/", ["Tab", "Tab"], "ops/3"),
                                   ("tsr pane oth", ["Tab"], "tsr pane other/1"),
                                   ("tsr query --context arn:aws:", ["Tab"], f"tsr query --context {EKS}"),
                                   ("tessera dash --context sta", ["Tab"], "tessera dash --context staging")):
            tmux("send-keys", "-t", "0", "C-u", typed, *keys)
            deadline = time.monotonic() + 60
            while shown not in tmux("capture-pane", "-p", "-t", "0") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert shown in tmux("capture-pane", "-p", "-t", "0"), typed
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
