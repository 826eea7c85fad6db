"""Where Tessera keeps things. Every path has an environment override (as posting does).

- data home: ``$TESSERA_HOME``, else the platform data dir (``~/.local/share/tessera`` on Linux);
  holds relationships.yaml, macros and (later) the store.
- config dir: ``$TESSERA_CONFIG_DIR``, else the platform config dir.
- kubeconfig: ``--kubeconfig``, else the first path in ``$KUBECONFIG``, else ``~/.kube/config``.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """The data home directory (not created here)."""
    env = os.environ.get("TESSERA_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("tessera", appauthor=False)


def config_dir() -> Path:
    """The configuration directory (not created here)."""
    env = os.environ.get("TESSERA_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_path

    return user_config_path("tessera", appauthor=False)


def database_path() -> Path:
    """The store: ``<data home>/tessera.db``."""
    return data_home() / "tessera.db"


def relationships_file() -> Path:
    """User relationship rules: ``<data home>/relationships.yaml``."""
    return data_home() / "relationships.yaml"


def macros_file() -> Path:
    """User macros: ``<data home>/macros.txt``."""
    return data_home() / "macros.txt"


def kubeconfig_path(explicit: str | None = None) -> Path:
    """The kubeconfig in use.

    Args:
        explicit: a ``--kubeconfig`` value, which wins.
    Returns:
        the path (which may not exist).
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("KUBECONFIG")
    if env:
        first = next((p for p in env.split(os.pathsep) if p), None)
        if first:
            return Path(first).expanduser()
    return Path.home() / ".kube" / "config"


def config_file() -> Path:
    """User settings: ``<config dir>/config.toml``."""
    return config_dir() / "config.toml"


def settings() -> dict:
    """The settings in config.toml (empty when there is none).

    Raises:
        InputError naming the file when it cannot be read (a directory, no permission), is not
        UTF-8 or is not valid TOML.
    """
    path = config_file()
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return {}  # the usual case: no need to import the TOML parser (start-up time)
    except OSError as exc:  # a directory, no permission...
        from tessera.core.errors import InputError

        raise InputError(f"cannot read {path}: {exc.strerror}", hint="fix the file or remove it") from None
    import tomllib

    from tessera.core.errors import InputError

    with fh:
        try:
            return tomllib.load(fh)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}", hint="fix the file or remove it") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                             hint="fix the file or remove it") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: {exc}", hint="fix the file or remove it") from None


def env_flag(name: str) -> bool | None:
    """A yes/no environment variable: True for 1/true/yes/on, False for 0/false/no/off, None when
    unset or anything else (the caller falls back to config.toml)."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def read_only() -> bool:
    """Read-only mode: ``TESSERA_READ_ONLY=1`` or ``read_only = true`` in config.toml."""
    env = env_flag("TESSERA_READ_ONLY")
    return env if env is not None else bool(settings().get("read_only", False))


def cache_dir() -> Path:
    """Disposable caches (API discovery): ``$TESSERA_CACHE_DIR``, else ``<data home>/cache`` when
    TESSERA_HOME is set, else the platform cache dir."""
    env = os.environ.get("TESSERA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if os.environ.get("TESSERA_HOME"):
        return data_home() / "cache"
    from platformdirs import user_cache_path

    return user_cache_path("tessera", appauthor=False)


def discovery_ttl() -> float:
    """Seconds a context's discovered kinds stay fresh on disk (``TESSERA_DISCOVERY_TTL``, default 300)."""
    try:
        return float(os.environ.get("TESSERA_DISCOVERY_TTL", "300"))
    except ValueError:
        return 300.0


DEFAULT_LOCK_TIMEOUT = 30.0


def store_lock_timeout() -> float:
    """Seconds a command waits for another process's write lock on the store before giving up
    (exit 4): ``TESSERA_LOCK_TIMEOUT``, else ``store_lock_timeout`` in config.toml, else 30.

    Raises:
        UsageError (the variable) or InputError (config.toml) for a value that is not a number
        of seconds from 0.
    """
    from tessera.core.errors import InputError, UsageError

    env = os.environ.get("TESSERA_LOCK_TIMEOUT")
    if env is not None and env.strip():
        value, where, error = env.strip(), "TESSERA_LOCK_TIMEOUT", UsageError
    else:
        value, where, error = settings().get("store_lock_timeout", DEFAULT_LOCK_TIMEOUT), f"{config_file()}: store_lock_timeout", InputError
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not 0 <= seconds < float("inf"):
        raise error(f"{where} must be a number of seconds from 0, not {value!r}", hint="e.g. 30")
    return seconds


