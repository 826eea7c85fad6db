"""The bundled demo cluster: a realistic manifest set shipped with the package (demo_data/*.yaml)."""

from __future__ import annotations

from pathlib import Path

from tessera.plugins.sources.manifests import ManifestSource

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"


class DemoSource(ManifestSource):
    """The demo cluster as a read-only source named ``demo`` (``tessera query -s demo ...``)."""

    def __init__(self) -> None:
        super().__init__(str(DEMO_DIR))
        self.name = "demo"
