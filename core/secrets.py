"""Secret values are hidden where objects leave their source.

``guard`` wraps every source ``api.open_sources`` opens: each Secret (core API group, kind
Secret) it hands out — listed, watched, or returned by a write — has every ``data`` and
``stringData`` value, and the ``kubectl.kubernetes.io/last-applied-configuration`` annotation
(which repeats them), replaced by ``"<redacted>"``. Because this happens once, at the boundary,
everything downstream — query output, cell results, events, recordings, the dashboard — only ever
sees the hidden form. The keys stay visible (which keys a Secret holds is not secret).

The user opts in to real values with ``--show-secrets``, ``TESSERA_SHOW_SECRETS=1`` or
``show_secrets = true`` in config.toml. Writes are JSON patches of the paths a SET names, so a
hidden value is never sent back unless a statement copies one, and ``refuse_redacted`` refuses
that.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

from tessera.core.errors import QueryError

REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_ENV = "TESSERA_SHOW_SECRETS"


def show_secrets() -> None:
    """Opt in for this process and the tessera processes it starts (``--show-secrets``)."""
    os.environ[_ENV] = "1"


def secrets_shown() -> bool:
    """True when Secret values are shown: ``TESSERA_SHOW_SECRETS`` (1/true/yes/on or
    0/false/no/off), else ``show_secrets`` in config.toml, else False."""
    from tessera.core.config import env_flag, settings

    env = env_flag(_ENV)
    return env if env is not None else settings().get("show_secrets") is True


def is_secret_kind(kind: Any) -> bool:
    """True for the core API group's Secret kind."""
    return getattr(kind, "kind", None) == "Secret" and not getattr(kind, "group", "")


def _is_secret(obj: Any) -> bool:
    # the core group's apiVersion has no "/" (v1); a manifest may leave it out altogether
    return isinstance(obj, dict) and obj.get("kind") == "Secret" and "/" not in str(obj.get("apiVersion") or "")


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Secret with its values hidden (the input is not changed); other objects are
    returned as they are."""
    if not _is_secret(obj):
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            out[field] = {key: REDACTED for key in obj[field]}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict) and LAST_APPLIED in meta["annotations"]:
        out["metadata"] = {**meta, "annotations": {**meta["annotations"], LAST_APPLIED: REDACTED}}
    return out


def holds_redacted(value: Any) -> bool:
    """True when ``value`` (a string, or lists and maps of them) contains a hidden value."""
    if isinstance(value, str):
        return REDACTED in value
    if isinstance(value, dict):
        return any(holds_redacted(k) or holds_redacted(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(holds_redacted(v) for v in value)
    return False


def refuse_redacted(value: Any, what: str) -> None:
    """Raise QueryError when a value about to be written holds a hidden Secret value (while
    values are hidden: with the opt-in, the text ``<redacted>`` can only be the user's own).

    Args:
        what: the write, for the message (``SET on Secret shop/db``).
    """
    if holds_redacted(value) and not secrets_shown():
        raise QueryError(
            f"{what} would write {REDACTED!r}: Secret values are hidden here, so the real value is not known",
            hint="write the value itself, or run with --show-secrets to work with real Secret values",
        )


# --- the source boundary ----------------------------------------------------------------------


def guard(source: Any) -> Any:
    """``source`` with its Secrets' values hidden, unless the user opted in (then ``source``)."""
    return source if secrets_shown() else RedactingSource(source)


def _objects(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(kind: Any, *args: Any, **kwargs: Any) -> Any:
        found = method(kind, *args, **kwargs)
        return [redact(o) for o in found] if is_secret_kind(kind) else found
    return call


def _versioned(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(kind: Any, *args: Any, **kwargs: Any) -> Any:
        found, version = method(kind, *args, **kwargs)
        return ([redact(o) for o in found] if is_secret_kind(kind) else found), version
    return call


def _watch(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(kind: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        stream = method(kind, *args, **kwargs)
        if not is_secret_kind(kind):
            return stream
        return ((etype, redact(obj)) for etype, obj in stream)
    return call


def _written(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(kind: Any, *args: Any, **kwargs: Any) -> Any:
        return redact(method(kind, *args, **kwargs))
    return call


def _every(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return [redact(o) for o in method(*args, **kwargs)]
    return call


# The protocol's methods that hand out objects (core/sources/protocol.py), and ManifestSource's
# objects(); everything else (name, kinds, set_at, refresh, api_path...) passes through.
_WRAPPERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "list": _objects, "list_versioned": _versioned, "watch": _watch,
    "create": _written, "patch": _written, "delete": _written, "objects": _every,
}


class RedactingSource:
    """A source seen through ``redact``: every attribute of the wrapped source is available
    (an attribute it lacks, such as ``watch``, is lacking here too)."""

    def __init__(self, source: Any):
        object.__setattr__(self, "wrapped", source)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.wrapped, attr)
        wrap = _WRAPPERS.get(attr)
        return wrap(value) if wrap is not None and callable(value) else value

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self.wrapped, attr, value)

    def __repr__(self) -> str:
        return f"RedactingSource({self.wrapped!r})"
