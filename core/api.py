"""The facade every front end calls: the CLI, dashboard, shell and plugins use only these names.

It only re-exports; each function lives in the module that owns it (the layers contract in
pyproject.toml keeps every other core module from importing this one):

- sources: core/sources/opening.py (sources are plugins found through the ``tessera.sources``
  entry points, so a third party can add one without touching this package);
- queries: core/query/run.py; relationship rules: core/rules.py; kinds: core/kinds.py;
- mutations: core/mutate.py; merged results: core/result.py; ``tessera info``: core/info.py.
"""

from __future__ import annotations

from tessera.core.info import info
from tessera.core.kinds import kind_rows as list_kinds
from tessera.core.mutate import apply as apply_mutation
from tessera.core.mutate import plan_mutations as plan_mutation
from tessera.core.query.run import SHAPES, engine_for, explain, parse_query, run_query, shape_for_format
from tessera.core.result import merge_results
from tessera.core.rules import rules_in_force as relationship_rules
from tessera.core.sources.opening import open_sources

__all__ = [
    "SHAPES",
    "apply_mutation",
    "engine_for",
    "explain",
    "info",
    "list_kinds",
    "merge_results",
    "open_sources",
    "parse_query",
    "plan_mutation",
    "relationship_rules",
    "run_query",
    "shape_for_format",
]
