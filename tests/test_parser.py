"""The parser against the Cyphernetes corpus, hand-written cases, and hypothesis fuzzing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.core.errors import ParseError, QueryError
from tessera.core.query import ast
from tessera.core.query.lexer import MAX_INTEGER_DIGITS
from tessera.core.query.parser import MAX_NESTING, parse

LANGUAGE_DOC = Path(__file__).resolve().parents[1] / "docs" / "language.md"
TESSERA = str(Path(sys.executable).with_name("tessera"))


def _corpus(conformance_dir: Path) -> list[dict]:
    with open(conformance_dir / "cyphernetes-queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _deliberately_accepted() -> set[str]:
    """Sources listed in docs/language.md's "Deliberately accepted" section."""
    text = LANGUAGE_DOC.read_text(encoding="utf-8")
    section = text.split("## Deliberately accepted", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([^`]+:\d+)`", section))


def test_every_ok_query_parses(conformance_dir):
    failures = []
    rows = [r for r in _corpus(conformance_dir) if r["expect"] == "ok"]
    assert len(rows) == 287
    for row in rows:
        try:
            parse(row["query"])
        except ParseError as err:
            failures.append(f"{row['source']}: {err.one_line()}")
    assert failures == []


def test_every_error_query_fails_or_is_documented(conformance_dir):
    accepted_doc = _deliberately_accepted()
    rows = [r for r in _corpus(conformance_dir) if r["expect"] == "error"]
    assert len(rows) == 60
    undocumented = []
    used = set()
    for row in rows:
        try:
            parse(row["query"])
        except ParseError as err:
            line = err.one_line()
            assert re.match(r"parse error at line \d+, column \d+: ", line), line
            assert "^" in err.caret()
            continue
        if row["source"] in accepted_doc:
            used.add(row["source"])
        else:
            undocumented.append(row["source"])
    assert undocumented == []
    # The doc lists nothing that actually fails (it would be stale).
    assert accepted_doc == used


def test_parse_error_shape():
    with pytest.raises(ParseError) as info:
        parse("MATCH (p:Pod)\nWHERE p.metadata.name = \nRETURN p")
    err = info.value
    assert (err.line, err.column) == (3, 1)
    assert err.one_line() == 'parse error at line 3, column 1: expected value, got "RETURN"'
    assert err.caret() == "RETURN p\n^"


def test_unclosed_node_and_eof():
    with pytest.raises(ParseError) as info:
        parse("MATCH (p:Pod")
    assert info.value.one_line() == "parse error at line 1, column 13: expected ) or {, got end of query"


@pytest.mark.parametrize("text", ["MATCH (p:Pod) RETURN", "MATCH (p:Pod) WHERE p.a = ", "MATCH (p:Pod)-", "MATCH",
                                  "MATCH (p:Pod) RETURN p ORDER BY", ""])
def test_the_end_of_the_query_is_named_not_quoted(text):
    with pytest.raises(ParseError) as info:
        parse(text)
    line = info.value.one_line()
    assert line.endswith("got end of query") and '""' not in line, line


def test_a_second_statement_expects_the_end_of_the_query():
    with pytest.raises(ParseError) as info:
        parse("MATCH (a:Pod) RETURN a; MATCH (b:Pod) RETURN b")
    assert info.value.one_line() == (
        'parse error at line 1, column 25: one statement per query: expected end of query, got "MATCH"')


def test_nothing_is_skipped():
    for bad in ["MATCH (p:Pod) RETURN p p", "MATCH (p:Pod) RETURN p ?", "MATCH (p:Pod) RETURN p LIMIT 1 LIMIT 2",
                "MATCH (a) RETURN a; MATCH (b) RETURN b", "MATCH (p:Pod) WHERE p.a = 1 1 RETURN p",
                "MATCH (p:Pod) /* open RETURN p", "MATCH (p:Pod) RETURN \"unterminated"]:
        with pytest.raises(ParseError):
            parse(bad)


def test_extensions():
    q = parse(
        "IN prod, kind-staging MATCH (p:Pod)-[r:OWNS]->(rs:ReplicaSet) "
        "WHERE (p.a = 1 OR p.b STARTS WITH 'x') AND p.c ENDS WITH \"y\" AND p.d IS NOT NULL "
        "AND p.e IN [1, 2] AND NOT (p)->(:Service) "
        "RETURN DISTINCT avg(p.x) AS a, MIN{p.y}, max(p.z), collect(p.metadata.name) AS names "
        "ORDER BY a DESC SKIP 1 LIMIT 2;"
    )
    assert q.contexts == ("prod", "kind-staging")
    assert q.distinct and q.skip == 1 and q.limit == 2
    assert [i.expr.func for i in q.returns] == ["avg", "min", "max", "collect"]
    assert q.match[0].rels[0] == ast.RelPattern("right", "r", "OWNS", None, pos=q.match[0].rels[0].pos)
    where = q.where
    assert isinstance(where, ast.And) and isinstance(where.items[0], ast.Or)
    assert isinstance(where.items[-1], ast.Not) and isinstance(where.items[-1].expr, ast.PatternPredicate)


def test_paths_escapes_and_indexes():
    q = parse(r'MATCH (p:Pod) WHERE p.metadata.labels.app\.kubernetes\.io/name = "x" RETURN p.spec.containers[*].image, p.spec.containers[0].name')
    prop = q.where.left
    assert prop.path == (ast.Key("metadata"), ast.Key("labels"), ast.Key("app.kubernetes.io/name"))
    assert q.returns[0].expr.path[2] == ast.Wildcard()
    assert q.returns[1].expr.path[2] == ast.Index(0)
    assert q.returns[0].text == "p.spec.containers[*].image"


def test_subpattern_rules():
    base = "MATCH (d:Deployment) WHERE {} RETURN d"
    cases = {
        "(x)->(:ReplicaSet)": "pattern must reference exactly one variable from the MATCH clause",
        "(d)->(r:ReplicaSet)->(d)": "found 2",
        "(d:Pod)->(:ReplicaSet)": "reference node cannot have a kind",
        '(d {name: "x"})->(:ReplicaSet)': "reference node cannot have properties",
        "NOT (d)->(e:ReplicaSet)": "node 'e' in WHERE pattern must not specify a variable name",
    }
    for pattern, message in cases.items():
        with pytest.raises(ParseError, match=re.escape(message)):
            parse(base.format(pattern))


def test_mutations_parse():
    q = parse('MATCH (d:Deployment {name: "x"}) SET d.spec.replicas = 3, d.metadata.labels.a = "b" RETURN d')
    assert q.is_mutation and len(q.set) == 2
    assert parse("MATCH (p:Pod) DELETE p").delete == ("p",)
    assert parse('CREATE (d:Deployment {"metadata": {"name": "x"}})').create


# --- fuzzing ----------------------------------------------------------------------------------

_FRAGMENTS = ["MATCH", "(", ")", "p", ":", "Pod", "->", "<-", "-", "[", "]", "{", "}", "WHERE", "RETURN", "=",
              '"x"', "'y'", "1", "2.5", ",", ".", "metadata", "name", "AND", "OR", "NOT", "IS", "NULL", "IN",
              "COUNT", "SUM", "ORDER", "BY", "LIMIT", "SKIP", "AS", "*", ";", "//c\n", "/*", "*/", "\\.", "$",
              "STARTS", "WITH", "SET", "DELETE", "CREATE", "datetime", "duration", "=~", "<>", "\n", " "]


def _outcome(text: str) -> None:
    try:
        parse(text)
    except QueryError as err:
        assert isinstance(err, ParseError)
        err.one_line()
        err.caret()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_fuzz_random_text(text):
    _outcome(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30))
def test_fuzz_token_soup(parts):
    _outcome(" ".join(parts))
    _outcome("".join(parts))


@pytest.fixture(scope="module")
def corpus_queries(conformance_dir):
    return [r["query"] for r in _corpus(conformance_dir)]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_corpus_mutations(corpus_queries, data):
    query = data.draw(st.sampled_from(corpus_queries))
    op = data.draw(st.sampled_from(["delete", "insert", "replace", "truncate", "swap"]))
    i = data.draw(st.integers(0, max(0, len(query) - 1)))
    j = data.draw(st.integers(i, min(len(query), i + 8)))
    piece = data.draw(st.sampled_from(_FRAGMENTS + [data.draw(st.text(max_size=3))]))
    if op == "delete":
        mutated = query[:i] + query[j:]
    elif op == "insert":
        mutated = query[:i] + piece + query[i:]
    elif op == "replace":
        mutated = query[:i] + piece + query[j:]
    elif op == "truncate":
        mutated = query[:i]
    else:
        mutated = query[j:] + query[:i]
    _outcome(mutated)


def test_list_items_are_not_conditions():
    q = parse('MATCH (d:Deployment) WHERE d.metadata.name IN ["web", "idle"], d.spec.replicas > 1 RETURN d')
    assert isinstance(q.where, ast.And) and len(q.where.items) == 2
    assert [i.value for i in q.where.items[0].right.items] == ["web", "idle"]


# --- limits: deep nesting and huge numbers are ParseErrors, never a RecursionError or ValueError

def _nested(kind: str, depth: int) -> str:
    """A query nesting ``kind`` ``depth`` levels deep."""
    if kind == "parentheses":
        return "MATCH (p:Pod) WHERE " + "(" * depth + "p.a = 1" + ")" * depth + " RETURN p"
    if kind == "lists":
        return "MATCH (p:Pod) WHERE p.a IN " + "[" * depth + "1" + "]" * depth + " RETURN p"
    if kind == "maps":  # the node's own {…} is the first level
        return "MATCH (p:Pod " + "{a: " * depth + "1" + "}" * depth + ") RETURN p"
    if kind == "NOT":
        return "MATCH (p:Pod) WHERE " + "NOT " * depth + "p.a = 1 RETURN p"
    if kind == "functions":
        return "MATCH (p:Pod) WHERE p.a = " + "datetime(" * depth + ")" * depth + " RETURN p"
    raise AssertionError(kind)


NESTINGS = ["parentheses", "lists", "maps", "NOT", "functions"]


@pytest.mark.parametrize("kind", NESTINGS)
def test_nesting_up_to_the_limit_parses(kind):
    parse(_nested(kind, MAX_NESTING))


@pytest.mark.parametrize("kind", NESTINGS)
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 123, 5000])
def test_nesting_too_deep_is_a_parse_error_at_the_offending_token(kind, depth):
    text = _nested(kind, depth)
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert err.message.startswith(f"nesting too deep: more than {MAX_NESTING} levels"), err.one_line()
    assert err.line == 1
    # the caret is on the first token one level too deep
    opener = {"parentheses": "(", "lists": "[", "maps": "{", "NOT": "NOT", "functions": "datetime"}[kind]
    assert text[err.offset:].startswith(opener)
    before = text[:err.offset]
    if kind == "NOT":
        depth_there = before.count("NOT")
    else:
        depth_there = sum(before.count(c) for c in "([{") - sum(before.count(c) for c in ")]}")
    if kind == "maps":
        depth_there -= 1  # the node's own ( is not a level: patterns do not nest
    assert depth_there == MAX_NESTING, (depth_there, err.one_line())


