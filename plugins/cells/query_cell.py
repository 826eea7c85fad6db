"""The ``query`` cell: its source is a Tessera query, run over the cell's sources (``-s`` specs;
none: the run's defaults, which are the current kube context as for ``tessera query``)."""

from __future__ import annotations

from typing import Any

from tessera.core.errors import QueryError


class QueryCell:
    name = "query"
    fence = "cypher"
    runnable = True

    def run(self, cell: dict, context: Any) -> Any:
        from tessera.core import api

        text = cell.get("source", "")
        if not text.strip():
            raise QueryError(f"cell {context.notebook}/{cell.get('number', '?')} ({cell['id']}) has no query",
                             hint=f"write one with: tessera cell edit {context.notebook}/{cell.get('number', 'N')}")
        sources = context.query_sources(cell)
        return api.run_query(text, sources, namespace=context.namespace, all_namespaces=context.all_namespaces)
