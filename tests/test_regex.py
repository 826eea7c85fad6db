"""``=~``: RE2 search in linear time, refusals as one-line errors, Python-re differences."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.core import api
from tessera.core.builtin_kinds import BUILTIN_KINDS
from tessera.core.errors import QueryError
from tessera.core.query.regex import search

TESSERA = str(Path(sys.executable).with_name("tessera"))
CATASTROPHIC = "^(a+)+$"  # exponential for a backtracking engine on "aaa…a!"


class OneKindSource:
    """Pods from a list, and a record of how often the engine listed them."""

    name = "mem"
    writable = False

    def __init__(self, pods: list[dict]):
        self.pods = pods
        self.lists = 0

    def kinds(self):
        return list(BUILTIN_KINDS)

    def list(self, kind, *, namespace=None, name=None, labels=None):
        self.lists += 1
        return [p for p in self.pods if kind.kind == "Pod"]


def pod(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop", "labels": labels}}


def names(query: str, pods: list[dict]) -> list[str]:
    return [r["n"] for r in api.run_query(query, [OneKindSource(pods)]).rows]


def test_catastrophic_pattern_returns_through_the_cli(tmp_path):
    # Python's re never finishes this (2^32 ways to split the a's); RE2 answers at once. The
    # deadline is generous on purpose: the speed figure lives in bench/regex.py, not here.
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {'a' * 32}x, namespace: shop}}\n---\n"
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {'a' * 40}, namespace: shop}}\n"
    )
    query = f'MATCH (p:Pod) WHERE p.metadata.name =~ "{CATASTROPHIC}" RETURN p.metadata.name AS n'
    env = dict(os.environ, NO_COLOR="1", TESSERA_HOME=str(tmp_path / "home"))
    proc = subprocess.run([TESSERA, "query", "-s", str(manifest), "-o", "jsonl", query],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ['{"n":"' + "a" * 40 + '"}']


def test_catastrophic_pattern_against_a_literal_subject():
    assert search(CATASTROPHIC, "a" * 32 + "!") is False
    assert search(CATASTROPHIC, "a" * 32) is True


def test_search_semantics_users_rely_on():
    assert search("nginx", "docker.io/nginx:1.25")  # a search, not a full match
    assert not search("^nginx$", "docker.io/nginx:1.25")
    assert search("(?i)NGINX", "nginx")
    assert search(r"^web-\d+$", "web-12")
    assert search(r"(?P<app>web)-", "web-1")  # Python's named-group spelling works
    assert search("café", "le café")  # non-ASCII text matches as characters
    assert search(r"^.{4}$", "café")


def test_documented_differences_from_python_re():
    # \d and \w are ASCII in RE2 (as in Go and Cyphernetes); \p{..} classes are the Unicode ones.
    assert not search(r"\d", "٣") and search(r"\p{N}", "٣")
    assert not search(r"^\w+$", "café") and search(r"^\p{L}+$", "café")
    # $ matches only at the very end of the text (Python's also matches before a final newline).
    assert not search("a$", "a\n") and search("(?m)a$", "a\n")


@pytest.mark.parametrize(
    ("pattern", "reason", "hint"),
    [
        ("(a", "missing ) '(a'", "RE2 syntax"),
        ("(?=web)", "invalid perl operator '(?='", "no lookahead or lookbehind"),
        ("(?<!x)y", "invalid perl operator '(?<!'", "no lookahead or lookbehind"),
        (r"(a)\\1", r"invalid escape sequence '\1'", "no backreferences"),
        (r"web\\Z", r"invalid escape sequence '\Z'", r"\z"),
        ("a++", "bad repetition operator '++'", "no possessive quantifiers"),
        ("x{1001}", "invalid repetition size '{1001}'", "RE2 syntax"),
    ],
)
def test_refused_pattern_is_one_line_before_anything_is_listed(pattern, reason, hint):
    src = OneKindSource([pod("web")])
    with pytest.raises(QueryError) as info:
        api.run_query(f'MATCH (p:Pod)\nWHERE p.metadata.name =~ "{pattern}" RETURN p', [src])
    line = info.value.one_line()
    assert f": {reason} at line 2, column 26" in line, line
    assert hint in info.value.hint
    assert "\n" not in line
    assert src.lists == 0  # checked before the source is asked for anything


def test_pattern_from_data_is_checked_when_evaluated():
    # A pattern read from a resource cannot be checked up front; it fails the same way, once.
    pods = [pod("web", pattern="(unclosed")]
    with pytest.raises(QueryError, match=r"invalid regular expression '\(unclosed': missing \)"):
        names("MATCH (p:Pod) WHERE p.metadata.name =~ p.metadata.labels.pattern RETURN p.metadata.name AS n", pods)


def test_control_characters_in_a_bad_pattern_stay_on_one_line():
    with pytest.raises(QueryError) as info:
        names('MATCH (p:Pod) WHERE p.metadata.name =~ "a\\nb(" RETURN p.metadata.name AS n', [pod("web")])
    assert "\n" not in info.value.one_line()
    assert r"'a\nb('" in info.value.one_line()


def test_lone_surrogates_neither_crash_nor_hide_rows():
    with pytest.raises(QueryError, match="lone surrogate"):
        names('MATCH (p:Pod) WHERE p.metadata.name =~ "\\ud800" RETURN p.metadata.name AS n', [pod("web")])
    # resource data may hold one (JSON allows "\ud800"); it is matched as U+FFFD
    assert names('MATCH (p:Pod) WHERE p.metadata.name =~ "^web" RETURN p.metadata.name AS n',
                 [pod("web\ud800")]) == ["web\ud800"]


def test_invalid_pattern_through_the_cli_is_one_stderr_line(tmp_path):
    # RE2 logs bad patterns to stderr by itself unless told not to; the user must see one line.
    manifest = tmp_path / "pods.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\n")
    env = dict(os.environ, NO_COLOR="1", TESSERA_HOME=str(tmp_path / "home"))
    proc = subprocess.run([TESSERA, "query", "-s", str(manifest), 'MATCH (p:Pod) WHERE p.metadata.name =~ "(?=w)" RETURN p'],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tessera: invalid regular expression"), proc.stderr
