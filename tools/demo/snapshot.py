"""Writes plugins/sources/demo_objects.json, the demo cluster's objects read from
plugins/sources/demo_data/*.yaml as one JSON List (what ``-s demo`` reads, for start-up):
python tools/demo/snapshot.py (``make docs`` runs it)."""

from __future__ import annotations

import sys

from tessera.plugins.sources.demo import DEMO_SNAPSHOT, snapshot_text


def main() -> int:
    text = snapshot_text()
    if DEMO_SNAPSHOT.is_file() and DEMO_SNAPSHOT.read_text(encoding="utf-8") == text:
        return 0
    DEMO_SNAPSHOT.write_text(text, encoding="utf-8")
    print(f"wrote {DEMO_SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
