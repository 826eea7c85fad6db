"""tessera ingest: splitting, the walk, dedupe, removals, skips, JSONL in and out (docs/knowledge.md "Ingesting")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge_helpers import NOTES_DOCUMENTS, consistency_problems, index_snapshot, kep_corpus, write_notes
from tessera.core.errors import InputError, UsageError
from tessera.core.knowledge import index
from tessera.core.knowledge.ingest import ingest_jsonl, ingest_paths
from tessera.core.knowledge.splitting import MAX_CHUNK_CHARS, split
from tessera.core.store.db import connect

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, stdin=None, env=None):
    return subprocess.run([*TSR, *args], capture_output=True, text=True, input=stdin, timeout=300,
                          env={**os.environ, **(env or {})})


def changes(conn):
    return conn.execute("SELECT count(*) FROM knowledge_changes").fetchone()[0]


def chunk_rows(conn, path):
    return conn.execute("SELECT c.heading, c.start_line, c.end_line, c.text FROM knowledge_chunks c JOIN knowledge_documents d"
                        " ON d.id = c.document_id WHERE d.path = ? ORDER BY c.ordinal", (path,)).fetchall()


# -- splitting -----------------------------------------------------------------------------------


def test_markdown_is_split_by_atx_and_setext_headings_with_heading_paths():
    text = ("Intro before any heading.\n\n# Guide\nGuide text.\n\n## Steps\nstep one\n\nSetext two\n----------\n"
            "under setext\n\n### Deep\ndeep\n\nOther\n=====\nlast\n")
    parts = split("g.md", text)
    assert [(c.heading, c.start_line, c.end_line) for c in parts.chunks] == [
        ("", 1, 1), ("Guide", 3, 4), ("Guide > Steps", 6, 7), ("Guide > Setext two", 9, 11),
        ("Guide > Setext two > Deep", 13, 14), ("Other", 16, 18)]
    assert parts.chunks[1].text == "# Guide\nGuide text."
    assert parts.title == "Guide"


def test_a_hash_inside_a_fenced_block_is_not_a_heading_and_the_block_is_never_cut():
    fence = "```sh\n# a comment\n\n" + "\n\n".join(f"echo {i} " + "x" * 100 for i in range(60)) + "\n```\n"
    parts = split("f.md", "# Top\n\n" + fence + "\n## After\ntext\n")
    assert [c.heading for c in parts.chunks] == ["Top", "Top > After"]
    assert "```sh\n# a comment" in parts.chunks[0].text and parts.chunks[0].text.endswith("```")
    assert len(parts.chunks[0].text) > MAX_CHUNK_CHARS  # whole, though over the cap


def test_a_long_section_is_cut_at_paragraphs_and_an_empty_section_is_no_chunk():
    paragraphs = "\n\n".join(f"paragraph {i} " + "word " * 150 for i in range(12))
    parts = split("l.md", f"# Long\n{paragraphs}\n\n## Empty\n\n## Full\nbody\n")
    long_parts = [c for c in parts.chunks if c.heading == "Long"]
    assert len(long_parts) > 1
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in long_parts)
    assert all(c.text.split("\n")[-1].rstrip().endswith("word") for c in long_parts)  # cut between paragraphs
    assert "Long > Empty" not in [c.heading for c in parts.chunks]
    assert [c.heading for c in parts.chunks][-1] == "Long > Full"
    assert [c.ordinal for c in parts.chunks] == list(range(len(parts.chunks)))


def test_a_file_of_only_headings_is_one_chunk_and_one_of_only_comments_none():
    assert [(c.heading, c.text) for c in split("h.md", "# Only\n\n## Headings\n").chunks] == [("Only", "# Only\n\n## Headings")]
    assert split("c.md", "<!-- nothing rendered -->\n").chunks == []


def test_hostile_markdown_splits_in_linear_time():
    """Text made of link openers ("[[[[...", "[a](" repeated) made the link patterns scan to the
    end from every bracket: hours for these 200 KB. A generous deadline (not a speed figure):
    done in a fraction of a second now, it cannot pass while the scan is quadratic."""
    script = ("from tessera.core.knowledge.splitting import split\n"
              "for text in ('[' * 200000, '[a](' * 50000, '[[' * 100000, '[a](b(' * 40000, '[a\\n' * 60000):\n"
              "    split('x.md', text)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    links = split("a.md", "See [w](https://en.wikipedia.org/wiki/Foo_(bar)) and ![i](img.png \"t\")\n").links
    assert links == ["https://en.wikipedia.org/wiki/Foo_(bar)", "img.png"]


def test_front_matter_tags_links_and_title_precedence():
    text = ("---\ntitle: From front matter\ntags: [a, b]\nreview: 2026-01-02\n---\n# The H1\n"
            "See [docs](https://d.example/x \"t\"), <https://auto.example/y>, [[Wiki Page|label]] and [ref].\n"
            "Words #inline-tag and #b, not a#tag, not #123.\n\n[ref]: https://ref.example/z\n\n"
            "```\n#notatag [nolink](https://code.example)\n```\n")
    parts = split("t.md", text)
    assert parts.title == "From front matter"
    assert parts.front_matter == {"title": "From front matter", "tags": ["a", "b"], "review": "2026-01-02"}
    assert parts.tags == ["a", "b", "inline-tag"]
    assert parts.links == ["https://d.example/x", "https://auto.example/y", "Wiki Page", "https://ref.example/z"]
    assert parts.chunks[0].start_line == 6  # lines count in the file, front matter included
    assert split("x/no-h1.md", "## Only h2\ntext\n").title == "no-h1"
    assert split("x/h1.md", "intro\n\n# First\n\n# Second\n").title == "First"


def test_bad_front_matter_is_a_warning_and_the_file_still_splits():
    parts = split("bad.md", "---\ntitle: [unclosed\n---\n# Heading\ntext\n")
    assert parts.front_matter == {}
    assert len(parts.warnings) == 1 and "bad.md front matter" in parts.warnings[0] and "invalid YAML" in parts.warnings[0]
    assert parts.title == "Heading" and [c.heading for c in parts.chunks] == ["Heading"]


def test_python_is_split_by_top_level_definitions_with_decorators_and_docstrings():
    text = ('"""Module doc."""\nimport os\n\nLIMIT = 3\n\n\n# why it exists\n@cache\ndef load():\n    """Load."""\n'
            '    return 1\n\n\nclass Store:\n    """A store."""\n\n    def get(self):\n        return 2\n\n\n'
            'if __name__ == "__main__":\n    load()\n')
    parts = split("pkg/mod.py", text)
    assert parts.kind == "code" and parts.language == "python" and parts.title == "mod.py"
    assert [(c.heading, c.start_line, c.end_line) for c in parts.chunks] == [
        ("", 1, 4), ("def load", 7, 11), ("class Store", 14, 18), ("", 21, 22)]
    assert parts.chunks[1].text.startswith("# why it exists\n@cache\ndef load():\n    \"\"\"Load.\"\"\"")
    assert "def get(self)" in parts.chunks[2].text  # a class stays whole, blank lines and all


def test_other_code_by_blocks_with_definition_headings_and_broken_python_falls_back():
    go = "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(1)\n\n\treturn\n}\n\ntype T struct {\n}\n"
    assert [(c.heading, c.start_line, c.end_line) for c in split("m.go", go).chunks] == [
        ("", 1, 3), ("func main()", 5, 9), ("type T struct", 11, 12)]
    broken = split("b.py", "def ok():\n    return 1\n\ndef broken(:\n    pass\n")
    assert [c.heading for c in broken.chunks] == ["def ok():", "def broken(:"]
    kep = split("keps/sig-x/1-a/kep.yaml", "title: A\nkep-number: 1\nauthors:\n  - \"@x\"\n\nstage: beta\n")
    assert kep.kind == "code" and kep.language == "yaml"
    assert [(c.heading, c.start_line, c.end_line) for c in kep.chunks] == [("", 1, 6)]  # metadata read whole
    manifests = split("k8s/app.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  namespace: shop\n  name: web\n"
                                      "spec: {}\n---\nkind: Service\nmetadata:\n  name: api\n")
    assert [(c.heading, c.start_line, c.end_line) for c in manifests.chunks] == [("Deployment/web", 1, 6), ("Service/api", 8, 10)]


def test_html_comments_are_not_text_nor_headings_nor_fences():
    parts = split("k.md", "<!-- template notes\n``` an unclosed fence in a comment\n# not a heading\n-->\n# KEP-1: Real\n\n"
                          "## Summary\ntext <!-- inline --> kept\n\n## Empty\n<!-- only a comment -->\n\n## Code\n"
                          "```\n<!-- in code it stays -->\n```\n")
    assert [(c.heading, c.start_line) for c in parts.chunks] == [("KEP-1: Real > Summary", 7), ("KEP-1: Real > Code", 13)]
    assert parts.chunks[0].text == "## Summary\ntext  kept" and "<!-- in code it stays -->" in parts.chunks[1].text
    assert parts.title == "KEP-1: Real"


def test_plain_text_paragraphs_merge_up_to_the_cap():
    small = split("n.txt", "one\n\ntwo\n\nthree\n")
    assert [(c.text, c.start_line, c.end_line) for c in small.chunks] == [("one\n\ntwo\n\nthree", 1, 5)]
    big = split("n.txt", "\n\n".join("p" + "x" * 1500 for _ in range(7)))
    assert len(big.chunks) == 4 and all(len(c.text) <= MAX_CHUNK_CHARS for c in big.chunks)
    assert split("empty.txt", "\n  \n").chunks == []


# -- ingesting files ------------------------------------------------------------------------------


def test_ingest_notes_tree_respects_gitignore_hidden_and_binary(tmp_path):
    root = write_notes(tmp_path)
    conn = connect()
    seen = []
    summary = ingest_paths(conn, [str(root)], on_change=seen.append)
    assert tuple(sorted(index.stored_hashes(conn, str(root.resolve())))) == NOTES_DOCUMENTS
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (5, 0, 0, 0)
    assert summary.skipped == {"binary": 1}
    assert summary.scanned == 6 and summary.chunks_written == conn.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0]
    assert [c["path"] for c in seen] == list(NOTES_DOCUMENTS) and all(c["op"] == "upsert" for c in seen)
    web = index.read_document(conn, str(root.resolve()), "runbooks/web.md")
    assert web.title == "Web frontend runbook" and web.tags == ["web", "oncall", "frontend"] and web.kind == "markdown"
    assert web.links == ["https://grafana.example.com/d/web", "api"]
    assert [c.heading for c in web.chunks] == ["Web frontend", "Web frontend > Symptoms", "Web frontend > Diagnosis",
                                               "Web frontend > Diagnosis > Logs", "Web frontend > Remediation"]
    assert consistency_problems(conn) == []
    assert summary.line().startswith(f"ingested {root}: 5 added, 0 updated, 0 unchanged, 0 removed; skipped 1 (1 binary) in ")


def test_nested_gitignore_applies_below_its_folder_and_can_negate(tmp_path):
    root = tmp_path / "r"
    for rel, text in {".gitignore": "*.tmp\n", "a/.gitignore": "!keep.tmp\nsecret/\n", "a/keep.tmp": "kept\n",
                      "a/drop.tmp": "dropped\n", "b/keep.tmp": "dropped: the negation is a/'s\n",
                      "a/secret/x.md": "# X\nno\n", "b/secret/y.md": "# Y\nyes\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    conn = connect()
    ingest_paths(conn, [str(root)])
    assert sorted(index.stored_hashes(conn, str(root))) == ["a/keep.tmp", "b/secret/y.md"]


def test_reingesting_unchanged_files_writes_nothing_even_with_a_new_mtime(tmp_path):
    from tessera.core import events

    root = write_notes(tmp_path)
    conn = connect()
    ingest_paths(conn, [str(root)])
    before, log_before = changes(conn), events.last_position(conn)
    os.utime(root / "runbooks" / "web.md", (1, 1))
    summary = ingest_paths(conn, [str(root)])
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 0, 5, 0)
    assert changes(conn) == before and events.last_position(conn) == log_before  # no change row, no event


def test_reindex_rewrites_unchanged_files_with_what_splitting_and_mentions_make_now(tmp_path, monkeypatch):
    from tessera.core.knowledge import mentions

    root = write_notes(tmp_path)
    conn = connect()
    ingest_paths(conn, [str(root)])
    fake = {"kind": "Deployment", "name": "upgraded", "namespace": None, "form": "test"}
    monkeypatch.setattr(mentions, "extract", lambda text: [fake])  # an upgraded extractor
    assert ingest_paths(conn, [str(root)]).unchanged == 5  # content unchanged: kept as stored
    assert index.read_document(conn, str(root), "runbooks/web.md").chunks[0].mentions != [fake]
    before = changes(conn)
    seen = []
    summary = ingest_paths(conn, [str(root)], reindex=True, on_change=seen.append)
    assert (summary.updated, summary.unchanged, summary.added) == (5, 0, 0)
    assert all(c.mentions == [fake] for c in index.read_document(conn, str(root), "runbooks/web.md").chunks)
    assert changes(conn) == before + 10 and [c["op"] for c in seen] == ["upsert"] * 5  # a delete and an upsert each
    assert consistency_problems(conn) == []


def test_a_run_that_changed_something_appends_one_event_with_its_summary(tmp_path):
    from tessera.core import events

    root = write_notes(tmp_path)
    conn = connect()
    ingest_paths(conn, [str(root)])
    (root / "runbooks" / "web.md").write_text("# Web\n\nnew text\n")
    ingest_paths(conn, [str(root)])
    ingest_paths(conn, [str(root)])  # nothing changed: no event
    runs = [e for e in events.read(conn) if e.subject.startswith("knowledge.ingest.")]
    assert [e.subject for e in runs] == ["knowledge.ingest.done"] * 2
    assert runs[0].data["added"] == 5 and runs[1].data["updated"] == 1 and runs[1].data["roots"] == [str(root)]


def test_changed_file_is_updated_and_removed_file_removed_only_under_its_root(tmp_path):
    root = write_notes(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.md").write_text("# Keep\n\nother root\n")
    conn = connect()
    ingest_paths(conn, [str(root), str(other)])
    (root / "notes" / "crashloop.txt").write_text("Changed note about OOMKilled.\n")
    (root / "tools" / "check.sh").unlink()
    seen = []
    summary = ingest_paths(conn, [str(root)], on_change=seen.append)
    assert (summary.added, summary.updated, summary.removed) == (0, 1, 1)
    assert {"op": "delete", "root": str(root), "path": "tools/check.sh"} in seen
    assert "tools/check.sh" not in index.stored_hashes(conn, str(root))
    assert list(index.stored_hashes(conn, str(other))) == ["keep.md"]
    assert [t for *_, t in chunk_rows(conn, "notes/crashloop.txt")] == ["Changed note about OOMKilled."]
    assert consistency_problems(conn) == []


def test_a_file_path_ingests_that_file_without_removing_its_siblings(tmp_path):
    root = write_notes(tmp_path)
    conn = connect()
    single = ingest_paths(conn, [str(root / "runbooks" / "api.md")])
    assert single.added == 1 and list(index.stored_hashes(conn, str(root / "runbooks"))) == ["api.md"]
    ingest_paths(conn, [str(root)])
    (root / "runbooks" / "api.md").write_text("# API\n\nedited\n")
    again = ingest_paths(conn, [str(root / "runbooks" / "api.md")])
    # the file belongs to the ingested root now: its document there is updated, nothing else moves
    assert (again.added, again.updated, again.removed) == (0, 1, 0)
    assert len(index.stored_hashes(conn, str(root))) == 5


def test_a_folder_inside_an_ingested_root_is_ingested_as_part_of_it(tmp_path):
    root = write_notes(tmp_path)
    conn = connect()
    ingest_paths(conn, [str(root)])
    (root / "runbooks" / "web.md").unlink()
    (root / "runbooks" / "db.md").write_text("# DB\n\nPostgres failover.\n")
    (root / "tools" / "check.sh").unlink()  # outside the folder ingested next: stays stored
    summary = ingest_paths(conn, [str(root / "runbooks")])
    assert (summary.added, summary.removed, summary.unchanged) == (1, 1, 1)
    assert [r["root"] for r in index.roots(conn)] == [str(root)]
    assert sorted(index.stored_hashes(conn, str(root))) == [
        "notes/crashloop.txt", "runbooks/api.md", "runbooks/db.md", "tools/check.sh", "tools/restart.py"]
    # a file the root's .gitignore leaves out is skipped when named, as `git add` refuses it
    named = ingest_paths(conn, [str(root / "debug.log"), str(root / ".private" / "secret.md")])
    assert named.skipped == {"ignored": 2} and named.added == 0
    assert "debug.log" not in index.stored_hashes(conn, str(root)) and len(index.roots(conn)) == 1


def test_symlinked_root_is_canonical_and_root_given_kept(tmp_path):
    root = write_notes(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(root)
    conn = connect()
    ingest_paths(conn, [str(link)])
    assert [(r["root"], r["root_given"]) for r in index.roots(conn)] == [(str(root), str(link))]


def test_oversized_is_skipped_before_reading_and_fifo_and_dangling_link_are_unreadable(tmp_path, monkeypatch):
    root = tmp_path / "r"
    root.mkdir()
    (root / "ok.md").write_text("# Ok\n\nfine\n")
    with open(root / "huge.txt", "wb") as f:
        f.truncate(64 * 1024**3)  # sparse: reading it whole would take minutes and 64 GiB
    (root / "big.txt").write_text("x" * 5000)
    os.mkfifo(root / "pipe.md")  # opening it for reading would block
    (root / "gone.md").symlink_to(root / "nowhere.md")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (root / "nul.txt").write_bytes(b"text\x00more")
    monkeypatch.setenv("TESSERA_KNOWLEDGE_MAX_FILE_BYTES", "4KiB")
    summary = ingest_paths(connect(), [str(root)])
    assert summary.skipped == {"oversized": 2, "unreadable": 2, "binary": 2}
    assert summary.added == 1
    assert "skipped 6 (2 binary, 2 oversized, 2 unreadable)" in summary.line()


def test_names_that_are_not_utf8_are_skipped_or_refused(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "ok.md").write_text("# Ok\n\nfine\n")
    with open(os.path.join(os.fsencode(root), b"bad\xff.md"), "w") as f:
        f.write("# Bad name\n")
    os.makedirs(os.path.join(os.fsencode(root), b"dir\xfe"))
    with open(os.path.join(os.fsencode(root), b"dir\xfe", b"in.md"), "w") as f:
        f.write("# In\n")
    conn = connect()
    summary = ingest_paths(conn, [str(root)])
    assert (summary.added, summary.skipped) == (1, {"unreadable": 2})
    bad_root = os.fsdecode(os.path.join(os.fsencode(root), b"dir\xfe"))
    with pytest.raises(UsageError, match=r"dir\\xfe': its path is not UTF-8"):
        ingest_paths(conn, [bad_root])
    assert consistency_problems(conn) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_unreadable(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "locked.md").write_text("# Locked\n")
    (root / "locked.md").chmod(0)
    assert ingest_paths(connect(), [str(root)]).skipped == {"unreadable": 1}


def test_a_missing_path_is_a_usage_error_and_nothing_is_written(tmp_path):
    root = write_notes(tmp_path)
    conn = connect()
    with pytest.raises(UsageError, match="cannot ingest '.*nope'"):
        ingest_paths(conn, [str(root), str(tmp_path / "nope")])
    assert changes(conn) == 0


def test_a_file_now_binary_is_removed_but_a_passing_unreadable_one_is_kept(tmp_path, monkeypatch):
    root = write_notes(tmp_path)
    conn = connect()
    ingest_paths(conn, [str(root)])
    (root / "notes" / "crashloop.txt").write_bytes(b"\x00\x01binary now")
    summary = ingest_paths(conn, [str(root)])
    assert summary.removed == 1 and "notes/crashloop.txt" not in index.stored_hashes(conn, str(root))
    from tessera.core.knowledge import ingest as ingesting

    monkeypatch.setattr(ingesting, "_read", lambda path, limit: "unreadable")
    kept = ingest_paths(conn, [str(root)])
    assert kept.skipped == {"binary": 1, "unreadable": 5} and kept.removed == 0
    assert len(index.stored_hashes(conn, str(root))) == 4


# -- JSONL in ---------------------------------------------------------------------------------------


def test_jsonl_documents_are_split_as_files_of_their_name():
    conn = connect()
    lines = [json.dumps({"path": "a/guide.md", "text": "# Guide\n\n## Part\nbody\n", "tags": ["x"]}),
             json.dumps({"path": "n.txt", "text": "plain\n", "root": "/srv/notes", "mtime": "2026-01-01T00:00:00.000Z"}),
             ""]
    summary = ingest_jsonl(conn, lines)
    assert (summary.added, summary.roots) == (2, ["-", "/srv/notes"])
    guide = index.read_document(conn, "-", "a/guide.md")
    assert guide.kind == "markdown" and guide.tags == ["x"] and [c.heading for c in guide.chunks] == ["Guide > Part"]
    assert index.read_document(conn, "/srv/notes", "n.txt").mtime == "2026-01-01T00:00:00.000Z"
    assert ingest_jsonl(conn, lines).unchanged == 2 and consistency_problems(conn) == []


def test_a_bad_jsonl_line_names_its_number_and_keeps_the_lines_before_it():
    conn = connect()
    lines = [json.dumps({"path": "ok.md", "text": "# Ok\n\nfine\n"}), "{not json", json.dumps({"path": "after.md", "text": "x"})]
    with pytest.raises(InputError, match=r"^stdin:2: not JSON"):
        ingest_jsonl(conn, lines)
    assert list(index.stored_hashes(conn, "-")) == ["ok.md"]
    for bad, message in ((json.dumps({"path": "../x.md", "text": "x"}), "relative"),
                         (json.dumps({"path": "x.md"}), "\"text\" must be a string"),
                         (json.dumps(["a"]), "not a JSON object"),
                         (json.dumps({"op": "move", "path": "x"}), "\"op\" must be"),
                         (json.dumps({"op": "upsert", "root": "/r", "path": "x.md", "kind": "markdown", "title": "",
                                      "size": 1, "mtime": "t", "hash": "h",
                                      "chunks": [{"ordinal": 0, "start_line": 1, "end_line": 1, "text": "a"},
                                                 {"ordinal": 0, "start_line": 2, "end_line": 2, "text": "b"}]}),
                          "same ordinal")):
        with pytest.raises(InputError, match=message):
            ingest_jsonl(conn, [bad])
    assert list(index.stored_hashes(conn, "-")) == ["ok.md"] and consistency_problems(conn) == []


def test_jsonl_bytes_that_are_not_text_and_overlong_lines_are_refused_by_line():
    conn = connect()
    good = json.dumps({"path": "ok.md", "text": "# Ok\n\nfine\n"}).encode() + b"\n"
    with pytest.raises(InputError, match=r"^stdin:2: not UTF-8 \(byte 30\)"):
        ingest_jsonl(conn, [good, b'{"path": "a.md", "text": "caf\xe9"}\n'])
    with pytest.raises(InputError, match=r"^stdin:1: holds a lone surrogate \(\\ud800\)"):
        ingest_jsonl(conn, [b'{"path": "b.md", "text": "\\ud800"}\n'])
    with pytest.raises(InputError, match=r"^stdin:1: the line is over the 100-byte input limit"):
        ingest_jsonl(conn, [b"x" * 101], max_line_bytes=100)
    assert list(index.stored_hashes(conn, "-")) == ["ok.md"] and consistency_problems(conn) == []


def test_cli_stdin_line_over_the_input_limit_is_refused_without_reading_it_whole(tmp_path):
    line = json.dumps({"path": "big.md", "text": "x" * 5000})
    proc = tessera("ingest", "-", stdin=json.dumps({"path": "a.md", "text": "# A\nx\n"}) + "\n" + line + "\n",
                   env={"TESSERA_MAX_INPUT_BYTES": "4KiB"})
    assert proc.returncode == 2 and proc.stderr.startswith("tessera: stdin:2: the line is over the 4,096-byte input limit")
    assert list(index.stored_hashes(connect(), "-")) == ["a.md"]


def test_jsonl_delete_lines_remove():
    conn = connect()
    ingest_jsonl(conn, [json.dumps({"path": "a.md", "text": "# A\nx\n"})])
    summary = ingest_jsonl(conn, [json.dumps({"op": "delete", "root": "-", "path": "a.md"})])
    assert summary.removed == 1 and index.stored_hashes(conn, "-") == {}


# -- the command ------------------------------------------------------------------------------------


def test_cli_summary_on_stderr_nothing_on_stdout_and_json_summary(tmp_path):
    root = write_notes(tmp_path)
    first = tessera("ingest", str(root))
    assert first.returncode == 0 and first.stdout == ""
    assert first.stderr.startswith(f"tessera: ingested {root}: 5 added, 0 updated, 0 unchanged, 0 removed; "
                                   "skipped 1 (1 binary) in ") and first.stderr.count("\n") == 1
    again = tessera("ingest", str(root), "-o", "json")
    assert json.loads(again.stdout) | {"seconds": 0} == {
        "roots": [str(root)], "scanned": 6, "added": 0, "updated": 0, "unchanged": 5, "removed": 0,
        "skipped": {"binary": 1}, "chunks_written": 0, "seconds": 0}


def test_cli_missing_path_exits_2_with_one_line(tmp_path):
    proc = tessera("ingest", str(tmp_path / "no\x1bpe"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert not (Path(os.environ["TESSERA_HOME"]) / "tessera.db").exists()  # refused before the store is made
    assert proc.stderr == f"tessera: cannot ingest '{tmp_path}/no\\x1bpe': No such file or directory (give an existing file or folder; nothing was ingested)\n"


def test_emit_piped_into_ingest_stdin_reproduces_the_index(tmp_path):
    root = write_notes(tmp_path)
    emitted = tessera("ingest", "--emit", str(root))
    assert emitted.returncode == 0, emitted.stderr
    lines = emitted.stdout.splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["op"] == "upsert" and "embedding" not in lines[0]
    (root / "tools" / "check.sh").unlink()
    removal = tessera("ingest", "--emit", str(root))
    assert json.loads(removal.stdout) == {"op": "delete", "root": str(root), "path": "tools/check.sh"}
    other = {"TESSERA_HOME": str(tmp_path / "other-home")}
    replay = tessera("ingest", "-", stdin=emitted.stdout + removal.stdout, env=other)
    assert replay.returncode == 0, replay.stderr
    assert "5 added, 0 updated, 0 unchanged, 1 removed" in replay.stderr
    original = connect()
    copy = connect(tmp_path / "other-home" / "tessera.db")
    assert index_snapshot(copy) == index_snapshot(original) and consistency_problems(copy) == []


def test_cli_bad_stdin_line_exits_2_naming_the_line():
    proc = tessera("ingest", "-", stdin=json.dumps({"path": "a.md", "text": "# A\nx\n"}) + "\n[1]\n")
    assert proc.returncode == 2
    assert proc.stderr.startswith("tessera: stdin:2: not a JSON object (") and proc.stderr.count("\n") == 1
    assert list(index.stored_hashes(connect(), "-")) == ["a.md"]


# -- the KEP corpus ---------------------------------------------------------------------------------


def test_kep_corpus_sig_folder_splits_real_proposals():
    corpus = kep_corpus()
    folder = corpus / "keps" / "sig-apps"
    conn = connect()
    summary = ingest_paths(conn, [str(folder)])
    assert summary.added > 20 and set(summary.skipped) <= {"binary"}
    root = str(folder.resolve())
    docs = {d.path: d for d in index.documents(conn, root=root)}
    readmes = [d for p, d in docs.items() if p.endswith("/README.md")]
    assert len(readmes) > 20
    motivation = [(d, c) for d in readmes for c in d.chunks if c.heading.endswith(" > Motivation")]
    assert len(motivation) >= len(readmes) // 2
    # one KEP checked against its file: the first H1 is the title, "## Motivation" its own chunk
    pvcs = docs["1847-autoremove-statefulset-pvcs/README.md"]
    lines = (folder / pvcs.path).read_text().split("\n")
    h1 = next(line[2:].strip() for line in lines if line.startswith("# "))
    assert pvcs.title == h1 == "KEP-1847: Auto delete PVCs created by StatefulSet"
    chunk = next(c for c in pvcs.chunks if c.heading == f"{h1} > Motivation")
    assert lines[chunk.start_line - 1] == "## Motivation" and chunk.text.startswith("## Motivation\n")
    assert not any("<!--" in c.text for c in pvcs.chunks)  # the template's comments are not text
    assert [c.heading for c in pvcs.chunks].count(f"{h1} > Motivation") == 1
    assert all(len(c.text) <= MAX_CHUNK_CHARS or "```" in c.text or "\n" not in c.text.strip()
               for d in readmes for c in d.chunks)
    yamls = [d for p, d in docs.items() if p.endswith("/kep.yaml")]
    assert yamls and all(d.kind == "code" and d.language == "yaml" for d in yamls)
    assert any("kep-number" in c.text for d in yamls for c in d.chunks)
    assert consistency_problems(conn) == []


def test_embed_gives_wordllama_own_vectors_and_every_chunk_gets_one(tmp_path):
    import numpy as np

    from tessera.core.knowledge import embedding

    texts = ["my container keeps restarting", "", "CrashLoopBackOff " * 400, "kubectl -n shop get pod web"]
    mine = embedding.embed(texts)
    with np.errstate(invalid="ignore"):
        theirs = np.nan_to_num(np.asarray(embedding.model().embed(texts, norm=True), dtype=np.float32))
    assert mine.shape == (4, embedding.DIMENSIONS) and np.abs(mine - theirs).max() < 1e-5
    assert not mine[1].any()
    root = write_notes(tmp_path)
    conn = connect()
    ingest_paths(conn, [str(root)])
    doc = index.read_document(conn, str(root), "runbooks/web.md", embeddings=True)
    stored = embedding.from_blobs([c.embedding for c in doc.chunks])
    from tessera.core.knowledge.ingest import embedding_text

    assert np.abs(stored - embedding.embed([embedding_text(doc, c) for c in doc.chunks])).max() < 1e-6


def test_cli_draws_a_progress_bar_when_stderr_is_a_terminal(tmp_path):
    import pty
    import threading

    root = write_notes(tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*TSR, "ingest", str(root)], stdout=subprocess.PIPE, stderr=follower,
                            env={**os.environ, "COLUMNS": "120"})
    os.close(follower)  # the child holds its copy: reading ends (EIO) once it exits
    chunks: list[bytes] = []

    def read_terminal():
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=300)
        reader.join(60)
    finally:
        os.close(leader)
    assert proc.returncode == 0 and stdout == b""
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "ingesting" in text and "/6" in text  # the bar: files done of 6
    assert "tessera: ingested " in text and "5 added" in text


def test_loading_the_model_leaves_logging_alone():
    """wordllama's import calls logging.basicConfig(level=INFO): every library's INFO records
    (watchfiles' "2 changes detected" in the middle of --watch's JSON lines) went to stderr."""
    script = ("import logging, sys\n"
              "from tessera.core.knowledge import embedding\n"
              "embedding.embed(['x'])\n"
              "logging.getLogger('watchfiles.main').info('2 changes detected')\n"
              "print(len(logging.getLogger().handlers), logging.getLogger().level)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == "0 30\n"
