"""``tessera backup FILE`` and ``tessera restore FILE``: the whole data home into one compressed,
optionally passphrase-sealed file, and back, verified first (core/backup/, docs/backup.md)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Callable, Optional

import typer

from tessera.core.errors import UsageError, printable
from tessera.core.render import is_terminal

PASSPHRASE_ENV = "TESSERA_BACKUP_PASSPHRASE"
PASSPHRASE_FILE_MAX = 4096

FileArg = Annotated[str, typer.Argument(metavar="FILE", show_default=False, help="The backup file.")]
PassphraseFile = Annotated[Optional[str], typer.Option(
    "--passphrase-file", metavar="PATH", show_default=False,
    help=f"Read the passphrase from PATH (its first line). Else ${PASSPHRASE_ENV}, else a prompt on a terminal.")]


def _passphrase_from(file: str | None) -> bytes | None:
    """The passphrase from --passphrase-file or the environment (None: neither gives one).

    Raises:
        UsageError for an empty one or a file that cannot be read or is too big to be one.
    """
    if file is not None:
        try:
            with open(file, "rb") as fh:
                raw = fh.read(PASSPHRASE_FILE_MAX + 1)
        except OSError as exc:
            raise UsageError(f"cannot read the passphrase file {printable(file)}: {exc.strerror}",
                             hint="give a readable file holding the passphrase on its first line") from None
        if len(raw) > PASSPHRASE_FILE_MAX:
            raise UsageError(f"the passphrase file {printable(file)} is over {PASSPHRASE_FILE_MAX} bytes: not a passphrase",
                             hint="give a file holding the passphrase on its first line")
        value, where = raw.split(b"\n", 1)[0].rstrip(b"\r"), f"the passphrase file {printable(file)}"
    elif os.environ.get(PASSPHRASE_ENV) is not None:
        value, where = os.environb[PASSPHRASE_ENV.encode()], PASSPHRASE_ENV
    else:
        return None
    if not value:
        raise UsageError(f"{where} gives an empty passphrase", hint="use a passphrase of several words")
    return value


def _prompt(twice: bool) -> bytes:
    """Ask on the terminal (not echoed), twice when choosing one."""
    import getpass

    if not (is_terminal(sys.stdin) and is_terminal(sys.stderr)):
        raise UsageError("a passphrase is needed and there is no terminal to ask on",
                         hint=f"set {PASSPHRASE_ENV} or give --passphrase-file")
    first = getpass.getpass("Backup passphrase: ", stream=sys.stderr)
    if not first:
        raise UsageError("an empty passphrase", hint="use a passphrase of several words")
    if twice and getpass.getpass("Same passphrase again: ", stream=sys.stderr) != first:
        raise UsageError("the two passphrases differ; nothing was written", hint="run again and type the same one twice")
    return first.encode("utf-8")


def _progress(label: str):
    """A transient byte progress bar on stderr, or None when stderr is no terminal."""
    if not is_terminal(sys.stderr):
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    return Progress(TextColumn(label), BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn(),
                    console=Console(stderr=True), transient=True, redirect_stdout=False, redirect_stderr=False)


def _with_progress(label: str, work: Callable[[Optional[Callable[[int, int], None]]], object]) -> object:
    progress = _progress(label)
    if progress is None:
        return work(None)
    task = progress.add_task(label, total=None)
    with progress:
        return work(lambda done, total: progress.update(task, completed=done, total=total or None))


def _report(line: dict, text: str) -> None:
    if is_terminal(sys.stdout):
        print(printable(text))
    else:
        print(json.dumps(line), flush=True)


def backup(file: FileArg,
           encrypt: Annotated[bool, typer.Option("--encrypt", help="Seal it with a passphrase (argon2id + XChaCha20-Poly1305).")] = False,
           replicas: Annotated[bool, typer.Option("--replicas", help="Include peers' replicas (peers/): what they shared, "
                                                                    "which a sync fetches again).")] = False,
           force: Annotated[bool, typer.Option("--force", help="Replace FILE when it exists.")] = False,
           passphrase_file: PassphraseFile = None) -> None:
    """Write a consistent copy of the data home to FILE while writers run: the store (SQLite's
    online backup), the node key, blobs and settings files, gzip-compressed, with a manifest of
    every file's SHA-256. Written to a temporary file beside FILE (0600) and renamed into place.
    A progress bar on a terminal; one JSON line on stdout otherwise.

    Example: TESSERA_BACKUP_PASSPHRASE=... tessera backup ~/tessera-$(date +%F).tsrbak --encrypt
    """
    from tessera.core.backup import make_backup
    from tessera.core.config import data_home

    make_backup.check_target(file, force=force)  # before asking for a passphrase
    if passphrase_file is not None and not encrypt:
        raise UsageError("--passphrase-file is for --encrypt", hint="add --encrypt, or leave --passphrase-file out")
    passphrase = None
    if encrypt:
        passphrase = _passphrase_from(passphrase_file) or _prompt(twice=True)
    report = _with_progress("backing up", lambda on_progress: make_backup.backup(
        data_home(), file, passphrase=passphrase, replicas=replicas, force=force, on_progress=on_progress))
    _report(report.as_dict(), f"backed up {report.files} files ({report.home_bytes:,} bytes) to {report.path} "
                              f"({report.bytes:,} bytes{', encrypted' if report.encrypted else ''})")
    from tessera.cli.messages import print_warning

    for skipped in report.skipped:
        print_warning(f"left out {skipped}: not a regular file (a link or a special file)")


def restore(file: FileArg,
            force: Annotated[bool, typer.Option("--force", help="Replace a data home that holds a store "
                                                               "(it is kept aside).")] = False,
            passphrase_file: PassphraseFile = None) -> None:
    """Replace the data home with the backup in FILE. The whole backup is verified first
    (decrypted, every file's SHA-256, SQLite's integrity check, the event chains); a backup
    from a newer schema is refused, as is a data home in use (`tessera serve`, a sync, the job
    daemon). A home that holds a store is replaced only with --force, and kept beside it as
    <home>.before-restore-<time> (printed).

    Example: tessera restore --force ~/tessera-2026-12-01.tsrbak
    """
    from tessera.cli.messages import print_message
    from tessera.core.backup import restore_home
    from tessera.core.config import data_home

    asked: list[bytes] = []

    def passphrase() -> bytes:
        if not asked:
            asked.append(_passphrase_from(passphrase_file) or _prompt(twice=False))
        return asked[0]

    report = _with_progress("restoring", lambda on_progress: restore_home.restore(
        data_home(), file, passphrase, replace=force, on_progress=on_progress))
    for named in report.cleaned:
        print_message(f"an earlier restore was stopped after it swapped the homes: the home it replaced is kept at {named}")
    kept = f"; the old data home is kept at {report.previous}" if report.previous else ""
    _report(report.as_dict(), f"restored {report.files} files ({report.bytes:,} bytes, backed up "
                              f"{report.created_at}) into {report.home}{kept}")


def register(app: typer.Typer) -> None:
    """Add the backup and restore commands to ``app``."""
    app.command("backup")(backup)
    app.command("restore")(restore)
