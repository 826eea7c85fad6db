"""The bundled demo cluster: a realistic manifest set shipped with the package (demo_data/*.yaml).

``-s demo`` reads demo_objects.json, the same objects as one JSON List (written from the YAML by
``make docs``, tools/demo/snapshot.py; tests/test_demo.py checks it is current): libyaml takes
about 40 ms for the YAML, orjson about 2 ms for the JSON, and a one-row demo query is mostly
start-up. The YAML stays the readable source (docs, ``-s plugins/sources/demo_data``).
"""

from __future__ import annotations

from pathlib import Path

from tessera.plugins.sources.manifests import ManifestSource

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"
DEMO_SNAPSHOT = Path(__file__).resolve().parent / "demo_objects.json"


class DemoSource(ManifestSource):
    """The demo cluster as a read-only source named ``demo`` (``tessera query -s demo ...``)."""

    def __init__(self) -> None:
        super().__init__(str(DEMO_SNAPSHOT if DEMO_SNAPSHOT.is_file() else DEMO_DIR))
        self.name = "demo"


def snapshot_text() -> str:
    """demo_objects.json as it should read: every object of demo_data/*.yaml, in file order."""
    import orjson

    objects = ManifestSource(str(DEMO_DIR)).objects()
    document = {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": objects}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
