"""The dashboard (cli/tui/) driven with Textual's Pilot: every key action, edits persisted
through the store, errors kept inside panes, layouts at several terminal sizes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tessera.core import config
from tessera.core.notebook import repository
from tessera.core.notebook.markdown import import_markdown
from tessera.core.store.db import connect

pytest.importorskip("textual")

DEPLOYMENTS = "MATCH (d:Deployment) RETURN d.metadata.namespace AS ns, d.metadata.name AS name ORDER BY ns, name"
PHASES = "MATCH (p:Pod) RETURN p.status.phase AS phase, count(p) AS pods ORDER BY phase"


def cell_md(cid: str, source: str, *, row: int, view: str = "table", refresh: str = "manual", title: str = "",
            type_: str = "query", sources: str = "demo") -> str:
    """One fenced cell of the markdown notebook format."""
    fence = "cypher" if type_ == "query" else type_
    src = f" sources={sources}" if type_ == "query" else ""
    return (f'```{fence} {{id={cid} type={type_} view={view} refresh={refresh} row={row} title="{title}"{src}}}\n'
            f"{source}\n```\n\n")


def make_notebook(name: str, cells: list[str], title: str = "Test") -> None:
    """Store a notebook built from cell_md() blocks."""
    nb = import_markdown(f"# {title}\n\n" + "".join(cells), name=name)
    conn = connect()
    repository.create(conn, name, title, notebook=nb)
    conn.close()


def notebook_cells(name: str) -> list[dict]:
    conn = connect()
    try:
        return repository.load(conn, name).cells()
    finally:
        conn.close()


def make_app(name: str, *, color: bool = True, **options):
    from tessera.cli.tui.app import DashApp
    from tessera.core.notebook.session import NotebookSession, SessionOptions

    session = NotebookSession(str(config.database_path()), name, SessionOptions(**options))
    return DashApp(session, str(config.database_path()), color=color)


async def settle(pilot, app, predicate=None, timeout: float = 60.0) -> None:
    """Wait until every pane has left "starting" (and ``predicate()`` holds), then sync the screen."""
    deadline = time.monotonic() + timeout
    while True:
        app.sync_now()
        panes = app.session.panes
        ready = app.session.layout and all(
            panes.get(c) is not None and panes[c].status != "starting" for row in app.session.layout for c in row)
        if ready and (predicate is None or predicate()):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"dashboard did not settle: {[(k, v.status, v.error) for k, v in panes.items()]}")
        await pilot.pause(0.05)
    app.sync_now()
    await pilot.pause()


async def until(pilot, app, predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
        app.sync_now()
    app.sync_now()
    await pilot.pause()


def screen_text(app) -> str:
    """The whole screen as plain text lines."""
    from rich.console import Console

    width, height = app.size
    lines = app.screen._compositor.render_update(full=True)  # noqa: SLF001 - the compositor's strips
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(lines)
    return console.export_text()


def pane(app, cell_id: str):
    from tessera.cli.tui.cell_pane import CellPane

    return app.query_one(f"#cell-{cell_id}", CellPane)


@pytest.fixture
def grid_notebook():
    """Rows of 1, 2 and 4 cells over the demo source."""
    make_notebook("grid", [
        cell_md("deps", DEPLOYMENTS, row=1, title="Deployments"),
        cell_md("phases", PHASES, row=2, view="json", title="Phases"),
        cell_md("phasesy", PHASES, row=2, view="yaml", title="Phases yaml"),
        cell_md("svc", "MATCH (s:Service {namespace: \"shop\"})->(p:Pod) RETURN s, p", row=3, view="tree",
                title="Shop services"),
        cell_md("graph", "MATCH (d:Deployment {namespace: \"payments\"})->(rs:ReplicaSet) RETURN d, rs", row=3,
                view="graph", title="Payments"),
        cell_md("broken", "MATCH (p:Pod RETURN p", row=3, title="Broken"),
        cell_md("notes", "Some **notes**.", row=3, type_="markdown"),
    ])
    return "grid"


def run(coro):
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def dashboard(name: str, size: tuple[int, int] = (160, 50), **options):
    """The dashboard over notebook ``name``, running headless and settled: yields (app, pilot)."""
    app = make_app(name, **options)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        yield app, pilot


def test_layout_statuses_and_error_pane(grid_notebook):
    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            rows = app.query(".row")
            assert [len(r.children) for r in rows] == [1, 2, 4]
            states = app.session.panes
            assert states["deps"].status == "idle" and states["deps"].rows == 14
            assert states["notes"].status == "static"
            assert states["broken"].status == "error" and "expected" in states["broken"].error
            text = screen_text(app)
            assert "payments-api" in text and "Deployments" in text
            assert '"phase": "Failed"' in text or '"phase": "Pending"' in text
            assert "✖" in text  # the error pane's mark; the app is still up
            assert app.is_running
    run(main())


def test_cycle_view_persists_through_the_store(grid_notebook):
    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            await pilot.press("v")
            assert pane(app, "deps").view == "json"
            await until(pilot, app, lambda: notebook_cells("grid")[0]["view"] == "json", what="the view saved")
            assert '"name": "grafana"' in screen_text(app)
    run(main())


def test_edit_saves_and_reruns_and_completes(grid_notebook):
    async def main():
        from tessera.cli.tui.cell_editor import EditScreen, QueryArea

        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            await pilot.press("e")
            assert isinstance(app.screen, EditScreen)
            area = app.screen.query_one(QueryArea)
            await until(pilot, app, lambda: app.completion(["demo"]).kinds, what="kinds for completion")
            area.text = "MATCH (s:Deploym"
            area.move_cursor(area.document.end)
            await pilot.press("tab")  # one candidate: completed in place
            assert area.text == "MATCH (s:Deployment"
            area.text = "MATCH (s:Se"
            area.move_cursor(area.document.end)
            await pilot.press("tab")  # several: a list to pick from
            options = app.screen.query_one("OptionList")
            shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert "Service" in shown and "Secret" in shown
            await pilot.press("tab")  # picks the highlighted one
            assert area.text == "MATCH (s:" + shown[0]
            area.text = "MATCH (s:Service) WHE"
            area.move_cursor(area.document.end)
            await pilot.press("tab")  # keywords
            assert area.text == "MATCH (s:Service) WHERE"
            area.text = "MATCH (s:Service) RETURN s.spec.clusterI"
            area.move_cursor(area.document.end)
            await pilot.press("tab")  # field paths sampled from the cell's own sources
            assert area.text == "MATCH (s:Service) RETURN s.spec.clusterIP"
            await pilot.pause()
            styles = {name for *_, name in area._highlights[0]}
            assert {"keyword", "type"} <= styles  # MATCH and RETURN, Service: Tessera's lexer, not plain text
            area.text = 'MATCH (s:Service) WHERE s.metadata.namespace = "shop" RETURN s.metadata.name AS svc'
            await pilot.press("ctrl+s")
            assert not isinstance(app.screen, EditScreen)
            await until(pilot, app, lambda: "RETURN s.metadata.name AS svc" in notebook_cells("grid")[0]["source"],
                        what="the edit saved")
            await until(pilot, app, lambda: app.session.panes["deps"].result is not None
                        and app.session.panes["deps"].result.columns == ["svc"], what="the cell re-run")
            assert "frontend" in screen_text(app)
    run(main())


def test_edit_is_saved_as_it_is_typed_and_escape_closes(grid_notebook):
    async def main():
        from tessera.cli.tui.cell_editor import EditScreen

        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            await pilot.press("e")
            await pilot.press("space", "L", "I", "M", "I", "T", "space", "2")  # at the end of the text
            await until(pilot, app, lambda: notebook_cells("grid")[0]["source"] == DEPLOYMENTS + " LIMIT 2",
                        what="each keystroke stored while the editor is open")
            assert isinstance(app.screen, EditScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, EditScreen)
            assert notebook_cells("grid")[0]["source"] == DEPLOYMENTS + " LIMIT 2"
    run(main())


def test_run_now_pause_resume(grid_notebook):
    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            before = app.session.panes["deps"].version
            await pilot.press("r")
            await until(pilot, app, lambda: app.session.panes["deps"].version > before, what="run now")
            await pilot.press("p")
            await until(pilot, app, lambda: app.session.panes["deps"].status == "paused", what="paused")
            assert "paused" in screen_text(app)
            await pilot.press("p")
            await until(pilot, app, lambda: app.session.panes["deps"].status == "idle", what="resumed")
    run(main())


def test_a_sync_tick_that_lands_during_shutdown_does_nothing(grid_notebook):
    # The app stops running and drops its screens before its timers stop, so the regular
    # sync can tick with no screen left (seen in CI as ScreenStackError at the end of a test).
    async def main():
        async with dashboard(grid_notebook) as (app, _pilot):
            pass
        assert not app.is_running and not app.screen_stack
        app.sync_now()

    run(main())


def test_zoom_filter_scroll_copy(grid_notebook):
    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            p = pane(app, "deps")
            p.focus()
            await pilot.press("z")
            assert app.screen.maximized is p
            await pilot.press("z")
            assert app.screen.maximized is None
            await pilot.press("slash")
            await pilot.press(*"payments", "enter")
            assert p.needle == "payments"
            text = screen_text(app)
            assert "payments-api" in text and "grafana" not in text
            await pilot.press("y")
            assert app.clipboard.startswith("ns\tname\n") and "payments-api" in app.clipboard
            assert "grafana" not in app.clipboard
            await pilot.press("slash", "ctrl+u", "enter")  # an empty filter clears it
            assert p.needle is None
            await pilot.press("j")
            await pilot.pause()
            assert p.row_offset == 1
            await pilot.press("k")
            await pilot.pause()
            assert p.row_offset == 0
            await pilot.press("G")
            await pilot.pause()
            assert p.row_offset == 14 - (p.body_height() - 1)  # the last rows fill the pane
            await pilot.press("g")
            await pilot.pause()
            assert p.row_offset == 0
    run(main())


def test_add_split_merge_move_remove(grid_notebook):
    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            ids = [c["id"] for c in notebook_cells("grid")]
            pane(app, "phases").focus()
            await pilot.press("s")  # split the row of 2
            await until(pilot, app, lambda: [len(r) for r in app.session.layout] == [1, 1, 1, 4], what="split")
            await until(pilot, app, lambda: [len(r.children) for r in app.query(".row")] == [1, 1, 1, 4],
                        what="re-laid out")
            pane(app, "phases").focus()
            await pilot.press("m")  # and merge it back
            await until(pilot, app, lambda: [len(r) for r in app.session.layout] == [1, 2, 4], what="merge")
            pane(app, "deps").focus()
            await pilot.press("a")
            await until(pilot, app, lambda: len(notebook_cells("grid")) == 8, what="a cell added")
            assert [len(r) for r in app.session.layout] == [1, 1, 2, 4]
            added = next(c for c in notebook_cells("grid") if c["id"] not in ids)
            assert added["sources"] == ["demo"]  # what the focused cell read
            added = added["id"]
            await until(pilot, app, lambda: getattr(app.focused, "cell_id", None) == added, what="the new cell focused")
            await settle(pilot, app)
            assert app.session.panes[added].status == "live" and app.session.panes[added].rows > 0
            pane(app, "phases").focus()
            await pilot.press("right_square_bracket")
            await until(pilot, app, lambda: [c["id"] for c in notebook_cells("grid")][2:4] == ["phasesy", "phases"],
                        what="moved")
            await until(pilot, app, lambda: app.query("#cell-phases"), what="re-laid out")
            pane(app, "deps").focus()
            await pilot.press("d", "n")  # declined
            await pilot.pause(0.3)
            assert len(notebook_cells("grid")) == 8
            await pilot.press("d", "y")
            await until(pilot, app, lambda: "deps" not in [c["id"] for c in notebook_cells("grid")], what="removed")
            await until(pilot, app, lambda: not app.query("#cell-deps"), what="pane gone")
    run(main())


def test_remove_keeps_the_focus_near_the_removed_cell(grid_notebook):
    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "svc").focus()  # cell 4, the first of the row of 4
            await pilot.press("d", "y")
            await until(pilot, app, lambda: not app.query("#cell-svc"), what="pane gone")
            await until(pilot, app, lambda: getattr(app.focused, "cell_id", None) == "graph",
                        what="the focus on the cell now in its place")
            pane(app, "notes").focus()  # the last cell: the focus goes to the one before
            await pilot.press("d", "y")
            await until(pilot, app, lambda: not app.query("#cell-notes"), what="pane gone")
            await until(pilot, app, lambda: getattr(app.focused, "cell_id", None) == "broken", what="the new last cell")
    run(main())


def test_edit_left_open_while_the_cell_moves_saves_into_that_cell(grid_notebook):
    async def main():
        from tessera.cli.tui.cell_editor import QueryArea

        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            await pilot.press("e")
            conn = connect()
            repository.move_cell(conn, "grid", 1, 3)  # another process moves the cell while the editor is open
            conn.close()
            await until(pilot, app, lambda: app.session.layout[0] == ["phases"], what="the move seen")
            app.screen.query_one(QueryArea).text = DEPLOYMENTS + " LIMIT 3"
            await pilot.press("ctrl+s")
            await until(pilot, app, lambda: next(c for c in notebook_cells("grid") if c["id"] == "deps")["source"]
                        == DEPLOYMENTS + " LIMIT 3", what="the edit saved into the moved cell")
            assert notebook_cells("grid")[0]["id"] == "phases" and notebook_cells("grid")[0]["source"] == PHASES
    run(main())


def test_typing_here_and_elsewhere_on_the_same_line_merges(grid_notebook):
    """Live co-editing: what another process types in the cell comes into the open editor, the
    cursor staying where it was in the text around it; what is typed here then lands at the
    cursor, and both edits are kept (no conflict file: the editor is never on an old copy)."""
    async def main():
        from tessera.cli.tui.cell_editor import QueryArea

        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            await pilot.press("e")
            area = app.screen.query_one(QueryArea)
            area.move_cursor((0, len("MATCH (d:Deployment)")))
            conn = connect()
            repository.edit_cell(conn, "grid", "deps", "// mine\n" + DEPLOYMENTS + " LIMIT 50")  # elsewhere
            conn.close()
            await until(pilot, app, lambda: area.text == "// mine\n" + DEPLOYMENTS + " LIMIT 50",
                        what="the other edit in the open editor")
            assert area.cursor_location == (1, len("MATCH (d:Deployment)"))  # moved down a line with its text
            await pilot.press("space", "x")
            want = "// mine\nMATCH (d:Deployment) x" + DEPLOYMENTS[len("MATCH (d:Deployment)"):] + " LIMIT 50"
            await until(pilot, app, lambda: notebook_cells("grid")[0]["source"] == want, what="both edits stored")
            assert area.text == want
    run(main())


def test_text_typed_elsewhere_at_the_cursor_goes_after_it(grid_notebook):
    async def main():
        from tessera.cli.tui.cell_editor import QueryArea

        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "notes").focus()
            await pilot.press("e")
            area = app.screen.query_one(QueryArea)
            area.move_cursor((0, len("Some ")))
            conn = connect()
            repository.edit_cell(conn, "grid", "notes", "Some more **notes**.")
            conn.close()
            await until(pilot, app, lambda: area.text == "Some more **notes**.", what="the other edit")
            assert area.cursor_location == (0, len("Some "))
            await pilot.press("X")
            await until(pilot, app, lambda: notebook_cells("grid")[6]["source"] == "Some Xmore **notes**.",
                        what="the keystroke stored before the other's text")
    run(main())


def test_help_palette_and_focus_keys(grid_notebook):
    async def main():
        from textual.command import CommandPalette

        from tessera.cli.tui.screens import HelpScreen

        async with dashboard(grid_notebook) as (app, pilot):
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            assert "Cycle the view" in screen_text(app)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            await pilot.press("ctrl+p")
            assert isinstance(app.screen, CommandPalette)
            await pilot.press(*"zoom")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.screen.maximized is not None
            await pilot.press("escape")
            pane(app, "phases").focus()
            await pilot.press("l")
            assert app.focused is pane(app, "phasesy")
            await pilot.press("h")
            assert app.focused is pane(app, "phases")
            await pilot.press("tab")
            assert app.focused is pane(app, "phasesy")
            await pilot.click("#cell-deps")  # the mouse focuses a pane too
            assert app.focused is pane(app, "deps")
    run(main())


def test_follows_edits_from_another_process(grid_notebook):
    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            conn = connect()
            repository.edit_cell(conn, "grid", 1, "MATCH (n:Node) RETURN n.metadata.name AS node")
            repository.set_cell(conn, "grid", 2, title="Renamed elsewhere")
            conn.close()
            await until(pilot, app, lambda: (app.session.panes["deps"].result or None) is not None
                        and app.session.panes["deps"].result.columns == ["node"], what="the external edit")
            await until(pilot, app, lambda: "Renamed elsewhere" in screen_text(app), what="the new title")
    run(main())


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (250, 70)])
def test_sizes_keep_every_pane_visible(grid_notebook, size):
    async def main():
        async with dashboard(grid_notebook, size) as (app, pilot):
            for p in app.query("CellPane"):
                region = p.region
                assert region.width >= 16 and region.height >= 3, (p.id, region)
                assert region.right <= size[0]
            await pilot.resize_terminal(*(100, 30))
            await pilot.pause(0.2)
            assert all(p.region.width >= 16 for p in app.query("CellPane"))
    run(main())


def test_live_pane_follows_the_replay():
    make_notebook("live", [cell_md("pods", 'MATCH (d:Deployment {name: "payments-api"}) RETURN d.spec.replicas AS n',
                                   row=1, refresh="watch", sources="replay:demo")])

    async def main():
        # looped: a late start (a busy machine) still sees changes
        async with dashboard("live", (100, 20), speed=120.0, loop=True) as (app, pilot):
            first = app.session.panes["pods"].result.rows[0]["n"]
            await until(pilot, app, lambda: app.session.panes["pods"].result.rows[0]["n"] != first, timeout=60,
                        what="a replayed change")
            now = app.session.panes["pods"].result.rows[0]["n"]
            assert f"{now}" in screen_text(app)
            assert app.session.panes["pods"].status == "live"
    run(main())


def test_an_in_context_pane_follows_that_context_and_names_it(kubeconfig, kube_api_b):
    query = 'IN emu-b MATCH (p:Pod) WHERE p.metadata.namespace = "payments" RETURN p.metadata.name AS pod, ' \
            'p.status.phase AS phase'
    conn = connect()
    repository.create(conn, "multi")
    repository.add_cell(conn, "multi", query, refresh="watch")  # no sources: the dashboard's defaults
    cell_id = repository.load(conn, "multi").ids()[0]
    conn.close()

    async def main():
        async with dashboard("multi", (100, 16), kubeconfig=str(kubeconfig), min_refresh=0.0) as (app, pilot):
            await until(pilot, app, lambda: "emu-b · table" in screen_text(app), timeout=60, what="the footer")
            assert "api-b-5d8f-0" in screen_text(app) and "emu-a" not in screen_text(app)
            pod = kube_api_b.get("v1", "Pod", "payments", "api-b-5d8f-0")
            kube_api_b.update({**pod, "status": {"phase": "Failed"}})
            await until(pilot, app, lambda: app.session.panes[cell_id].result.rows[0]["phase"] == "Failed",
                        timeout=60, what="the change in emu-b")
            await until(pilot, app, lambda: "Failed" in screen_text(app), what="the change on screen")
    run(main())


def test_a_lost_connection_shows_in_the_pane_and_so_does_the_recovery(kubeconfig, kube_api):
    make_notebook("kube", ['```cypher {id=pods type=query view=table refresh=watch row=1 title="Pods"}\n'
                           "MATCH (p:Pod) RETURN p.metadata.name AS pod ORDER BY pod\n```\n\n"])

    async def main():
        async with dashboard("kube", (120, 20), kubeconfig=str(kubeconfig)) as (app, pilot):
            assert app.session.panes["pods"].status == "live" and app.session.panes["pods"].rows == 3
            kube_api.stop()
            await until(pilot, app, lambda: app.session.panes["pods"].status == "reconnecting", timeout=60,
                        what="the pane to say it lost the connection")
            text = screen_text(app)
            assert "reconnecting" in text and "connection lost" in text and "retrying" in text
            assert "web-5d8f-0" in text, "the last rows stay on show"
            kube_api.start()
            await until(pilot, app, lambda: app.session.panes["pods"].status == "live", timeout=60,
                        what="the pane to recover")
            text = screen_text(app)
            assert "reconnected" in text and "connection lost" not in text
            assert app.session.panes["pods"].fault is None and app.session.panes["pods"].reconnected
    run(main())


def test_an_edit_error_echoing_brackets_is_shown_as_text(grid_notebook):
    """A failed edit's message echoes user text; Textual markup in it ("[/]") must not raise MarkupError."""
    async def main():
        from tessera.core.errors import UsageError

        def edit(conn):
            raise UsageError("bad cell type '[/]' or '[/bold]'")

        async with dashboard(grid_notebook) as (app, pilot):
            app.persist("set type", edit)
            await until(pilot, app, lambda: any("[/]" in str(n.message) for n in app._notifications),
                        what="the error notified")
            (note,) = [n for n in app._notifications if "[/]" in str(n.message)]
            assert note.markup is False  # drawn as text: with markup, Textual raises MarkupError drawing it
            await settle(pilot, app)
            assert app.is_running
    run(main())


