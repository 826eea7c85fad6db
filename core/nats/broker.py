"""What push and pull share about the broker: the server URL and stream name checked, the
credentials from the environment, the subjects events travel on, connecting (its failures as
typed errors, nats-py's own error printing silenced) and the stream made when missing
(docs/nats.md).

Subjects: ``tessera.<STREAM>.<actor>.<event subject>``, so a consumer can take one actor's chain
(``tessera.<STREAM>.<actor>.>``) and pull can tell its own events from the subject alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from tessera.core.errors import NotAuthorized, SourceUnavailable, UsageError

DEFAULT_STREAM = "TESSERA"
DEFAULT_PORT = 4222
SUBJECT_ROOT = "tessera"
DUPLICATE_WINDOW_S = 120.0  # JetStream's own default: a resend within it is dropped by Nats-Msg-Id
CONNECT_TIMEOUT_S = 5
MSG_ID = "Nats-Msg-Id"
SEQ_HEADER = "Tessera-Seq"  # the event's seq in its actor's chain, to read the stream without parsing
ENV_USER, ENV_PASSWORD, ENV_TOKEN = "TESSERA_NATS_USER", "TESSERA_NATS_PASSWORD", "TESSERA_NATS_TOKEN"
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_server(url: str) -> str:
    """``--server``: ``nats://HOST[:PORT]`` or ``tls://HOST[:PORT]``, returned as
    ``scheme://host:port`` (the cursor tables' key). Credentials in the URL are refused: the URL
    is stored and logged, a password in it would be too.

    Raises:
        UsageError saying what is wrong and the accepted form.
    """
    hint = "e.g. --server nats://127.0.0.1:4222 (tls://HOST:PORT for TLS)"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"--server '{url}' is not a NATS URL: {exc}", hint=hint) from None
    if parts.scheme not in ("nats", "tls"):
        raise UsageError(f"--server '{url}' is not a NATS URL: the scheme must be nats:// or tls://", hint=hint)
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"--server {parts.scheme}://…@{parts.hostname}: credentials in the URL would be stored and logged",
                         hint=f"set {ENV_USER} and {ENV_PASSWORD} (or {ENV_TOKEN}) instead")
    if not parts.hostname:
        raise UsageError(f"--server '{url}' names no host", hint=hint)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"--server '{url}' has a path or query; a NATS URL has neither", hint=hint)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or DEFAULT_PORT}"


def check_stream(name: str) -> str:
    """``--stream``: 1 to 64 letters, digits, ``_`` or ``-`` (it is also a subject token)."""
    if not _STREAM_NAME.fullmatch(name):
        raise UsageError(f"--stream '{name}' is not a stream name", hint="use 1 to 64 letters, digits, _ or -")
    return name


def stream_subjects(stream: str) -> str:
    """The subjects the stream holds."""
    return f"{SUBJECT_ROOT}.{stream}.>"


def message_subject(stream: str, actor: str, subject: str) -> str:
    return f"{SUBJECT_ROOT}.{stream}.{actor}.{subject}"


def subject_parts(stream: str, subject: str) -> tuple[str, str] | None:
    """(actor, event subject) of a message subject, None when it is not one of ours."""
    prefix = f"{SUBJECT_ROOT}.{stream}."
    if not subject.startswith(prefix):
        return None
    actor, _, rest = subject[len(prefix):].partition(".")
    return (actor, rest) if actor and rest else None


@dataclass(frozen=True)
class Credentials:
    """User and password, or a token, from the environment; TLS from a tls:// URL (and ``--ca``)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    ca_file: str | None = None

    def __repr__(self) -> str:  # never a secret in a log or a traceback
        return f"Credentials(user={'set' if self.user else None}, token={'set' if self.token else None}, ca_file={self.ca_file!r})"


def credentials(ca_file: str | None = None) -> Credentials:
    """The credentials ``TESSERA_NATS_USER`` / ``TESSERA_NATS_PASSWORD`` or ``TESSERA_NATS_TOKEN``
    give, and the CA file for TLS.

    Raises:
        UsageError for a user without a password (or the other way round), or a CA file that
        cannot be read.
    """
    user, password, token = (os.environ.get(name) or None for name in (ENV_USER, ENV_PASSWORD, ENV_TOKEN))
    if (user is None) != (password is None):
        raise UsageError(f"{ENV_USER} and {ENV_PASSWORD} go together: one of them is set, the other not")
    if token is not None and user is not None:
        raise UsageError(f"set {ENV_TOKEN} or {ENV_USER}/{ENV_PASSWORD}, not both")
    if ca_file is not None and not os.access(ca_file, os.R_OK):
        raise UsageError(f"--ca {ca_file}: no such readable file", hint="give the PEM file of the CA that signed the server's certificate")
    return Credentials(user, password, token, ca_file)


