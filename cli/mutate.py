"""Mutations from ``tessera query``: plan, show (``--dry-run``), confirm on a terminal, apply."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from tessera.cli.options import OutputSettings, emit


def run_mutation(text: str, sources: list[Any], out: OutputSettings, *, dry_run: bool, yes: bool, read_only: bool,
                 run_options: dict[str, Any], ask: Callable[[str], bool] | None = None) -> None:
    """Plan a CREATE / SET / DELETE, then print the calls (dry run) or confirm and apply them.

    Args:
        text: the mutating query.
        sources: opened sources (writes are refused on files and recordings).
        out: output settings for the rows describing what was written.
        dry_run: print each request as JSON (context, method, path, body) and stop.
        (With RETURN, the output is the RETURN rows over the written objects; without, one row
        per object written.)
        yes: skip the confirmation a terminal otherwise asks for.
        read_only: refuse all writes.
        run_options: namespace / all_namespaces.
        ask: how to ask the yes/no question (the shell asks through its own prompt); given, it
            is asked even when stdin is not a terminal. Default: a rich prompt on a terminal.
    """
    from tessera.core import api
    from tessera.core.errors import TesseraError
    from tessera.core.mutate import written_key
    from tessera.core.result import Result

    plans = api.plan_mutation(text, sources, read_only=read_only, **run_options)
    calls = [call for plan in plans for call in plan.calls]
    if not calls:
        if not out.quiet:
            print("tessera: nothing to change: the MATCH found no resources", file=sys.stderr)
        return
    if dry_run:
        for call in calls:
            print(json.dumps(call.request(), sort_keys=False))
        return
    if not yes and (ask is not None or (sys.stdin.isatty() and sys.stderr.isatty())):
        _confirm(calls, ask)
    done = Result(columns=["context", "op", "kind", "namespace", "name"])
    written: dict[int, dict] = {}
    for call in calls:
        try:
            written[written_key(call)] = api.apply_mutation(call)
        except TesseraError as exc:
            emit(done, out)
            raise type(exc)(f"{exc.message} (after {len(done.rows)} of {len(calls)} changes were made)",
                            hint=exc.hint) from None
        done.rows.append({"context": call.source.name, "op": {"create": "created", "patch": "patched",
                          "delete": "deleted"}[call.verb], "kind": call.kind.kind, "namespace": call.namespace,
                          "name": call.name})
    if not plans[0].query.returns:
        emit(done, out)
        return
    # RETURN after a write shows the matches as the server has them now
    results = [(plan.source.name, plan.returned(written)) for plan in plans]
    emit(results[0][1] if len(results) == 1 else api.merge_results(results), out)


def _confirm(calls: list[Any], ask: Callable[[str], bool] | None = None) -> None:
    """List what would change on stderr and ask (default no), with ``ask`` when given.

    Raises:
        TesseraError ("cancelled", exit 1) when the answer is no.
    """
    from rich.console import Console
    from rich.prompt import Confirm

    from tessera.core.errors import TesseraError

    console = Console(stderr=True, highlight=False)
    console.print(f"[bold]{len(calls)} change(s):[/bold]")
    for call in calls:
        console.print(f"  {call.verb:<6} {call.target()}  [dim]({call.source.name})[/dim]", markup=True)
        if call.verb == "patch":
            for op in call.body:
                console.print(f"         {op['path']} = {json.dumps(op['value'])}", markup=False)
    if not (ask("Apply?") if ask is not None else Confirm.ask("Apply?", console=console, default=False)):
        raise TesseraError("cancelled: nothing was changed")