def test_a_title_with_markup_brackets_is_shown_as_text():
    make_notebook("brackets", [cell_md("deps", DEPLOYMENTS, row=1, title="Deployments")], title="Costs [/] and [/bold]")

    async def main():
        async with dashboard("brackets") as (app, pilot):
            assert app.is_running and "Costs [/] and [/bold]" in screen_text(app)
    run(main())


def test_the_dashboard_changes_notebooks_only_through_the_core_editor(grid_notebook, monkeypatch):
    """No store connection is opened by cli/tui code: the dashboard's edits are written by the
    session's core NotebookEditor, on its thread, through the store's functions."""
    import sqlite3
    import threading
    import traceback
    from pathlib import Path

    import tessera.cli.tui
    import tessera.core.notebook.editor

    tui = str(Path(tessera.cli.tui.__file__).parent) + "/"
    editor_file = tessera.core.notebook.editor.__file__
    opened: list[tuple[str, list[str]]] = []
    real_connect = sqlite3.connect

    def recording_connect(*args, **kwargs):
        opened.append((threading.current_thread().name, [f.filename for f in traceback.extract_stack()]))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", recording_connect)

    async def main():
        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "phases").focus()
            await pilot.press("v")  # json -> yaml, saved through the store
            await until(pilot, app, lambda: notebook_cells("grid")[1]["view"] == "yaml", what="the view saved")
    run(main())
    from_tui = [(thread, [f for f in files if f.startswith(tui)]) for thread, files in opened
                if any(f.startswith(tui) for f in files)]
    assert from_tui == [], f"cli/tui opened store connections: {from_tui}"
    assert [thread for thread, files in opened if editor_file in files] == ["tessera-notebook-editor"]


