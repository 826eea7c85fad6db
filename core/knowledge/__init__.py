"""Knowledge: files ingested as Document and Chunk resources, ranked search, and their links to the cluster (DESIGN §10, docs/knowledge.md)."""
