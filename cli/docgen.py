"""Generate completions/ (bash, zsh, fish) and man/ (one roff page per command) from the CLI.

``python -m tessera.cli.docgen --write`` regenerates them (``make docs``); ``--check`` exits 1
listing stale files (tests/test_docs_current.py runs the check). Built on typer's vendored click
objects, so no generator that expects the real click package is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

SHELLS = {"bash": "tessera.bash", "zsh": "_tessera", "fish": "tessera.fish"}


def _repo() -> Path:
    return Path(__file__).resolve().parents[1]


def completion_scripts() -> dict[str, str]:
    """File name -> script text for every shell (each completes both tessera and tsr)."""
    from tessera.cli.complete_shell import scripts

    return {SHELLS[shell]: text for shell, text in scripts().items()}


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line if line.startswith((".", "'")) else line) for line in text.split("\n"))


def _page(name: str, command, ctx) -> str:
    from importlib.metadata import version

    help_text = (command.help or "").strip()
    summary = help_text.split("\n")[0]
    lines = [
        f'.TH "{name.upper()}" "1" "" "tessera {version("tessera")}" "Tessera Manual"',
        ".SH NAME",
        f"{_roff(name)} \\- {_roff(summary)}",
        ".SH SYNOPSIS",
        f".B {_roff(name.replace('-', ' '))}",
        _roff(" ".join(command.collect_usage_pieces(ctx))),
        ".SH DESCRIPTION",
        _roff(help_text),
    ]
    options = [p for p in command.get_params(ctx) if p.get_help_record(ctx)]
    if options:
        lines.append(".SH OPTIONS")
        for param in options:
            opts, desc = param.get_help_record(ctx)
            lines += [".TP", f"\\fB{_roff(opts)}\\fR", _roff(desc)]
    subcommands = getattr(command, "commands", None)
    if subcommands:
        lines.append(".SH COMMANDS")
        for sub in subcommands:
            lines += [".TP", f"\\fB{_roff(sub)}\\fR", _roff((subcommands[sub].help or "").strip().split("\n")[0])]
            lines += [f"See \\fB{_roff(name)}\\-{_roff(sub)}\\fR(1)."]
    lines += [
        ".SH EXIT STATUS",
        "0 ok, 1 query or runtime error, 2 usage, 3 source unavailable, 4 timeout, 5 not authorized,"
        " 130 interrupted.",
        ".SH ENVIRONMENT",
        "TESSERA_HOME (data home), TESSERA_CONFIG_DIR, KUBECONFIG, NO_COLOR.",
    ]
    return "\n".join(lines) + "\n"


def man_pages() -> dict[str, str]:
    """File name -> roff text: ``tessera.1``, ``tessera-<command>.1`` for each command, and
    ``tessera-<group>-<command>.1`` for the commands of a group (``tessera-notebook-new.1``)."""
    from typer._click import Context
    from typer.main import get_command

    from tessera.cli.main import full_app

    root = get_command(full_app())
    pages: dict[str, str] = {}

    def add(name: str, command, ctx) -> None:
        pages[f"{name}.1"] = _page(name, command, ctx)
        for sub, child in sorted((getattr(command, "commands", None) or {}).items()):
            add(f"{name}-{sub}", child, Context(child, info_name=f"{ctx.info_name} {sub}", parent=ctx))

    add("tessera", root, Context(root, info_name="tessera"))
    return pages


def expected_files(repo: Path | None = None) -> dict[Path, str]:
    """Every generated path and the text it should hold."""
    repo = repo or _repo()
    files = {repo / "completions" / n: t for n, t in completion_scripts().items()}
    files.update({repo / "man" / n: t for n, t in man_pages().items()})
    return files


def stale_files(repo: Path | None = None) -> list[Path]:
    """Generated files that are missing or differ from what the CLI would generate now."""
    out = []
    for path, text in expected_files(repo).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(path)
    for folder, suffix in (("completions", None), ("man", ".1")):
        base = (repo or _repo()) / folder
        known = {p.name for p in expected_files(repo) if p.parent == base}
        for path in base.glob("*"):
            if path.name not in known and path.name != ".gitkeep" and (suffix is None or path.suffix == suffix):
                out.append(path)
    return out


def write(repo: Path | None = None) -> list[Path]:
    """Regenerate every file; returns the paths written."""
    written = []
    for path, text in expected_files(repo).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``--write`` regenerates; ``--check`` exits 1 when anything is stale."""
    args = argv if argv is not None else sys.argv[1:]
    if args == ["--check"]:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path} (run `make docs`)", file=sys.stderr)
        return 1 if stale else 0
    if args == ["--write"]:
        for path in write():
            print(f"wrote {path}")
        return 0
    print("usage: python -m tessera.cli.docgen --write|--check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
