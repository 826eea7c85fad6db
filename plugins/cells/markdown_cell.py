"""The ``markdown`` cell: prose. Nothing runs; ``run`` gives an empty Result."""

from __future__ import annotations

from typing import Any


class MarkdownCell:
    name = "markdown"
    fence = "markdown"
    runnable = False

    def run(self, cell: dict, context: Any) -> Any:
        from tessera.core.result import Result

        return Result()
