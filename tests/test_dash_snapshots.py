"""Snapshot tests of the dashboard (pytest-textual-snapshot): rows of 1, 2 and 4 panes, each view,
an error pane, the help screen, a small terminal and monochrome. Regenerate after an intended
change with ``pytest tests/test_dash_snapshots.py --snapshot-update`` and review the SVGs."""

from __future__ import annotations

import pytest

from test_dash import DEPLOYMENTS, PHASES, cell_md, make_app, make_notebook, settle

pytest.importorskip("pytest_textual_snapshot")

FROZEN = "2026-11-01T09:00:00.000Z"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """Panes show their last refresh time; freeze it so the screens are the same every run."""
    from tessera.core.notebook import session

    monkeypatch.setattr(session, "_now", lambda: FROZEN)


async def _settled(pilot) -> None:
    await settle(pilot, pilot.app)
    await pilot.pause(0.2)
    pilot.app.sync_now()
    await pilot.pause()


VIEW_QUERIES = {
    "table": DEPLOYMENTS,
    "json": PHASES,
    "yaml": PHASES,
    "tree": 'MATCH (i:Ingress)->(s:Service)->(p:Pod) RETURN i, s, p',
    "graph": 'MATCH (d:Deployment {namespace: "payments"})->(rs:ReplicaSet) RETURN d, rs',
}


@pytest.mark.parametrize("view", list(VIEW_QUERIES))
def test_each_view(snap_compare, view):
    make_notebook("v", [cell_md("c1", VIEW_QUERIES[view], row=1, view=view, title=f"A {view} view")])
    assert snap_compare(make_app("v"), terminal_size=(100, 24), run_before=_settled)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_row_of(snap_compare, size):
    queries = [DEPLOYMENTS, PHASES, VIEW_QUERIES["graph"], "MATCH (n:Node) RETURN n.metadata.name AS node"]
    make_notebook("r", [cell_md(f"c{i}", queries[i], row=1, title=f"Cell {i + 1}") for i in range(size)])
    assert snap_compare(make_app("r"), terminal_size=(120, 20), run_before=_settled)


def test_error_pane(snap_compare):
    make_notebook("e", [cell_md("ok", PHASES, row=1, title="Fine"),
                        cell_md("bad", "MATCH (p:Pod) WHERE p.status.phase = RETURN p", row=1, title="Broken")])
    assert snap_compare(make_app("e"), terminal_size=(120, 16), run_before=_settled)


def test_help_screen(snap_compare):
    make_notebook("h", [cell_md("c1", DEPLOYMENTS, row=1, title="Deployments")])
    assert snap_compare(make_app("h"), terminal_size=(100, 36), press=["question_mark"], run_before=_settled)


def test_small_terminal_with_rows_of_1_2_4(snap_compare):
    make_notebook("s", [
        cell_md("a", DEPLOYMENTS, row=1, title="Deployments"),
        cell_md("b", PHASES, row=2, view="json", title="Phases"),
        cell_md("c", PHASES, row=2, view="yaml", title="Phases"),
        *[cell_md(f"d{i}", PHASES, row=3, title=f"P{i}") for i in range(4)],
    ])
    assert snap_compare(make_app("s"), terminal_size=(80, 24), run_before=_settled)


def test_monochrome(snap_compare, monkeypatch):
    from tessera.cli.tui.app import DashApp

    monkeypatch.setenv("NO_COLOR", "1")
    make_notebook("m", [cell_md("ok", PHASES, row=1, title="Fine"),
                        cell_md("bad", "MATCH (p:Pod RETURN p", row=1, title="Broken")])
    app = make_app("m", color=False)
    assert isinstance(app, DashApp)
    assert snap_compare(app, terminal_size=(100, 16), run_before=_settled)
