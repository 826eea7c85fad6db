"""Every check of ``tessera doctor``, run at once on a thread each (those that wait on the
network are each bounded by the timeout, and SQLite's checks release the GIL), so doctor on a
machine with unreachable things still finishes in about one timeout. The rows come back in the
order of CHECKS whatever finishes first. Nothing is written to the data home."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tessera.core.doctor.check_result import FAIL, CheckResult

DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class DoctorSettings:
    timeout: float = DEFAULT_TIMEOUT_S
    nats_servers: list[str] = field(default_factory=list)
    kubeconfig: str | None = None


def _checks(settings: DoctorSettings) -> list[tuple[str, Callable[[], list[CheckResult]]]]:
    from tessera.core import config
    from tessera.core.doctor import (event_chains, file_modes, job_health, kube_reachable, nats_reachable,
                                     peers_reachable, store_integrity)

    home, store, timeout = config.data_home(), config.database_path(), settings.timeout
    kubeconfig: Path = config.kubeconfig_path(settings.kubeconfig)
    return [
        ("permissions", lambda: file_modes.check_permissions(home, store, config.config_file(), kubeconfig)),
        ("store integrity", lambda: store_integrity.check_integrity(store)),
        ("event chains", lambda: event_chains.check_chains(store)),
        ("kube contexts", lambda: kube_reachable.check_kube(kubeconfig, timeout)),
        ("peers", lambda: peers_reachable.check_peers(store, timeout)),
        ("nats", lambda: nats_reachable.check_nats(store, settings.nats_servers, timeout)),
        ("jobs", lambda: job_health.check_jobs(store)),
    ]


def _guarded(name: str, check: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    from tessera.core.errors import TesseraError

    try:
        return check()
    except TesseraError as exc:  # a check's own reads failing (a setting, a store it cannot read)
        return [CheckResult(name, FAIL, exc.message, exc.hint or "")]
    except sqlite3.Error as exc:  # a store without the tables it should have (made outside Tessera)
        return [CheckResult(name, FAIL, f"cannot read the store: {exc}", "tessera events verify")]


def run_checks(settings: DoctorSettings) -> list[CheckResult]:
    """Every row, in check order. The permissions are looked at first, alone: opening the store
    (even read-only) makes SQLite create its -wal and -shm files, with the store's own mode, and
    the rows must say what was there before doctor came."""
    (first_name, first), *checks = _checks(settings)
    rows = _guarded(first_name, first)
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="doctor") as pool:
        futures = [pool.submit(_guarded, name, check) for name, check in checks]
        return rows + [row for future in futures for row in future.result()]
