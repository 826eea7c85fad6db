"""The bundled plugins' entry points, as pyproject.toml registers them, for front ends to hand to
core/entry_points.py: finding a bundled source or cell type then needs no reading of installed
metadata (importing importlib.metadata and scanning the distributions was 16 ms of a one-row
query's start-up). tests/test_source_contract.py checks this table against the installed
entry points, so the two cannot drift."""

ENTRY_POINTS: dict[str, dict[str, str]] = {
    "tessera.sources": {
        "manifests": "tessera.plugins.sources.manifests:ManifestSource",
        "demo": "tessera.plugins.sources.demo:DemoSource",
        "kubernetes": "tessera.plugins.sources.kubernetes:KubernetesSource",
        "replay": "tessera.plugins.sources.replay:ReplaySource",
        "local": "tessera.plugins.sources.stores:LocalStoreSource",
        "peer": "tessera.plugins.sources.stores:PeerReplicaSource",
        "knowledge": "tessera.plugins.sources.knowledge_source:KnowledgeSource",
    },
    "tessera.cells": {
        "query": "tessera.plugins.cells.query_cell:QueryCell",
        "markdown": "tessera.plugins.cells.markdown_cell:MarkdownCell",
        "sql": "tessera.plugins.cells.sql_cell:SqlCell",
        "events": "tessera.plugins.cells.events_cell:EventsCell",
        "search": "tessera.plugins.cells.search_cell:SearchCell",
        "status": "tessera.plugins.cells.status_cell:StatusCell",
    },
}