def _tls_context(server: str, creds: Credentials) -> Any:
    """The TLS context for a tls:// server, or for any server when --ca is given (a nats://
    server that requires TLS is upgraded to it, and must be checked against that CA too)."""
    if not server.startswith("tls://") and creds.ca_file is None:
        return None
    import ssl

    return ssl.create_default_context(cafile=creds.ca_file)


async def connect(server: str, creds: Credentials, *, on_closed: Callable[[], None] | None = None,
                  name: str = "tessera") -> Any:
    """A nats-py connection that does not reconnect by itself (push and pull reconnect with their
    own backoff and restart from their cursor), its errors kept quiet (nats-py prints
    tracebacks by default); ``on_closed`` is called when the connection is lost or closed.

    Raises:
        SourceUnavailable (exit 3) when the server cannot be reached; NotAuthorized (exit 5)
        when it refuses the credentials.
    """
    nats = _import_nats()
    from nats import errors as nats_errors

    failures: list[Exception] = []

    async def quiet(exc: Exception) -> None:  # kept for the message, not printed
        failures.append(exc)

    async def closed() -> None:
        if on_closed is not None:
            on_closed()

    options: dict[str, Any] = {}
    if creds.user is not None:
        options.update(user=creds.user, password=creds.password)
    if creds.token is not None:
        options["token"] = creds.token
    tls = _tls_context(server, creds)
    if tls is not None:
        options["tls"] = tls
    try:
        nc = await nats.connect(server, name=name, allow_reconnect=False, max_reconnect_attempts=1,
                                reconnect_time_wait=0.2, connect_timeout=CONNECT_TIMEOUT_S, error_cb=quiet,
                                disconnected_cb=closed, closed_cb=closed, **options)
        if on_closed is not None:
            _watch_closed(nc, on_closed)
        return nc
    except nats_errors.NoServersError:
        why = _reason(failures[-1]) if failures else f"nothing answered within {CONNECT_TIMEOUT_S} s"
        if failures and isinstance(failures[-1], nats_errors.AuthorizationError):
            raise NotAuthorized(f"NATS server {server} refused the credentials",
                                hint=f"check {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}") from None
        if failures and _untrusted(failures[-1]):
            raise _untrusted_error(server, failures[-1]) from None
        raise SourceUnavailable(f"NATS server {server} is unreachable: {why}",
                                hint="start it (nats-server -js), or check --server") from None
    except nats_errors.AuthorizationError as exc:
        raise NotAuthorized(f"NATS server {server} refused the credentials ({type(exc).__name__})",
                            hint=f"check {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}") from None
    except (OSError, nats_errors.Error) as exc:
        if _untrusted(exc):
            raise _untrusted_error(server, exc) from None
        if "authorization" in str(exc).lower():
            raise NotAuthorized(f"NATS server {server} refused the credentials",
                                hint=f"check {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}") from None
        raise SourceUnavailable(f"NATS server {server} is unreachable: {type(exc).__name__}: {str(exc)[:200]}",
                                hint="start it (nats-server -js), or check --server") from None


CLOSED_POLL_S = 0.25
_WATCHERS: set = set()  # the watch tasks running: the loop keeps only a weak reference to a task


def _watch_closed(nc: Any, on_closed: Callable[[], None]) -> None:
    """Call ``on_closed`` once the connection is closed, whether or not nats-py's callbacks run:
    nats-py 2.16 marks the connection closed, then flushes what is still pending, and when that
    write fails on the dead socket its read loop swallows the error before the callbacks (seen as a
    push that reported "sent no ack within 15 s" instead of the server being gone)."""
    import asyncio

    async def watch() -> None:
        while not nc.is_closed:
            await asyncio.sleep(CLOSED_POLL_S)
        on_closed()

    task = asyncio.get_running_loop().create_task(watch())
    _WATCHERS.add(task)
    task.add_done_callback(_WATCHERS.discard)


