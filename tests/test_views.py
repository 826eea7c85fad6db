"""Pane views (core/render/views.py): the window a pane shows is the matching slice of the
whole text, and the json, yaml, tree and graph texts are made only as far as they are read."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tessera.core import api
from tessera.core.render import graph
from tessera.core.render.views import ViewCache, rows_as_text, window

QUERY = "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, p.metadata.name AS p"


@pytest.fixture(scope="module")
def result():
    return api.run_query(QUERY, api.open_sources(["demo"]))


def shown(win) -> list[str]:
    console = Console(file=io.StringIO(), width=400, color_system=None, legacy_windows=False)
    with console.capture() as cap:
        console.print(win.renderable)
    return [line.rstrip() for line in cap.get().rstrip("\n").split("\n")]


@pytest.mark.parametrize("view", ["tree", "graph"])
def test_a_window_is_the_slice_of_the_whole_text_made_lazily(result, view):
    out = io.StringIO()
    getattr(graph, f"write_{view}")(result, out)
    full = out.getvalue().rstrip("\n").split("\n")
    assert len(full) > 30
    cache = ViewCache()
    win = window(result, view, height=10, offset=0, cache=cache, color=False)
    assert shown(win) == full[:10]
    made = cache.lines(result, view, None)
    assert len(made.lines) == 10 and not made.done  # only what the pane shows was walked
    assert win.total >= 10 and win.shown == len(result.rows)
    win = window(result, view, height=10, offset=15, cache=cache, color=False)
    assert shown(win) == full[15:25] and win.offset == 15
    win = window(result, view, height=10, offset=10**9, cache=cache, color=False)  # G: the last page
    assert shown(win) == full[-10:] and win.offset == len(full) - 10 and win.total == len(full)
    assert rows_as_text(result, view) == "\n".join(full) + "\n"


def test_a_filter_keeps_matching_lines(result):
    full = graph.tree_lines(result)
    wanted = [line for line in full if "ledger" in line.lower()]
    assert wanted
    win = window(result, "tree", height=50, needle="LEDGER", color=False)
    assert shown(win) == wanted


@pytest.mark.parametrize("view", ["json", "yaml"])
def test_json_and_yaml_windows_match_the_whole_document(result, view):
    import json

    import yaml

    rows = [{c: r.get(c) for c in result.columns} for r in result.rows]
    whole = (json.dumps(rows, indent=2, ensure_ascii=False) if view == "json"
             else yaml.safe_dump(rows, sort_keys=False, allow_unicode=True, width=1000))
    full = whole.rstrip("\n").split("\n")
    assert rows_as_text(result, view) == "\n".join(full) + "\n"  # what y copies
    cache = ViewCache()
    win = window(result, view, height=8, offset=5, cache=cache, color=False)
    assert shown(win) == full[5:13]
    assert not cache.rows_text(result, view, None).done


def test_a_long_column_is_cut_before_the_narrow_ones_are():
    # a search hit's snippet beside its score and path: rich's own fitting took as much from every
    # column of a table that cannot wrap, and left the score and the path no width at all
    from tessera.core.result import Result

    hits = Result(columns=["score", "path", "title", "snippet"], rows=[
        {"score": 1.0, "path": "crashloop.md", "title": "A container keeps restarting (CrashLoopBackOff)",
         "snippet": "the «container» exits and kubelet «restarts» it " * 10},
        {"score": 0.49, "path": "frontend-rollout.md", "title": "Rolling out", "snippet": "short"}])
    console = Console(file=io.StringIO(), width=100, color_system=None, legacy_windows=False)
    with console.capture() as cap:
        console.print(window(hits, "table", height=5, color=False).renderable)
    lines = [line.rstrip() for line in cap.get().rstrip("\n").split("\n")]
    assert lines[0].split()[:4] == ["score", "path", "title", "snippet"]
    assert lines[1].startswith("1.0   crashloop.md ") and lines[2].startswith("0.49  frontend-rollout.md ")
    assert all(len(line) <= 100 for line in lines) and "…" in lines[1]  # the long ones cut, with an ellipsis
    # tables that fit are drawn at their own widths
    with console.capture() as cap:
        console.print(window(Result(columns=["a", "b"], rows=[{"a": 1, "b": 2}]), "table", height=3, color=False).renderable)
    assert cap.get().split("\n")[:2] == ["a b", "1 2"]