def test_a_dashboard_edit_is_live_and_cell_edit_merges_over_it(grid_notebook, monkeypatch, tmp_path):
    """The dashboard's editor is never on an old copy: each change is written as typed, on the
    editor's thread (no three-way merge); ``tessera cell edit`` with $EDITOR, which is, merges
    three-way (model.merge_text) over it."""
    import sys
    import threading

    from tessera.cli import notebook as notebook_cli
    from tessera.core.notebook import model

    merges: list[tuple[str, str, str, str]] = []
    real_merge = model.merge_text

    def recording_merge(base, theirs, mine):
        merges.append((threading.current_thread().name, base, theirs, mine))
        return real_merge(base, theirs, mine)

    monkeypatch.setattr(model, "merge_text", recording_merge)

    async def main():
        from tessera.cli.tui.cell_editor import QueryArea

        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            await pilot.press("e")
            app.screen.query_one(QueryArea).text = DEPLOYMENTS + "\nLIMIT 3"
            await pilot.press("ctrl+s")
            await until(pilot, app, lambda: notebook_cells("grid")[0]["source"] == DEPLOYMENTS + "\nLIMIT 3",
                        what="the dashboard's edit saved")
    run(main())
    script = tmp_path / "fake-editor"
    script.write_text(f"#!{sys.executable}\nimport sys\np = sys.argv[1]\ntext = open(p).read()\n"
                      "open(p, 'w').write(text.replace('LIMIT 3', 'LIMIT 4'))\n")
    script.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(script))
    monkeypatch.setenv("VISUAL", "")
    notebook_cli.edit("grid/1")  # `tessera cell edit grid/1`, in this process so the merge is seen
    assert notebook_cells("grid")[0]["source"] == DEPLOYMENTS + "\nLIMIT 4"
    assert [(thread, base) for thread, base, _, _ in merges] == [
        (threading.current_thread().name, DEPLOYMENTS + "\nLIMIT 3")]


