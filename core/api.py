"""The facade every front end calls. The CLI, dashboard and shell use only these functions."""

from __future__ import annotations

# Signatures are fixed in docs/architecture.md; bodies land with the engine.