def _import_nats() -> Any:
    """nats-py, imported without aiohttp when nothing has imported aiohttp yet: nats-py imports
    it only for its ws:// transport, which --server never takes (nats:// and tls:// only), and
    it is most of nats-py's import time (about 0.27 s of CPU of a push's start-up). aiohttp stays
    importable for everything else in the process."""
    import sys

    if "nats" in sys.modules or "aiohttp" in sys.modules:
        import nats

        return nats
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # nats.aio.transport's ImportError branch
    try:
        import nats
    finally:
        if sys.modules.get("aiohttp", 0) is None:
            del sys.modules["aiohttp"]
    return nats


def nats_errors() -> tuple:
    """nats-py's error classes (``except broker.nats_errors():``), imported only once a
    connection is made."""
    from nats import errors

    return (errors.Error,)


def lost(server: str, exc: Exception) -> SourceUnavailable:
    """A nats-py error in the middle of a session as the ConnectionLost it amounts to (exit 3
    once; --follow reconnects)."""
    from tessera.core.nats.nats_runner import ConnectionLost

    detail = getattr(exc, "description", None) or str(exc).strip() or type(exc).__name__
    return ConnectionLost(f"lost the connection to {server}: {type(exc).__name__}: {detail[:200]}",
                          hint="it goes on from its cursor when run again")


def _untrusted(exc: Exception) -> bool:
    import ssl

    return isinstance(exc, ssl.SSLCertVerificationError)


def _untrusted_error(server: str, exc: Exception) -> SourceUnavailable:
    why = getattr(exc, "verify_message", None) or _reason(exc)
    return SourceUnavailable(f"NATS server {server}'s TLS certificate is not trusted: {why}",
                             hint="give the PEM file of the CA that signed it with --ca FILE")


def _reason(exc: Exception) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


async def close(nc: Any) -> None:
    """Close a connection, quietly when it is gone already."""
    import asyncio

    try:
        await asyncio.wait_for(nc.close(), CONNECT_TIMEOUT_S)
    except Exception:  # lost or timed out: the server drops it on its side
        pass


async def ensure_stream(js: Any, server: str, stream: str) -> None:
    """The stream, made when missing: file storage, the duplicate window, no limits (discard new:
    a stream an operator capped refuses a push rather than dropping history that members have
    not pulled yet). An existing stream is used as it is when it holds our subjects.

    Raises:
        SourceUnavailable when the server has no JetStream; UsageError when a stream of that
        name exists for other subjects.
    """
    from nats.js import api
    from nats.js import errors as js_errors

    subjects = stream_subjects(stream)
    try:
        info = await js.stream_info(stream)
    except js_errors.NotFoundError:
        info = None
    except js_errors.ServiceUnavailableError:
        raise SourceUnavailable(f"NATS server {server} has no JetStream", hint="start nats-server with -js") from None
    except js_errors.NoStreamResponseError:
        raise SourceUnavailable(f"NATS server {server} has no JetStream", hint="start nats-server with -js") from None
    except js_errors.APIError as exc:
        raise SourceUnavailable(f"NATS server {server} answered the stream lookup with an error: {exc.description}") from None
    if info is not None:
        if subjects not in (info.config.subjects or []):
            raise UsageError(f"stream {stream} on {server} exists for other subjects ({', '.join(info.config.subjects or [])})",
                             hint=f"pick another --stream, or add {subjects} to that stream's subjects")
        return
    config = api.StreamConfig(name=stream, subjects=[subjects], storage=api.StorageType.FILE,
                              retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.NEW,
                              duplicate_window=DUPLICATE_WINDOW_S, allow_direct=True,
                              description="Tessera event chains, one per actor (docs/nats.md)")
    try:
        await js.add_stream(config)
    except js_errors.BadRequestError as exc:
        if "already in use" in (exc.description or ""):  # made by another member meanwhile
            return
        raise SourceUnavailable(f"NATS server {server} refused to create stream {stream}: {exc.description}") from None
    except (js_errors.NoStreamResponseError, js_errors.ServiceUnavailableError):
        raise SourceUnavailable(f"NATS server {server} has no JetStream", hint="start nats-server with -js") from None
