"""Benchmark: fetching a blob (core/blobs/fetch.py) from one real ``tessera serve`` and from two at
once, on loopback with relays off. Prints one JSON object on stdout.

- ``one_peer_mb_s`` / ``two_peers_mb_s``: --mb MiB (default 64) of random bytes in chunks of
  --chunk-size (default 1 MiB), fetched into an empty blob store (every chunk verified, written,
  recorded; the whole file verified again and renamed into place), MB/s = MiB / seconds;
- ``chunks_served``: how many chunks each serve sent in the two-peer fetch (from its log);
- ``put_mb_s``: storing the blob (hashing and writing it, fsynced) on a holder;
- ``load_average``: the machine's 1-minute load before the run (it is shared).

Each serve lets a peer make 20 requests a second in bursts of 40 (core/peers/rate_limit.py), and
a fetch paces itself under that: at 1 MiB a chunk one peer gives at most about 20 MiB/s once
its burst is spent, so for 64 chunks the burst carries most of it.

Usage: .venv/bin/python bench/blobs.py [--mb 64] [--chunk-size 1MiB]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def start_serve(home: Path) -> tuple[subprocess.Popen, str, list[dict]]:
    """A ``tessera serve`` of ``home``: the process, its ticket, and its chunk log lines (filled as they come)."""
    env = {**os.environ, "TESSERA_HOME": str(home), "TESSERA_PEER_LOOPBACK": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "serve"], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    sent: list[dict] = []
    for line in proc.stderr:
        if '"listening"' in line:
            ticket = json.loads(line)["ticket"]
            break
    else:
        raise SystemExit(f"tessera serve did not start (exit {proc.wait()})")

    def keep_reading() -> None:  # a full pipe would block the serve
        for later in proc.stderr:
            if '"blob_chunk_sent"' in later:
                sent.append(json.loads(later))

    threading.Thread(target=keep_reading, daemon=True).start()
    return proc, ticket, sent


def befriend(fetcher, holder, holder_ticket: str) -> None:
    """What pairing leaves (both add each other; the fetcher knows where the holder listens)."""
    from tessera.core.peers import identity, peer_list
    from tessera.core.store.db import transaction

    for me, other, address in ((fetcher, holder, holder_ticket), (holder, fetcher, None)):
        them = identity.local_identity(other)
        with transaction(me):
            peer_list.add(me, them.node_id, them.name, publish=True, subscribe=True, added_at="2026-12-01T00:00:00Z",
                          address=address)


async def timed_fetch(fetcher, blob_id: str, peers: list) -> tuple[float, object]:
    from tessera.core.blobs import blob_store, fetch
    from tessera.core.peers import node_endpoint

    blob_store.remove(fetcher, blob_id)
    report = fetch.FetchReport(blob_id)
    async with await node_endpoint.bind(fetcher, listen=False) as endpoint:
        start = time.perf_counter()
        await fetch.fetch(fetcher, endpoint, blob_id, peers, report=report)
        return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--chunk-size", default="1MiB")
    options = parser.parse_args()
    os.environ["TESSERA_PEER_LOOPBACK"] = "1"
    from tessera.core.blobs import blob_store, fetch, manifest
    from tessera.core.peers import identity, peer_list
    from tessera.core.store.db import connect

    chunk_size = manifest.parse_chunk_size(options.chunk_size)
    load = os.getloadavg()[0]
    data = os.urandom(options.mb * 1024 * 1024)
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        fetcher = connect(home / "fetcher" / "tessera.db")
        holders, procs, logs = [], [], []
        try:
            for name in ("bob", "carol"):
                holder = connect(home / name / "tessera.db")
                identity.init(holder, name)
                proc, ticket, sent = start_serve(home / name)
                procs.append(proc)
                logs.append(sent)
                befriend(fetcher, holder, ticket)
                holders.append(holder)
            fetcher_id = identity.local_identity(fetcher).node_id
            start = time.perf_counter()
            blob_id = blob_store.put_bytes(holders[0], data, chunk_size=chunk_size, grant_to=[fetcher_id])
            put_seconds = time.perf_counter() - start
            assert blob_store.put_bytes(holders[1], data, chunk_size=chunk_size, grant_to=[fetcher_id]) == blob_id
            bob, carol = (peer_list.resolve(fetcher, name) for name in ("bob", "carol"))
            one, _ = asyncio.run(timed_fetch(fetcher, blob_id, [bob]))
            assert blob_store.read_bytes(fetcher, blob_id) == data
            before = [len(sent) for sent in logs]
            time.sleep(fetch.RATE_LIMITED_PAUSE + 0.5)  # bob's rate-limit bucket full again, as for a first fetch
            two, report = asyncio.run(timed_fetch(fetcher, blob_id, [bob, carol]))
            assert blob_store.read_bytes(fetcher, blob_id) == data
            served = {name: p.chunks for name, p in report.peers.items()}
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
    mib = options.mb
    print(json.dumps({"blob_mib": mib, "chunk_size": chunk_size, "chunks": -(-len(data) // chunk_size),
                      "one_peer_s": round(one, 3), "one_peer_mb_s": round(mib / one, 1),
                      "two_peers_s": round(two, 3), "two_peers_mb_s": round(mib / two, 1),
                      "chunks_served": served, "chunks_logged_by_serves": [len(s) - b for s, b in zip(logs, before, strict=True)],
                      "put_mb_s": round(mib / put_seconds, 1), "load_average": round(load, 2)}))


if __name__ == "__main__":
    main()