def test_parser_limits_through_the_cli_are_typed_errors(tmp_path):
    manifest = tmp_path / "pods.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\n")
    env = dict(os.environ, NO_COLOR="1", TESSERA_HOME=str(tmp_path / "home"))
    cases = [(_nested(kind, depth), "nesting too deep: ")
             for kind, depth in (("parentheses", 123), ("lists", 123), ("maps", 123), ("NOT", 2000))]
    cases.append((f"MATCH (p:Pod) WHERE p.a = {'1' * 5000} RETURN p", "integer too long (5000 digits): "))
    for text, message in cases:
        proc = subprocess.run([TESSERA, "query", "-s", str(manifest), text], capture_output=True, text=True,
                              env=env, timeout=60)
        assert proc.returncode == 1, proc.stderr
        first = proc.stderr.splitlines()[0]
        assert re.match(r"tessera: parse error at line 1, column \d+: " + re.escape(message), first), first
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_integer_literals_have_a_digit_limit():
    assert parse(f"MATCH (p:Pod) WHERE p.a = {'9' * MAX_INTEGER_DIGITS} RETURN p").where.right.value == int("9" * 1000)
    assert parse(f"MATCH (p:Pod) WHERE p.a = {'0' * 5000}7 RETURN p").where.right.value == 7
    for text in (f"MATCH (p:Pod) WHERE p.a = {'1' * 5000} RETURN p", f"MATCH (p:Pod) RETURN p LIMIT {'1' * 5000}",
                 f"MATCH (p:Pod {{a: {'1' * (MAX_INTEGER_DIGITS + 1)}}}) RETURN p"):
        with pytest.raises(ParseError) as info:
            parse(text)
        assert "integer too long" in info.value.one_line()
        assert f"expected at most {MAX_INTEGER_DIGITS} digits" in info.value.one_line()
        assert text[info.value.offset] == "1"


