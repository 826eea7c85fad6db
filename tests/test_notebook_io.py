"""Import and export: .ipynb through nbformat (schema-validated) and the fenced markdown format;
both round-trip exactly in both directions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.core import events
from tessera.core.errors import InputError
from tessera.core.notebook import repository
from tessera.core.notebook.ipynb import export_ipynb, import_ipynb
from tessera.core.notebook.markdown import export_markdown, import_markdown
from tessera.core.notebook.model import Notebook
from tessera.core.store.db import connect


def tsr(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True,
                          input=input, env=dict(os.environ), timeout=120)


def sample() -> Notebook:
    nb = Notebook(name="s")
    nb.set_title("Pods — and events 😀")
    nb.add_cell("query", "MATCH (p:Pod)\nWHERE p.status.phase = \"Failed\"\nRETURN p.metadata.name AS pod",
                view="table", refresh="watch", sources=["demo"], title="Failed pods")
    nb.add_cell("markdown", "# Notes\n\nSome *prose* with ```code``` and a fence:\n```\nx\n```\n")
    nb.add_cell("sql", "SELECT subject, count(*) AS n FROM events GROUP BY subject", view="json", refresh="every:30")
    nb.add_cell("events", "notebook.>", sources=["a b", "c,d", "./k8s/"], title='He said "hi"')
    nb.add_cell("query", "", view="graph")
    nb.add_cell("query", "MATCH (d:Deployment) RETURN d", sources=["replay:demo", "./x.yaml"], view="tree")
    nb.merge_rows(1)  # rows: [q, md], [sql], [events], [q], [q]
    nb.merge_rows(3)  # [q, md], [sql, events], [q], [q]
    nb.merge_rows(1)  # [q, md, sql, events], [q], [q]
    nb.merge_rows(5)  # [4], [2]
    return nb


def test_sample_layout():
    assert [len(r) for r in sample().layout()] == [4, 2]


# --- ipynb ------------------------------------------------------------------------------------


def test_ipynb_export_validates_and_keeps_attributes_in_metadata():
    nb = sample()
    text = export_ipynb(nb)
    data = nbformat.reads(text, as_version=4)
    nbformat.validate(data)
    assert data.nbformat == 4
    assert data.metadata["tessera"]["title"] == nb.title
    assert [c.cell_type for c in data.cells] == ["code", "markdown", "code", "code", "code", "code"]
    assert [c.id for c in data.cells] == nb.ids()
    first = data.cells[0].metadata["tessera"]
    assert first == {"type": "query", "view": "table", "refresh": "watch", "sources": ["demo"], "title": "Failed pods",
                     "row": 1}
    assert [c.metadata["tessera"]["row"] for c in data.cells] == [1, 1, 1, 1, 2, 2]
    assert all(c.outputs == [] for c in data.cells if c.cell_type == "code")


def test_ipynb_round_trips_exactly_both_ways():
    nb = sample()
    text = export_ipynb(nb)
    back = import_ipynb(text)
    assert back.to_dict() == nb.to_dict()
    assert export_ipynb(back) == text


def test_ipynb_import_of_a_plain_jupyter_notebook():
    from nbformat import v4

    plain = v4.new_notebook()
    plain.cells = [v4.new_markdown_cell("# My notes\nsome text"), v4.new_code_cell("MATCH (p:Pod) RETURN p"),
                   v4.new_raw_cell("raw")]
    nb = import_ipynb(nbformat.writes(plain))
    assert nb.title == "My notes"
    assert [(c["type"], c["row"]) for c in nb.cells()] == [("markdown", 1), ("query", 2), ("markdown", 3)]
    assert [c["id"] for c in nb.cells()] == [c.id for c in plain.cells]


def test_ipynb_import_keeps_python_code_cells_as_markdown_with_one_warning():
    from nbformat import v4

    py = v4.new_notebook()
    py.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    py.metadata["language_info"] = {"name": "python"}
    py.cells = [v4.new_markdown_cell("# Analysis"), v4.new_code_cell("import pandas as pd\ndf = pd.read_csv('x')"),
                v4.new_code_cell("MATCH (p:Pod) RETURN p"), v4.new_code_cell("")]
    warnings: list[str] = []
    nb = import_ipynb(nbformat.writes(py), where="a.ipynb", warnings=warnings)
    assert [c["type"] for c in nb.cells()] == ["markdown"] * 4  # a Python notebook's code is never a query
    assert nb.cells()[1]["source"] == "```python\nimport pandas as pd\ndf = pd.read_csv('x')\n```"
    assert warnings == ["a.ipynb: 3 code cells of python code imported as markdown (shown, never run)"]


def test_ipynb_import_without_a_language_keeps_non_queries_as_markdown():
    from nbformat import v4

    plain = v4.new_notebook()
    plain.cells = [v4.new_code_cell("print('hi')"), v4.new_code_cell("MATCH (p:Pod) RETURN p")]
    warnings: list[str] = []
    nb = import_ipynb(nbformat.writes(plain), warnings=warnings)
    assert [c["type"] for c in nb.cells()] == ["markdown", "query"]
    assert nb.cells()[0]["source"] == "```\nprint('hi')\n```"
    assert warnings == ["<ipynb>: 1 code cell of code that is not a Tessera query imported as markdown (shown, never run)"]


@pytest.mark.parametrize("text, message", [
    ("not json", "not a valid Jupyter notebook"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": [{"cell_type": "code"}], "metadata": {}}),
     "not a valid Jupyter notebook"),
])
def test_ipynb_import_rejects_invalid_files(text, message):
    with pytest.raises(InputError, match=message):
        import_ipynb(text, where="bad.ipynb")


def test_ipynb_import_rejects_a_bad_row_layout():
    nb = sample()
    data = json.loads(export_ipynb(nb))
    for cell in data["cells"][:3]:
        cell["metadata"]["tessera"]["row"] = 7
    data["cells"][3]["metadata"]["tessera"]["row"] = 8
    with pytest.raises(InputError, match="x.ipynb: row 1 has 3 cells; a row holds 1, 2 or 4"):
        import_ipynb(json.dumps(data), where="x.ipynb")


# --- markdown ---------------------------------------------------------------------------------


def test_markdown_export_shape():
    nb = Notebook(name="s")
    nb.set_title("Board")
    cid, _ = nb.add_cell("query", "MATCH (p:Pod) RETURN p", refresh="watch", sources=["demo"], title="Pods")
    mid, _ = nb.add_cell("markdown", "Some ```code```")
    assert export_markdown(nb) == textwrap.dedent(f"""\
        # Board

        ```cypher {{id={cid} type=query view=table refresh=watch row=1 title="Pods" sources=demo}}
        MATCH (p:Pod) RETURN p
        ```

        ````markdown {{id={mid} type=markdown view=table refresh=manual row=2}}
        Some ```code```
        ````
        """)


def test_markdown_round_trips_exactly_both_ways():
    nb = sample()
    text = export_markdown(nb)
    back = import_markdown(text)
    assert back.to_dict() == nb.to_dict()
    assert export_markdown(back) == text
    assert 'sources=["a b", "c,d", "./k8s/"]' in text and 'title="He said \\"hi\\""' in text
    assert "sources=replay:demo,./x.yaml" in text


CANONICAL = textwrap.dedent("""\
    # Incident review

    ```cypher {id=c000001 type=query view=table refresh=every:60 row=1 title="Crash loops" sources=demo,replay:demo}
    MATCH (p:Pod)
    WHERE p.status.containerStatuses[*].restartCount > 3
    RETURN p.metadata.name
    ```

    ```sql {id=c000002 type=sql view=json refresh=manual row=1}
    SELECT subject FROM events
    ```

    ```events {id=c000003 type=events view=table refresh=watch row=2}
    query.*.*.changed
    ```

    ```markdown {id=c000004 type=markdown view=table refresh=manual row=3 title="Notes"}

    Blank lines around are kept.

    ```
    """)


def test_markdown_canonical_text_round_trips():
    nb = import_markdown(CANONICAL)
    assert nb.title == "Incident review"
    assert nb.layout() == [["c000001", "c000002"], ["c000003"], ["c000004"]]
    assert nb.cell(1)["sources"] == ["demo", "replay:demo"] and nb.cell(1)["refresh"] == "every:60"
    assert nb.cell(4)["source"] == "\nBlank lines around are kept.\n"
    assert export_markdown(nb) == CANONICAL


def test_markdown_hand_written_file_gets_defaults_and_keeps_prose():
    text = textwrap.dedent("""\
        # Hand made

        Some prose first.

        ```cypher
        MATCH (p:Pod) RETURN p
        ```

        ```bash
        kubectl get pods
        ```

        ```sql {view=json}
        SELECT 1
        ```
        """)
    nb = import_markdown(text)
    cells = nb.cells()
    assert nb.title == "Hand made"
    assert [(c["type"], c["source"]) for c in cells] == [
        ("markdown", "Some prose first."), ("query", "MATCH (p:Pod) RETURN p"),
        ("markdown", "```bash\nkubectl get pods\n```"), ("sql", "SELECT 1")]
    assert cells[3]["view"] == "json" and all(c["id"].startswith("c") for c in cells)
    assert nb.layout() == [[c["id"]] for c in cells]
    again = export_markdown(nb)
    assert import_markdown(again).to_dict() == nb.to_dict()


@pytest.mark.parametrize("text, message", [
    ("```cypher {id=c1}\nMATCH\n", "x.md:1: the fenced block opened here is not closed"),
    ("```cypher {colour=red}\nx\n```\n", "x.md:1: unknown attribute 'colour'"),
    ("```cypher {view=pie}\nx\n```\n", "'pie' is not a view"),
    ("```cypher {row=1}\na\n```\n```cypher {row=1}\nb\n```\n```cypher {row=1}\nc\n```\n",
     "row 1 has 3 cells; a row holds 1, 2 or 4"),
    ("```cypher {row=1}\na\n```\n```cypher {row=2}\nb\n```\n```cypher {row=1}\nc\n```\n",
     "x.md:7: row 1 continues after another row"),
    ("```cypher {id=c1 row=1}\na\n```\n```cypher {id=c1 row=2}\nb\n```\n", "cell id 'c1' appears twice"),
    ('```cypher {title="unclosed}\nx\n```\n', "bad quoted value for 'title'"),
    ("```cypher {row=x}\nx\n```\n", "row must be a number"),
])
def test_markdown_import_errors(text, message):
    with pytest.raises(InputError) as info:
        import_markdown(text, where="x.md")
    assert message in info.value.message


cell_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=40)
attr_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=attr_text, cells=st.lists(st.tuples(
    st.sampled_from(["query", "markdown", "sql", "events", "search"]), cell_text, attr_text,
    st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=8), max_size=3),
    st.sampled_from(["table", "json", "yaml", "tree", "graph"]), st.sampled_from(["manual", "watch", "every:5"]),
), max_size=5), merges=st.lists(st.integers(1, 5), max_size=3))
def test_round_trips_hold_for_any_content(title, cells, merges):
    nb = Notebook(name="h")
    nb.set_title(title)
    for kind, source, ctitle, sources, view, refresh in cells:
        nb.add_cell(kind, source, title=ctitle, sources=sources, view=view, refresh=refresh)
    for n in merges:
        try:
            nb.merge_rows(n)
        except Exception:
            pass
    md = export_markdown(nb)
    assert import_markdown(md).to_dict() == nb.to_dict()
    assert export_markdown(import_markdown(md)) == md
    ipynb = export_ipynb(nb)
    assert import_ipynb(ipynb).to_dict() == nb.to_dict()
    assert export_ipynb(import_ipynb(ipynb)) == ipynb


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["ipynb", "md"])
def test_cli_export_import_round_trip(tmp_path, ext):
    conn = connect()
    nb = sample()
    repository.create(conn, "src", notebook=nb)
    out = tmp_path / f"board.{ext}"
    assert tsr("notebook", "export", "src", str(out)).returncode == 0
    proc = tsr("notebook", "import", str(out))
    assert proc.returncode == 0, proc.stderr
    assert repository.load(conn, "board").to_dict() == nb.to_dict()
    imported = events.read(conn, pattern="notebook.board.imported")
    assert len(imported) == 1 and imported[0].data["format"] == ("ipynb" if ext == "ipynb" else "markdown")
    assert imported[0].data["cells"] == len(nb)
    again = tmp_path / f"again.{ext}"
    tsr("notebook", "export", "board", str(again))
    assert again.read_bytes() == out.read_bytes()
    dup = tsr("notebook", "import", str(out))
    assert dup.returncode == 1 and "notebook 'board' already exists" in dup.stderr
    fmt = "ipynb" if ext == "ipynb" else "markdown"
    stdout = tsr("notebook", "export", "board", "--format", fmt).stdout
    assert stdout == out.read_text(encoding="utf-8")
    piped = tsr("notebook", "import", "-", "--name", "piped", "--format", fmt, input=stdout)
    assert piped.returncode == 0, piped.stderr
    assert repository.load(conn, "piped").to_dict() == nb.to_dict()


def test_cli_import_of_a_python_notebook_warns_once(tmp_path):
    from nbformat import v4

    py = v4.new_notebook(metadata={"language_info": {"name": "python"}})
    py.cells = [v4.new_code_cell("x = 1"), v4.new_code_cell("print(x)")]
    path = tmp_path / "analysis.ipynb"
    path.write_text(nbformat.writes(py))
    proc = tsr("notebook", "import", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"tessera: warning: {path}: 2 code cells of python code imported as markdown (shown, never run)",
        f"tessera: imported {path} as notebook analysis (2 cells)"]
    conn = connect()
    assert [c["type"] for c in repository.load(conn, "analysis").cells()] == ["markdown", "markdown"]
    run = tsr("notebook", "run", "analysis")
    assert run.returncode == 0 and run.stdout == "", run.stderr


def test_cli_import_errors(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("```cypher {id=c1}\nMATCH\n")
    proc = tsr("notebook", "import", str(bad))
    assert proc.returncode == 2 and f"{bad}:1: the fenced block opened here is not closed" in proc.stderr
    other = tmp_path / "x.txt"
    other.write_text("")
    proc = tsr("notebook", "import", str(other))
    assert proc.returncode == 2 and "cannot tell the format" in proc.stderr
    assert tsr("notebook", "list").stdout == ""
