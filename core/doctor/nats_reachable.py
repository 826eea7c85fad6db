"""Check 6: every NATS server named in the push and pull cursors (core/nats/cursors.py), and any
given with ``--nats URL``, accepts a connection and answers JetStream's account info within the
timeout (nats-py, imported here only); the push lag per stream is reported beside it. A URL's
user and password are never shown. No servers: skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tessera.core.doctor.check_result import FAIL, OK, SKIP, WARN, CheckResult, quoted
from tessera.core.doctor.read_only_store import open_read_only, unreadable
from tessera.core.errors import TesseraError


def shown_url(url: str) -> str:
    """``url`` with its user information (a user, password or token) replaced by ``***``."""
    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
    except ValueError:
        return "(a URL that cannot be read)"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def _account_info(url: str, timeout: float):
    """JetStream's account info from ``url``; a failure to connect raises the last connect error."""
    import nats
    import nats.errors

    seen: list[Exception] = []

    async def keep(error: Exception) -> None:  # instead of nats-py logging each failure on stderr
        seen.append(error)

    try:
        # max_reconnect_attempts=0 would retry for ever (nats-py counts only limits above 0): one
        # retry at once, then nats-py gives up with NoServersError
        client = await nats.connect(servers=[url if "://" in url else f"nats://{url}"], connect_timeout=timeout,
                                    allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
                                    error_cb=keep)
    except nats.errors.NoServersError:
        raise seen[-1] if seen else ConnectionError("no server answered") from None
    try:
        return await client.jetstream(timeout=timeout).account_info()
    finally:
        await client.close()


def _probe(url: str, timeout: float) -> tuple[object | None, str | None]:
    """(JetStream account info, None), or (None, why it failed)."""
    import nats.errors
    import nats.js.errors

    try:
        return asyncio.run(asyncio.wait_for(_account_info(url, timeout), timeout)), None
    except asyncio.TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
        return None, "the server answers but JetStream is not enabled on it"
    except nats.errors.AuthorizationError:
        return None, "the server refused the credentials in the URL"
    except (nats.errors.Error, OSError) as exc:
        return None, f"cannot connect: {(str(exc) or type(exc).__name__).replace(url, shown_url(url))}"


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
    """The command that runs a JetStream server where ``url`` points (when that is this machine,
    else the same, to run there)."""
    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    except ValueError:
        return "check the URL: nats://HOST:PORT"
    return f"on {host}: nats-server -js -a {quoted(host)} -p {port} -sd ~/nats-jetstream"


def _row(url: str, pushes: list, timeout: float) -> CheckResult:
    shown = shown_url(url)
    check = f"nats {shown}"
    info, failure = _probe(url, timeout)
    if info is None:
        return CheckResult(check, FAIL, failure, _start_fix(url))
    mine = [c for c in pushes if c.server == url]
    behind = [c for c in mine if c.lag > 0]
    served = f"JetStream: {info.streams} stream{'' if info.streams == 1 else 's'}"
    if behind:
        lag = ", ".join(f"{c.stream} {c.lag} behind" for c in behind)
        first = behind[0]
        fix = f"tessera nats push --server {quoted(shown)} --stream {quoted(first.stream)} {quoted(first.pattern)}"
        return CheckResult(check, WARN, f"{served}; push lag: {lag}", fix)
    pushed = f"; push lag 0 on {', '.join(c.stream for c in mine)}" if mine else ""
    return CheckResult(check, OK, f"{served}{pushed}")


def check_nats(store: Path, extra: list[str], timeout: float) -> list[CheckResult]:
    from concurrent.futures import ThreadPoolExecutor

    servers, pushes, error = _servers(store, extra)
    rows = [unreadable("nats", error)] if error else []
    if not servers:
        return rows or [CheckResult("nats", SKIP, "no NATS servers (none pushed to or pulled from; --nats URL checks one)")]
    with ThreadPoolExecutor(max_workers=min(8, len(servers)), thread_name_prefix="doctor-nats") as pool:
        return rows + list(pool.map(lambda url: _row(url, pushes, timeout), servers))
