"""The ``tessera`` app itself: its help and root options (``--version``, ``--correlation``,
``--show-secrets``), with no command yet; cli/main.py registers the one being run (or all)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tessera.cli.options import ShowSecrets
from tessera.cli.version import print_version

HELP = "Live graph queries over Kubernetes clusters and manifests, in a Cypher dialect."


def _version(value: bool) -> None:
    if value:
        print_version()
        raise typer.Exit(0)


def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    correlation: Annotated[
        Optional[str],
        typer.Option("--correlation", metavar="ID", show_default=False,
                     help="Correlation id carried by every event this command writes (default: a new one per command)."),
    ] = None,
    show_secrets: ShowSecrets = False,
) -> None:
    """Live graph queries over Kubernetes clusters and manifests, in a Cypher dialect."""
    if correlation is not None:
        from tessera.core.events import set_correlation

        set_correlation(correlation)


def root_app() -> typer.Typer:
    """A new app with the root options and no commands."""
    app = typer.Typer(
        name="tessera",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    return app
