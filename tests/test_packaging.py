"""Packaging and boundaries: the wheel installs and runs; core/ never imports a front end; start-up
stays light (heavy libraries are imported only by the commands that need them)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FRONT_ENDS = {"typer", "textual", "prompt_toolkit", "click"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
            if node.module.startswith("tessera.cli"):
                out.add("tessera.cli")
    return out


def test_core_and_plugins_never_import_front_ends():
    offenders = []
    for folder in ("core", "plugins"):
        for path in (REPO / folder).rglob("*.py"):
            bad = _imports(path) & (FRONT_ENDS | {"tessera.cli"})
            if bad:
                offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert offenders == []


def test_only_the_dashboard_and_the_shell_import_their_toolkits():
    # As harlequin keeps its headless core and CLI free of the TUI: textual lives in cli/tui/,
    # prompt_toolkit in cli/shell/, and nothing else imports them at all.
    owners = {"textual": REPO / "cli" / "tui", "prompt_toolkit": REPO / "cli" / "shell"}
    offenders = []
    for folder in ("cli", "core", "plugins"):
        for path in (REPO / folder).rglob("*.py"):
            for toolkit, home in owners.items():
                if toolkit in _imports(path) and home not in path.parents:
                    offenders.append(f"{path.relative_to(REPO)} imports {toolkit}")
    assert offenders == []


def test_importing_the_cli_loads_no_terminal_ui_library():
    code = ("import sys, tessera.cli.main, tessera.cli.shell, tessera.cli.shell.repl, tessera.core.completion, "
            "tessera.core.macros, tessera.core.query.highlight, tessera.core.notebook.session, "
            "tessera.core.render.views; "
            "print(sorted(m for m in ('prompt_toolkit', 'textual', 'pygments') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_importing_core_api_loads_no_front_end_or_heavy_library():
    code = ("import sys, tessera.core.api, tessera.core.query.engine, tessera.core.render, "
            "tessera.plugins.sources.manifests, tessera.plugins.sources.kubernetes; "
            "print(sorted(m for m in ('typer','textual','prompt_toolkit','kubernetes','rich','re2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_manifest_query_does_not_import_kubernetes(tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    code = ("import sys\nfrom tessera.cli.main import main\n"
            f"rc = main(['query', '-s', {str(f)!r}, '-o', 'jsonl', 'MATCH (c:cm) RETURN c.metadata.name'])\n"
            "print('kubernetes' in sys.modules, 'rich' in sys.modules, rc, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip() == "False False 0", proc.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    (whl,) = out.glob("tessera-*.whl")
    return whl


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("tessera/cli/main.py", "tessera/core/query/parser.py", "tessera/plugins/sources/manifests.py",
                     "tessera/plugins/sources/demo_data/shop.yaml", "tessera/plugins/sources/demo_data/recording.jsonl.gz",
                     "tessera/plugins/sources/demo_objects.json",
                     "tessera/core/watch/cache.py", "tessera/core/store/db.py", "tessera/core/events.py",
                     "tessera/core/notebook/model.py", "tessera/plugins/cells/sql_cell.py", "tessera/cli/tui/app.py",
                     "tessera/cli/shell/prompt_ui.py", "tessera/plugins/sources/demo_data/dashboard.md",
                     "tessera/core/peers/transport.py", "tessera/core/peers/iroh_shim.py",
                     "tessera/core/knowledge_schema.py", "tessera/core/knowledge/search.py",
                     "tessera/plugins/sources/demo_data/runbooks/crashloop.md"):
        assert expected in names
    assert not any(n.startswith(("tests/", "cli/", "core/")) for n in names)


def test_wheel_installs_into_a_fresh_venv_and_runs(wheel, tmp_path):
    import site

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    py = env_dir / "bin" / "python"
    # The wheel alone goes into the fresh venv; its dependencies are the test venv's own, seen
    # through a .pth file (the same pinned versions: `make setup` installs them from
    # constraints.txt on every fresh clone, so resolving them is tested there). Installing them
    # all again here took 90 s of the suite. Only the path is added: the .pth files in the test
    # venv (its editable tessera among them) are not run, so `tessera` here is the wheel's.
    (Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()) / "test-deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    str(wheel)], check=True, capture_output=True, text=True)
    where = subprocess.run([str(py), "-c", "import tessera.cli.main as m; print(m.__file__)"], check=True,
                           capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(env_dir)), where  # the wheel's code, not the checkout's
    for script in ("tessera", "tsr"):
        proc = subprocess.run([str(env_dir / "bin" / script), "--version"], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout.startswith("tessera 0.1"), proc.stderr
    proc = subprocess.run([str(env_dir / "bin" / "tessera"), "query", "-s", "demo", "-o", "jsonl",
                           "MATCH (c:Certificate) RETURN count(c) AS n"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.stdout.strip() == '{"n":3}', proc.stderr
    proc = subprocess.run([str(env_dir / "bin" / "tessera"), "query", "-s", "replay:demo", "-o", "jsonl",
                           'AT "2026-11-01T09:05:00Z" MATCH (d:Deployment) RETURN count(d) AS n'],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["n"] > 0, proc.stderr


def _run_with_importtime(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """A real ``tessera ARGS`` process and every module it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tessera.cli.main", *args],
                          capture_output=True, text=True, timeout=60)
    return proc, {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def _all_modules_imported(*args: str) -> set[str]:
    return _run_with_importtime(*args)[1]


def _tessera_modules_imported(*args: str) -> tuple[int, str, set[str]]:
    """Exit code, stdout and the tessera modules a real ``tessera ARGS`` process imported."""
    proc, imported = _run_with_importtime(*args)
    return proc.returncode, proc.stdout, {m for m in imported if m.startswith("tessera.")}


def test_version_imports_no_command_module_and_not_typer():
    # A bare --version is answered before any command is built: no command module, no typer.
    from tessera.cli.main import COMMAND_MODULES

    for flag in ("--version", "-V"):
        rc, out, imported = _tessera_modules_imported(flag)
        assert rc == 0 and out.startswith("tessera 0.1")
        assert not imported & (set(COMMAND_MODULES.values()) | {"tessera.cli.root", "tessera.cli.options"})
        assert "typer" not in _all_modules_imported(flag)


def test_a_command_imports_only_its_own_command_module():
    from tessera.cli.main import COMMAND_MODULES

    rc, out, imported = _tessera_modules_imported("query", "-s", "demo", "-o", "jsonl",
                                                  'MATCH (n:Namespace {name:"shop"}) RETURN n.metadata.name AS n')
    assert rc == 0 and out == '{"n":"shop"}\n'
    assert imported & set(COMMAND_MODULES.values()) == {"tessera.cli.query"}
    rc, out, imported = _tessera_modules_imported("--correlation", "c-1", "kinds", "-s", "demo", "-o", "jsonl")
    assert rc == 0 and '"kind":"Deployment"' in out
    assert imported & set(COMMAND_MODULES.values()) == {"tessera.cli.kinds"}


def test_a_demo_query_reads_no_installed_metadata():
    # The CLI hands core the bundled plugins' entry points (plugins/bundled.py): importing
    # importlib.metadata and scanning the distributions was 16 ms of this command.
    proc, imported = _run_with_importtime("query", "-s", "demo", "-o", "jsonl", "MATCH (c:Certificate) RETURN count(c) AS n")
    assert proc.returncode == 0 and proc.stdout == '{"n":3}\n', proc.stderr
    assert "importlib.metadata" not in imported


def test_help_and_an_unknown_command_still_see_every_command():
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", "--help"], capture_output=True, text=True, timeout=60)
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()}
    from tessera.cli.main import COMMAND_MODULES

    assert proc.returncode == 0 and listed == set(COMMAND_MODULES)
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", "qurey"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr == "tessera: No such command 'qurey'. Did you mean 'query'?\n"



