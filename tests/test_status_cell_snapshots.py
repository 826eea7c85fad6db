"""Snapshots of the status cell in the dashboard (pytest-textual-snapshot) on an empty data home,
whose rows are the same every run (one hint per section): in a row of 2 and in a row of 4.
Regenerate after an intended change with ``--snapshot-update`` and review the SVGs."""

from __future__ import annotations

import pytest

from test_dash import cell_md, make_app, make_notebook
from test_dash_snapshots import _settled, frozen_clock  # noqa: F401 - the fixture freezes the panes' times

pytest.importorskip("pytest_textual_snapshot")


@pytest.mark.parametrize("size", [2, 4])
def test_the_status_cell_in_a_row_of(snap_compare, size):
    cells = [cell_md("system", "", row=1, type_="status", refresh="watch", title="System")]
    cells += [cell_md(f"note{i}", f"note {i}", row=1, type_="markdown") for i in range(size - 1)]
    make_notebook("st", cells)
    assert snap_compare(make_app("st"), terminal_size=(120, 12), run_before=_settled)