def test_a_pane_keeps_its_drawn_rows_while_the_rows_on_show_are_the_same():
    # A live pane gets a new state every second; when the rows it shows did not change (a change
    # among 10,000 rows off-screen) it keeps the lines it drew, the subtitle still follows; a
    # change on show is drawn at once.
    from dataclasses import replace

    make_notebook("kept", [cell_md("deps", DEPLOYMENTS, row=1, title="Deployments")])

    async def main():
        async with dashboard("kept", (100, 12)) as (app, pilot):
            p = pane(app, "deps")
            state = p.state
            rows = state.result.rows
            assert "changed" not in screen_text(app) and len(rows) > 12
            drawn = p.render()

            def show(new_rows, version, refreshed):
                new = replace(state, result=replace(state.result, rows=new_rows), version=version, refreshed=refreshed)
                app.session.panes["deps"] = new  # a manual cell: the session publishes nothing more
                app.sync_now()

            show([*rows[:-1], {**rows[-1], "name": "changed-off-screen"}], state.version + 1, "2026-12-01T12:34:56Z")
            await pilot.pause()
            text = screen_text(app)
            assert p.render() is drawn and "12:34:56" in text and "changed" not in text
            show([{**rows[0], "name": "changed-on-screen"}, *rows[1:]], state.version + 2, "2026-12-01T12:34:57Z")
            await pilot.pause()
            text = screen_text(app)
            assert p.render() is not drawn and "changed-on-screen" in text and "12:34:57" in text
    run(main())


