"""Check 6: every NATS server named in the push and pull cursors (core/nats/cursors.py), and any
given with ``--nats URL``, accepts a connection and answers JetStream's account info within the
timeout (through core/nats/broker.connect, as push and pull connect: credentials from
TESSERA_NATS_USER/PASSWORD or TESSERA_NATS_TOKEN, TLS for tls://); the push lag per stream is
reported beside it. No servers: skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from tessera.core.doctor.check_result import FAIL, OK, SKIP, WARN, CheckResult, quoted
from tessera.core.doctor.read_only_store import open_read_only, unreadable
from tessera.core.errors import TesseraError


async def _account_info(url: str, creds, timeout: float):
    """JetStream's account info from ``url``, connected as push and pull connect (broker.connect:
    the credentials from the environment, TLS for tls://, failures as typed errors)."""
    from tessera.core.nats import broker

    client = await broker.connect(url, creds, name="tessera-doctor")
    try:
        return await client.jetstream(timeout=timeout).account_info()
    finally:
        await broker.close(client)


def _probe(url: str, creds, timeout: float) -> tuple[object | None, str | None]:
    """(JetStream account info, None), or (None, why it failed)."""
    import nats.errors
    import nats.js.errors

    try:
        return asyncio.run(asyncio.wait_for(_account_info(url, creds, timeout), timeout)), None
    except asyncio.TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
        return None, "the server answers but JetStream is not enabled on it"
    except TesseraError as exc:  # unreachable (SourceUnavailable), credentials refused (NotAuthorized)
        return None, exc.message
    except (nats.errors.Error, OSError) as exc:
        return None, f"cannot connect: {str(exc) or type(exc).__name__}"


def _servers(store: Path, extra: list[str]) -> tuple[list[str], list, TesseraError | None]:
    """(servers in order, push cursors, an error reading the cursors)."""
    from tessera.core.nats import cursors

    servers: list[str] = []
    pushes: list = []
    error = None
    if store.exists():
        try:
            conn = open_read_only(store)
            try:
                if cursors.has_nats_tables(conn):
                    pushes = cursors.push_cursors(conn)
                    servers += [c.server for c in pushes] + [c.server for c in cursors.pull_cursors(conn)]
            finally:
                conn.close()
        except TesseraError as exc:
            error = exc
    return list(dict.fromkeys(servers + list(extra))), pushes, error


def _start_fix(url: str) -> str:
    """The command that runs a JetStream server where ``url`` (checked: scheme://host:port) points."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    return f"on {host}: nats-server -js -a {quoted(host)} -p {port} -sd ~/nats-jetstream"


def _row(url: str, pushes: list, creds, timeout: float) -> CheckResult:
    check = f"nats {url}"
    info, failure = _probe(url, creds, timeout)
    if info is None:
        if "refused the credentials" in failure:
            return CheckResult(check, FAIL, failure, "set TESSERA_NATS_USER and TESSERA_NATS_PASSWORD (or TESSERA_NATS_TOKEN)")
        return CheckResult(check, FAIL, failure, _start_fix(url))
    mine = [c for c in pushes if c.server == url]
    behind = [c for c in mine if c.lag > 0]
    served = f"JetStream: {info.streams} stream{'' if info.streams == 1 else 's'}"
    if behind:
        lag = ", ".join(f"{c.stream} {c.lag} behind" for c in behind)
        first = behind[0]
        fix = f"tessera nats push --server {quoted(url)} --stream {quoted(first.stream)} {quoted(first.pattern)}"
        return CheckResult(check, WARN, f"{served}; push lag: {lag}", fix)
    pushed = f"; push lag 0 on {', '.join(c.stream for c in mine)}" if mine else ""
    return CheckResult(check, OK, f"{served}{pushed}")


def check_nats(store: Path, extra: list[str], timeout: float) -> list[CheckResult]:
    """``extra``: --nats URLs, already checked with broker.check_server (cli/doctor.py)."""
    from concurrent.futures import ThreadPoolExecutor

    from tessera.core.nats import broker

    servers, pushes, error = _servers(store, extra)
    rows = [unreadable("nats", error)] if error else []
    if not servers:
        return rows or [CheckResult("nats", SKIP, "no NATS servers (none pushed to or pulled from; --nats URL checks one)")]
    try:
        creds = broker.credentials()
    except TesseraError as exc:  # a user without a password, or the other way round
        return rows + [CheckResult("nats", FAIL, exc.message, exc.hint or "set both TESSERA_NATS_USER and TESSERA_NATS_PASSWORD")]
    with ThreadPoolExecutor(max_workers=min(8, len(servers)), thread_name_prefix="doctor-nats") as pool:
        return rows + list(pool.map(lambda url: _row(url, pushes, creds, timeout), servers))
