"""Check 4: each context of the kubeconfig answers ``GET /version`` within the timeout, asked
through the kubernetes source's own ping (the watch caches' heartbeat), so doctor sees what a
query would: the same kubeconfig reading, credentials and errors. The source is found through
the registry (core never names a plugin module). No kubeconfig: skipped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tessera.core.doctor.check_result import FAIL, OK, SKIP, CheckResult, quoted
from tessera.core.errors import NotAuthorized, SourceTimeout, TesseraError

EXTRA_S = 5.0  # beyond the request's own bounds: reading the kubeconfig, importing the client


def _ping(source_class, name: str, kubeconfig: Path, timeout: float) -> CheckResult:
    check = f"kube context {name}"
    try:
        source = source_class(context=name, kubeconfig=str(kubeconfig), request_timeout=timeout)
    except TesseraError as exc:
        return CheckResult(check, FAIL, exc.one_line(), f"kubectl config view --minify --context {quoted(name)}")
    started = time.monotonic()
    try:
        source.ping(timeout)
    except NotAuthorized as exc:
        return CheckResult(check, FAIL, exc.one_line(), f"log in to the cluster again, then: kubectl --context {quoted(name)} version")
    except SourceTimeout as exc:
        return CheckResult(check, FAIL, exc.one_line(), f"kubectl --context {quoted(name)} version --request-timeout=10s")
    except TesseraError as exc:
        return CheckResult(check, FAIL, exc.one_line(), f"kubectl --context {quoted(name)} cluster-info")
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return CheckResult(check, OK, f"answered GET /version in {time.monotonic() - started:.2f} s")


def check_kube(kubeconfig: Path, timeout: float) -> list[CheckResult]:
    """One row per context, all asked at once (each bounded by ``timeout``)."""
    from tessera.core.sources.protocol import ContextCatalog, PingableSource
    from tessera.core.sources.registry import source_class

    if not kubeconfig.exists():
        return [CheckResult("kube contexts", SKIP, f"no kubeconfig at {kubeconfig} (set KUBECONFIG to check one)")]
    try:
        kube = source_class("kubernetes")
    except TesseraError as exc:
        return [CheckResult("kube contexts", SKIP, exc.one_line())]
    if not isinstance(kube, ContextCatalog) or not issubclass(kube, PingableSource):
        return [CheckResult("kube contexts", SKIP, "the kubernetes source cannot list contexts or ping")]
    try:
        names, _current = kube.available_contexts(str(kubeconfig))
    except TesseraError as exc:
        return [CheckResult("kube contexts", FAIL, exc.one_line(), f"kubectl config view --kubeconfig {quoted(kubeconfig)}")]
    if not names:
        return [CheckResult("kube contexts", SKIP, f"{kubeconfig} has no contexts")]
    return _bounded([(name, lambda n=name: _ping(kube, n, kubeconfig, timeout)) for name in names], timeout)


def _bounded(pings: list, timeout: float) -> list[CheckResult]:
    """Run each ping on a daemon thread, all at once, and wait for each up to the bound: the
    request itself keeps to ``timeout`` (connecting, then the answer), but a credential plugin
    the kubeconfig runs (``exec``: aws, gcloud...) has no limit of its own, and a hung one must
    not hang doctor (a daemon thread ends with the process)."""
    bound = 2 * timeout + EXTRA_S
    results: dict[str, CheckResult] = {}
    threads = []
    for name, ping in pings:
        thread = threading.Thread(target=lambda n=name, p=ping: results.__setitem__(n, p()), daemon=True,
                                  name=f"doctor-kube-{name}")
        thread.start()
        threads.append((name, thread))
    deadline = time.monotonic() + bound
    for _name, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [results.get(name) or CheckResult(f"kube context {name}", FAIL,
                                             f"no answer within {bound:g} s: its credential plugin or the server hung",
                                             f"kubectl --context {quoted(name)} version --request-timeout=10s")
            for name, _ in pings]