def test_the_owners_dashboard_announces_itself_and_shows_who_else_is_in_the_notebook(grid_notebook):
    """Presence (core/collab/presence.py): the dashboard announces itself with its focused cell,
    shows the others in its banner (name, cell) and on the border of the pane each is in, and
    withdraws on exit."""
    from tessera.core.collab import presence
    from tessera.core.peers import identity

    conn = connect()
    identity.init(conn, "alice")  # a node with a key: peers could be in its notebooks
    nid = repository.notebook_id(conn, "grid")
    presence.announce(conn, nid, "peer-bob", name="bob", node="b" * 64, cell="deps", where="peer")
    conn.close()

    def mine() -> list[dict]:
        conn = connect()
        try:
            return [p for p in presence.present(conn, nid) if p["where"] == "local"]
        finally:
            conn.close()

    async def main():
        async with dashboard(grid_notebook, presence=True) as (app, pilot):
            await until(pilot, app, lambda: "here: bob (cell 1)" in screen_text(app), what="bob in the banner")
            assert "bob" in str(pane(app, "deps").border_title)
            assert "bob" not in str(pane(app, "phases").border_title)
            pane(app, "phases").focus()
            await until(pilot, app, lambda: [(p["name"], p["cell"]) for p in mine()] == [("alice", "phases")],
                        what="our own presence, in the focused cell")
            conn = connect()
            presence.announce(conn, nid, "peer-bob", name="bob", node="b" * 64, cell="phases", where="peer")
            conn.close()
            await until(pilot, app, lambda: "bob" in str(pane(app, "phases").border_title)
                        and "bob" not in str(pane(app, "deps").border_title), what="bob moved to cell 2")
    run(main())
    assert mine() == []  # withdrawn on exit


def test_an_open_editor_closes_when_its_cell_is_removed_elsewhere(grid_notebook):
    async def main():
        from tessera.cli.tui.cell_editor import EditScreen

        async with dashboard(grid_notebook) as (app, pilot):
            pane(app, "deps").focus()
            await pilot.press("e")
            assert isinstance(app.screen, EditScreen)
            conn = connect()
            repository.remove_cell(conn, "grid", "deps")  # another process
            conn.close()
            await until(pilot, app, lambda: not isinstance(app.screen, EditScreen), what="the editor closed")
            assert any("was removed elsewhere" in n.message for n in app._notifications)
    run(main())
