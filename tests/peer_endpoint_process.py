"""One node as its own process, for tests/test_peer_transport.py: binds a loopback endpoint with
the node key of a store and either serves one connection or connects to a ticket.

    python tests/peer_endpoint_process.py serve STORE REPLY_BYTES
        prints {"ticket", "node_id", "addresses", "bound"}, accepts one connection, reads the client's bytes to the end
        of its stream, answers REPLY_BYTES bytes (seeded random), prints {"remote", "got_sha256",
        "got_bytes", "sent_sha256"} and exits 0 once the client closes.
    python tests/peer_endpoint_process.py connect STORE TICKET_OR_NODE_ID[@ADDR] SEND_BYTES [TIMEOUT]
        connects, sends SEND_BYTES bytes, finishes, reads the answer to the end, prints
        {"remote", "sent_sha256", "got_sha256", "got_bytes"}; a TesseraError prints its one line
        on stderr and exits with its code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
from pathlib import Path

from tessera.core import node_key
from tessera.core.errors import TesseraError

READ_CHUNK = 1 << 16


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def _read_all(stream) -> bytes:
    parts = []
    while chunk := await stream.read(READ_CHUNK):
        parts.append(chunk)
    return b"".join(parts)


async def serve(store: Path, reply_bytes: int) -> None:
    from tessera.core.peers.transport import Endpoint

    endpoint = await Endpoint.bind(node_key.signing_key(store), loopback=True)
    print(json.dumps({"ticket": endpoint.ticket(), "node_id": endpoint.node_id,
                      "addresses": list(endpoint.address().addresses),
                      "bound": endpoint.bound_sockets()}), flush=True)
    conn = await endpoint.accept()
    stream = await conn.accept_stream()
    got = await _read_all(stream)
    reply = _payload(reply_bytes, seed=2)
    await stream.write(reply)
    await stream.finish()
    await conn.closed()
    print(json.dumps({"remote": conn.remote_node_id, "got_sha256": hashlib.sha256(got).hexdigest(),
                      "got_bytes": len(got), "sent_sha256": hashlib.sha256(reply).hexdigest()}), flush=True)
    await endpoint.close()


async def connect(store: Path, target: str, send_bytes: int, timeout: float) -> None:
    from tessera.core.peers.transport import Endpoint, NodeAddress

    if "@" in target:
        node_id, addr = target.split("@", 1)
        target = NodeAddress(node_id, (addr,))
    async with await Endpoint.bind(node_key.signing_key(store), loopback=True) as endpoint:
        conn = await endpoint.connect(target, timeout=timeout)
        stream = await conn.open_stream()
        sent = _payload(send_bytes, seed=1)
        await stream.write(sent)
        await stream.finish()
        got = await _read_all(stream)
        conn.close()
        print(json.dumps({"remote": conn.remote_node_id, "sent_sha256": hashlib.sha256(sent).hexdigest(),
                          "got_sha256": hashlib.sha256(got).hexdigest(), "got_bytes": len(got)}), flush=True)


def main(argv: list[str]) -> int:
    try:
        if argv[0] == "serve":
            asyncio.run(serve(Path(argv[1]), int(argv[2])))
        else:
            timeout = float(argv[4]) if len(argv) > 4 else 15.0
            asyncio.run(connect(Path(argv[1]), argv[2], int(argv[3]), timeout))
    except TesseraError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