def test_float_literals_out_of_range():
    assert parse("MATCH (p:Pod) WHERE p.a = 1.5e300 RETURN p").where.right.value == 1.5e300
    with pytest.raises(ParseError, match="number out of range"):
        parse("MATCH (p:Pod) WHERE p.a = 1e999 RETURN p")
    with pytest.raises(ParseError, match="number out of range"):
        parse(f"MATCH (p:Pod) WHERE p.a = {'1' * 400}.5 RETURN p")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["(", "[", "{", "NOT ", "a: ", "p.a", "datetime(", "count{", ",", ")", "]", "}",
                                 " = ", "1"]), min_size=0, max_size=40),
       st.integers(0, 3 * MAX_NESTING), st.sampled_from(["(", "[", "{", "NOT ", "datetime("]))
def test_fuzz_deep_nesting(parts, depth, opener):
    # a deep run of one opener somewhere in a query, with random tokens around it
    body = "".join(parts)
    for head in ("MATCH (p:Pod) WHERE ", "MATCH (p:Pod {a: ", "MATCH (p:Pod) RETURN "):
        _outcome(head + opener * depth + body + " RETURN p")


# --- AST nodes as values (core/query/ast.Node) --------------------------------------------------


def test_ast_nodes_are_values_compared_hashed_and_frozen():
    from tessera.core.query.ast import Comparison, FrozenNodeError, Literal, Property, Variable

    a = Comparison("=", Variable("d"), Literal(1))
    b = Comparison(op="=", left=Variable("d", pos=-1), right=Literal(1, -1))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Comparison("=", Variable("d"), Literal(2))
    assert Variable("x") != Property("x", (), "x")  # another class is never equal
    assert a.pos == -1 and Literal(1).pos == -1  # defaults from the class body
    assert repr(Literal(1, 3)) == "Literal(value=1, pos=3)"
    with pytest.raises(FrozenNodeError):
        a.op = "!="
    with pytest.raises(TypeError, match="needs 'name'"):
        Variable()
    with pytest.raises(TypeError, match="no field 'nme'"):
        Variable(nme="x")
    with pytest.raises(TypeError, match="got 'name' twice"):
        Variable("x", name="y")
