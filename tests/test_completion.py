"""Headless editor support: completion (core/completion.py) and highlighting (core/query/highlight.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.core import api
from tessera.core.completion import complete, field_paths, is_complete
from tessera.core.kinds import KindRegistry
from tessera.core.query.highlight import spans

KINDS = ["ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "PodTemplate", "ReplicaSet", "Service"]
POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web", "app.kubernetes.io/name": "web"},
                 "annotations": {"odd key": "x"}},
    "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "acme/web:1", "ports": [{"containerPort": 80}]},
                                               {"name": "side", "image": "acme/side:1", "env": [{"name": "A"}]}]},
    "status": {"phase": "Running", "containerStatuses": [{"name": "web", "restartCount": 4, "ready": True}]},
}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}}
SEEN: list[str] = []


def fields(kind: str) -> list[str]:
    SEEN.append(kind)
    return field_paths([DEPLOY] if kind.lower().startswith("deploy") else [POD])


def at_end(text: str, **kwargs) -> tuple[str, list[str]]:
    """Complete at the end of text: (the text being replaced, candidates)."""
    options = {"kinds": KINDS, "fields": fields, "macros": ["po", "podmon", "expose"], **kwargs}
    start, candidates = complete(text, len(text), **options)
    return text[start:], candidates


def test_kinds_after_a_colon_in_a_node():
    assert at_end("MATCH (p:Po") == ("Po", ["Pod", "PodDisruptionBudget", "PodTemplate"])
    assert at_end("MATCH (:rep") == ("rep", ["ReplicaSet"])
    assert at_end("MATCH (d:Deployment)->(s:") == ("", KINDS)
    assert at_end("MATCH (d:Deployment)-[r:OWN") == ("", []), "a relationship type is not a kind"
    assert at_end('MATCH (p:Pod {name: ') == ("", []), "a map value is not a kind"


def test_field_paths_step_by_step_for_the_variables_kind():
    SEEN.clear()
    assert at_end("MATCH (p:Pod) WHERE p.") == ("", ["apiVersion", "kind", "metadata", "spec", "status"])
    assert SEEN == ["Pod"]
    assert at_end("MATCH (p:Pod) WHERE p.spec.cont") == ("cont", ["containers", "containers[*]", "containers[0]"])
    assert at_end("MATCH (p:Pod) RETURN p.spec.containers[*].") == (
        "", ["env", "env[*]", "env[0]", "image", "name", "ports", "ports[*]", "ports[0]"])
    assert at_end("MATCH (p:Pod) WHERE p.status.containerStatuses[*].REST") == ("REST", ["restartCount"])
    assert at_end("MATCH (p:Pod) WHERE p.metadata.labels.") == ("", ["app", "app\\.kubernetes\\.io/name"])
    assert at_end("MATCH (d:Deployment), (p:Pod) RETURN d.spec.") == ("", ["replicas"])


def test_fields_of_a_kindless_variable_and_of_an_unknown_one():
    text, candidates = at_end("MATCH (d:Deployment)->(x) RETURN x.meta")
    assert text == "meta" and candidates == ["metadata"]
    assert at_end("MATCH (x) RETURN x.metadata.na") == ("na", ["name", "namespace"])
    assert at_end("MATCH (p:Pod) RETURN q.") == ("", [])


def test_keywords_and_declared_variables_after_a_bare_word():
    assert at_end("MATCH (p:Pod) RET") == ("RET", ["RETURN"])
    assert at_end("match (p:Pod) ret") == ("ret", ["return"]), "lower case in, lower case out"
    assert at_end("MATCH (p:Pod) RETURN p.metadata.name AS podName ORDER BY po") == ("po", ["podName"])
    assert at_end("MATCH (d:Deployment)->(rs:ReplicaSet) RETURN r") == ("r", ["rs", "RETURN"])
    assert at_end("MATCH (p:Pod) WHERE p.metadata.name STA") == ("STA", ["STARTS WITH"])
    _, everything = at_end("MATCH (p:Pod) ")
    assert everything[0] == "p" and "WHERE" in everything and "ORDER BY" in everything and "IS NULL" in everything


def test_macros_after_a_leading_colon():
    assert at_end(":po") == ("po", ["podmon"])
    assert at_end(":") == ("", ["po", "podmon", "expose"])
    assert at_end("  :ex") == ("ex", ["expose"])
    assert at_end(":expose we") == ("", [])


def test_nothing_inside_strings_comments_or_after_a_literal():
    assert at_end('MATCH (p:Pod) WHERE p.x = "Po') == ("", [])
    assert at_end("MATCH (p:Pod) // p.") == ("", [])
    assert at_end("MATCH (p:Pod) /* p.") == ("", [])
    assert at_end("MATCH (p:Pod) RETURN p LIMIT 1") == ("", [])
    assert at_end("MATCH (p:Pod) /* x */ RET") == ("RET", ["RETURN"])


def test_completion_in_the_middle_of_the_text():
    text = "MATCH (p:Po) RETURN p"
    start, candidates = complete(text, text.index(")"), kinds=KINDS)
    assert text[start:text.index(")")] == "Po" and candidates[0] == "Pod"


def test_field_paths_from_sampled_objects():
    paths = field_paths([POD, DEPLOY])
    assert paths[:3] == ["apiVersion", "kind", "metadata"]
    for expected in ("metadata.name", "spec.replicas", "spec.containers[*].image", "spec.containers[0].name",
                     "status.containerStatuses[*].restartCount", "metadata.labels.app\\.kubernetes\\.io/name"):
        assert expected in paths
    assert not any("odd key" in p for p in paths), "a key a query cannot spell is left out"
    assert paths.index("spec.containers") < paths.index("spec.containers[*]") < paths.index("spec.containers[0]")
    assert len(field_paths([POD], limit=10)) == 10
    assert all(p.count(".") <= 1 for p in field_paths([POD], limit=10)), "the shallowest are kept"


def test_field_paths_of_the_demo_pods_are_queryable():
    source = api.open_sources(["demo"])[0]
    pods = source.list(KindRegistry(source.kinds()).resolve("Pod"))[:20]
    paths = field_paths(pods)
    assert 50 < len(paths) < 1500
    for path in paths[::25]:
        api.parse_query(f"MATCH (p:Pod) RETURN p.{path}")  # every offered path is valid syntax


def test_is_complete_decides_between_run_and_new_line():
    assert is_complete("MATCH (p:Pod) RETURN p")
    assert is_complete("MATCH (p:Pod)\nRETURN p;")
    assert is_complete("MATCH (p:Pod RETURN p"), "an error before the end: run it to show the error"
    assert is_complete("\\o json") and is_complete(":po") and is_complete("   ")
    assert not is_complete("MATCH (p:Pod)")
    assert not is_complete("MATCH (p:Pod) RETURN p ORDER BY")
    assert not is_complete('MATCH (p:Pod) WHERE p.x = "open')
    assert not is_complete("MATCH (p:Pod) /* open")


def classes(text: str) -> list[tuple[str, str]]:
    return [(text[s:e], c) for s, e, c in spans(text)]


def test_highlight_classes():
    text = ('MATCH (d:Deployment {name: "web"})->(p:Pod) // note\n'
            "WHERE p.status.phase <> 'Running' AND count{p} > 2 RETURN d.metadata.name AS n, datetime() /* c */")
    got = classes(text)
    for item in [("MATCH", "keyword"), ("d", "variable"), ("Deployment", "kind"), ("name", "key"), ('"web"', "string"),
                 ("->", "operator"), ("Pod", "kind"), ("// note", "comment"), ("status", "field"), ("<>", "operator"),
                 ("'Running'", "string"), ("AND", "keyword"), ("count", "function"), ("2", "number"),
                 ("AS", "keyword"), ("datetime", "function"), ("/* c */", "comment"), ("(", "punctuation")]:
        assert item in got, item
    starts = [s for s, _, _ in spans(text)]
    assert starts == sorted(starts)


def test_highlight_partial_input_and_commands():
    assert classes('MATCH (p:Pod) WHERE p.x = "abc')[-1] == ('"abc', "string")
    assert classes("MATCH /* open")[-1] == ("/* open", "comment")
    assert classes("RETURN ~")[-1] == ("~", "error")
    assert classes("\\o json") == [("\\o", "command"), ("json", "argument")]
    assert classes(":expose web") == [(":expose", "macro"), ("web", "argument")]
    assert spans("") == []
    # a number the parser refuses (too many digits) is still a number, and what follows is still read
    big = "1" * 5000
    assert classes(f"MATCH (p:Pod) WHERE p.x = {big} RETURN p")[-3:] == [(big, "number"), ("RETURN", "keyword"), ("p", "variable")]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('MATCHRETURNWHERE (p:Pod){}[]<>-=."\'`/*\\\n;,:0123456789ab ')), max_size=60),
       st.integers(min_value=0, max_value=70))
def test_editor_helpers_never_raise(text, cursor):
    for start, end, cls in spans(text):
        assert 0 <= start < end <= len(text) and cls
    start, candidates = complete(text, cursor, kinds=KINDS, fields=fields, macros=["po"])
    assert 0 <= start <= min(cursor, len(text)) and isinstance(candidates, list)
    is_complete(text)


@pytest.mark.parametrize("text", ["MATCH (p:Pod) RETURN p.metadata.name", "MATCH (d:Deployment)->(x) RETURN x"])
def test_spans_cover_every_non_blank_character(text):
    covered = set()
    for start, end, _ in spans(text):
        covered.update(range(start, end))
    assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}
