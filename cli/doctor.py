"""``tessera doctor``: run every check (core/doctor/) and render the rows, a table (rich on a
terminal, plain in a pipe) or JSON; exit 0 when nothing failed, 1 otherwise."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from tessera.cli.options import Kubeconfig

_FORMATS = ("table", "json")


def _timeout(text: str) -> float:
    from tessera.core.errors import UsageError
    from tessera.core.times import parse_kube_duration

    try:
        seconds = parse_kube_duration(text)
    except UsageError as exc:
        raise UsageError(f"--timeout: {exc.message}", hint="e.g. 3s, 500ms, 10s") from None
    if seconds <= 0 or seconds > 3600:
        raise UsageError(f"--timeout '{text}' must be more than 0 and at most 1h", hint="e.g. 3s, 500ms, 10s")
    return seconds


def _nats_url(url: str) -> str:
    """A --nats URL in the form the cursors store it (scheme://host:port), checked as push and
    pull check --server (credentials in a URL refused: set TESSERA_NATS_USER/PASSWORD)."""
    from tessera.core.errors import UsageError
    from tessera.core.nats.broker import check_server

    try:
        return check_server(url)
    except UsageError as exc:
        raise UsageError(exc.message.replace("--server", "--nats", 1), hint=exc.hint and exc.hint.replace("--server", "--nats")) from None


def doctor(
    output: Annotated[str, typer.Option("--output", "-o", metavar="FORMAT", help="table or json.")] = "table",
    nats: Annotated[Optional[list[str]], typer.Option("--nats", metavar="URL", show_default=False,
                                                      help="Also check this NATS server (repeatable; the servers "
                                                           "pushed to and pulled from are always checked).")] = None,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION",
                                         help="How long each network check may wait (a context, a peer, a server).")] = "3s",
    kubeconfig: Kubeconfig = None,
) -> int:
    """Check the data home and what this node talks to: permissions, database integrity, event
    chains, kube contexts, peers, NATS servers, the job runner and overdue jobs. One row per
    check with its fix; exit 0 when none failed (a warning does not fail), 1 otherwise.

    Example: tessera doctor --timeout 5s -o json
    """
    from tessera.core.doctor.all_checks import DoctorSettings, run_checks
    from tessera.core.doctor.check_result import all_passed
    from tessera.core.errors import UsageError

    if output not in _FORMATS:
        raise UsageError(f"'{output}' is not a format of doctor", hint="choose table or json")
    settings = DoctorSettings(timeout=_timeout(timeout), nats_servers=[_nats_url(url) for url in nats or []],
                              kubeconfig=kubeconfig)
    rows = run_checks(settings)
    _render(rows, output)
    return 0 if all_passed(rows) else 1


def _render(rows: list, output: str) -> None:
    from tessera.cli.options import OutputSettings
    from tessera.core.render import render
    from tessera.core.result import Result

    result = Result(columns=["check", "status", "detail", "fix"], rows=[r.as_row() for r in rows])
    render(result, output, sys.stdout, color=output == "table" and OutputSettings().use_color(sys.stdout))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