# Seconds each API request may take when neither --request-timeout nor TESSERA_REQUEST_TIMEOUT
# says otherwise. kubectl's default is no limit; a finite one keeps a hung server from hanging a
# query (or, with several contexts, the others) for ever.
DEFAULT_REQUEST_TIMEOUT = 60.0
_request_timeout_flag: float | None = None


def set_request_timeout(seconds: float) -> None:
    """What --request-timeout said, for the rest of the process (0: no limit)."""
    global _request_timeout_flag
    _request_timeout_flag = seconds


def request_timeout() -> float | None:
    """Seconds one API request may take (None: no limit): --request-timeout, else
    ``TESSERA_REQUEST_TIMEOUT`` (same syntax), else DEFAULT_REQUEST_TIMEOUT.

    Raises:
        UsageError when TESSERA_REQUEST_TIMEOUT is not a duration.
    """
    from tessera.core.times import parse_kube_duration

    from tessera.core.errors import UsageError

    seconds = _request_timeout_flag
    if seconds is None:
        env = os.environ.get("TESSERA_REQUEST_TIMEOUT", "").strip()
        try:
            seconds = parse_kube_duration(env) if env else DEFAULT_REQUEST_TIMEOUT
        except UsageError as exc:
            raise UsageError(f"TESSERA_REQUEST_TIMEOUT: {exc.message}", hint=exc.hint) from None
    return seconds or None


# Sizes of input read whole into memory, checked before reading (docs/limits.md).
DEFAULT_MAX_INPUT_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
DEFAULT_MAX_KNOWLEDGE_FILE_BYTES = 4 * 1024 * 1024
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
               "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def _size_setting(env: str, key: str, default: int) -> int:
    """A byte count from ``$env``, else ``key`` in config.toml, else ``default``.

    Raises:
        UsageError naming the setting when the value is not a size.
    """
    import re

    from tessera.core.errors import UsageError

    raw = os.environ.get(env)
    where = env
    if raw is None or raw == "":
        value = settings().get(key)
        if value is None:
            return default
        raw, where = str(value), f"{key} in {config_file()}"
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", raw)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _SIZE_UNITS or int(m.group(1)) == 0:
        raise UsageError(f"{where} = {raw!r} is not a size", hint="a positive byte count, e.g. 536870912 or 512MiB")
    return int(m.group(1)) * _SIZE_UNITS[unit]


def max_input_bytes() -> int:
    """The most bytes one source's manifests (or one query file) may hold: ``TESSERA_MAX_INPUT_BYTES``,
    else ``max_input_bytes`` in config.toml, else 256 MiB."""
    return _size_setting("TESSERA_MAX_INPUT_BYTES", "max_input_bytes", DEFAULT_MAX_INPUT_BYTES)


def max_event_bytes() -> int:
    """The most bytes one event's data may hold in ``events publish``: ``TESSERA_MAX_EVENT_BYTES``,
    else ``max_event_bytes`` in config.toml, else 1 MiB."""
    return _size_setting("TESSERA_MAX_EVENT_BYTES", "max_event_bytes", DEFAULT_MAX_EVENT_BYTES)


def max_knowledge_file_bytes() -> int:
    """The largest file ``tessera ingest`` reads (larger ones are skipped as oversized, checked
    before reading): ``TESSERA_KNOWLEDGE_MAX_FILE_BYTES``, else ``knowledge_max_file_bytes`` in
    config.toml, else 4 MiB."""
    return _size_setting("TESSERA_KNOWLEDGE_MAX_FILE_BYTES", "knowledge_max_file_bytes", DEFAULT_MAX_KNOWLEDGE_FILE_BYTES)


def format_bytes(n: int) -> str:
    """``n`` bytes for a message: ``256 MiB``, ``1.5 MiB``, ``3 KiB``, ``2,000 bytes``: exact below
    1 MiB unless a whole number of KiB, so a limit of 2000 never reads as "2.0 KiB"."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size and (size > 1024 or n % size == 0):
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:,} bytes"