def test_a_query_and_an_event_load_nothing_of_the_peer_protocol(tmp_path):
    # msgpack and core/peers/ are for the peer commands. Opening the store runs the peers and
    # pairing migration components, which live outside the package (core/peers_schema.py,
    # core/pairing_schema.py) for this.
    code = ("import sys\nfrom tessera.cli.main import main\n"
            "rc = main(['query', '-s', 'demo', '-o', 'jsonl', 'MATCH (c:Certificate) RETURN count(c) AS n'])\n"
            "rc += main(['events', 'publish', 'a.b'])\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'msgpack' or (m + '.').startswith('tessera.core.peers.'))\n"
            "print(rc, 'tessera.core.peers_schema' in sys.modules, loaded, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "0 True []", proc.stderr


def test_a_query_imports_neither_the_peers_package_nor_its_cryptography():
    # Pairing's SPAKE2 and cryptography are imported by core/peers/pairing.py only, and no
    # query imports core/peers (the store's pairing migrations live outside it, core/pairing_schema.py).
    proc, imported = _run_with_importtime("query", "-s", "demo", "-o", "jsonl", "MATCH (c:Certificate) RETURN count(c) AS n")
    assert proc.returncode == 0 and proc.stdout == '{"n":3}\n', proc.stderr
    assert not {m for m in imported if m.split(".")[0] in ("spake2", "cryptography") or m.startswith("tessera.core.peers")}


def test_a_query_of_stores_and_replicas_loads_no_peer_protocol_or_transport():
    # -s local / peer:NAME / peers read SQLite files: no msgpack (frames), iroh (transport),
    # PyNaCl or SPAKE2 (signatures, pairing) is needed to read what sync stored
    from tests.peer_sync_helpers import add_peer_with_empty_replica

    add_peer_with_empty_replica("alice")
    for spec in (["-s", "local"], ["-s", "peer:alice"], ["-s", "peers", "-s", "local"]):
        proc, imported = _run_with_importtime("query", *spec, "-o", "jsonl", "MATCH (e:LogEvent) RETURN count(e) AS n")
        assert proc.returncode == 0, proc.stderr
        assert not {m for m in imported if m.split(".")[0] in ("msgpack", "iroh", "nacl", "spake2", "cryptography")}, spec
