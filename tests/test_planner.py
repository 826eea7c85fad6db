"""The join planner (core/query/planner.py): the order of a path's joins, and which rules join
two kinds (in which direction)."""

from __future__ import annotations

from tessera.core.builtin_kinds import BUILTIN_KINDS
from tessera.core.kinds import KindRegistry
from tessera.core.query import ast
from tessera.core.query.planner import JoinPlanner, hops, start_node
from tessera.core.rules import all_rules


def test_a_path_is_walked_from_its_start_forwards_then_backwards():
    assert hops(3, 0) == [(0, True), (1, True), (2, True)]
    assert hops(3, 2) == [(2, True), (1, False), (0, False)]
    assert hops(0, 0) == []


def test_the_walk_starts_at_the_first_restricted_node():
    assert start_node(["d", "rs", "p"], set()) == 0
    assert start_node(["d", "rs", "p"], {"p"}) == 2
    assert start_node(["d", "rs", "p"], {"p", "rs"}) == 1


def test_rules_between_two_kinds_either_way_round_and_by_type():
    registry = KindRegistry(list(BUILTIN_KINDS))
    planner = JoinPlanner(all_rules(), registry)
    deployment, replicaset = registry.resolve("Deployment"), registry.resolve("ReplicaSet")
    forwards = planner.rules_between(deployment, replicaset, ast.RelPattern("right"))
    backwards = planner.rules_between(replicaset, deployment, ast.RelPattern("right"))
    assert [r.type for r, _ in forwards] == ["DEPLOYMENT_OWN_REPLICASET"]
    # the rule names ReplicaSet as its kind_a: the flag says which side plays it
    assert forwards[0][1] is (forwards[0][0].kind_a == "Deployment")
    assert backwards == [(forwards[0][0], not forwards[0][1])]
    assert planner.rules_between(deployment, replicaset, ast.RelPattern("right", type="NO_SUCH_TYPE")) == []


def test_a_namespace_links_to_every_namespaced_listable_kind():
    registry = KindRegistry(list(BUILTIN_KINDS))
    planner = JoinPlanner(all_rules(), registry)
    by_name, by_star = planner.linked_kinds(registry.resolve("Namespace"), None)
    assert "Pod" in by_star and "ConfigMap" in by_star and "Node" not in by_star | by_name
    assert "Namespace" in planner.linked_kinds(registry.resolve("Pod"), None)[1]
