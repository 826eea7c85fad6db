"""The source protocol, kept importable here for plugins written against it; it lives in core
(core/sources/protocol.py), which plugins implement and core never imports from plugins."""

from tessera.core.sources.protocol import Source, WatchableSource, WatchEvent

__all__ = ["Source", "WatchableSource", "WatchEvent"]
