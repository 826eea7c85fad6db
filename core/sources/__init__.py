"""The source contract: what every source does, what some sources can also do, and where they come from.

- ``protocol``: the ``Source`` protocol and the optional capabilities core uses (watch, write,
  time travel, rediscovery, default namespace, close...), each a ``typing.Protocol`` core tests
  with ``isinstance``.
- ``registry``: source classes by name, from the ``tessera.sources`` entry point group (the
  bundled ones are registered there too, in pyproject.toml).
- ``union``: several read-only sources seen as one.

plugins/sources/ implement the contract; nothing here imports a plugin module.
"""
