"""The 67 Cyphernetes e2e cases, run end to end through the CLI with ``-o cyphernetes``.

Each case: ``tessera query -s manifests.yaml -n NS -f query.cypher -o cyphernetes``, compared by the
rules of ../shared/conformance/cyphernetes-e2e/README.md. Skips when ../shared is absent.

Error texts: upstream wraps its messages in call-stack prefixes ("error rewriting query: ",
"error finding API resource >> ", "parse error: parsing first clause: "). Those name upstream's
internal stages, not anything a user can act on, so the check strips them and requires the rest
of the expected text in our one-line error. Upstream quotes the end of the text as ``got ""``;
ours names it, ``got end of query`` (docs/language.md, "Differences from Cyphernetes").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED

CASES_DIR = SHARED / "conformance" / "cyphernetes-e2e"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir()) if CASES_DIR.is_dir() else []
TESSERA = str(Path(sys.executable).with_name("tessera"))
UPSTREAM_PREFIXES = (
    "parse error: parsing first clause: ",
    "error rewriting query: ",
    "error finding API resource >> ",
    "error getting node resources >> ",
)
ANY = "__ANY__"


def run_case(name: str) -> subprocess.CompletedProcess:
    case = CASES_DIR / name
    expected = json.loads((case / "expected.json").read_text())
    args = [TESSERA, "query", "-s", str(case / "manifests.yaml"), "-f", str(case / "query.cypher"), "-o", "cyphernetes"]
    if expected.get("_all_namespaces"):
        args.append("-A")
    else:
        args += ["-n", expected["_namespace"]]
    env = dict(os.environ, NO_COLOR="1", TESSERA_HOME=str(case / ".no-such-home"))
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)


def same_number(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool) and a == b


def subset(expected, actual, path: str, unordered: set[str]) -> bool:
    """Partial match: objects as subsets, lists as prefixes (or multisets when unordered)."""
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and subset(v, actual[k], f"{path}/{k}", unordered) for k, v in expected.items()
        )
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) < len(expected):
            return False
        if path in unordered:
            remaining = list(actual)
            for item in expected:
                hit = next((i for i, a in enumerate(remaining) if subset(item, a, path, unordered)), None)
                if hit is None:
                    return False
                remaining.pop(hit)
            return True
        return all(subset(e, a, f"{path}/{i}", unordered) for i, (e, a) in enumerate(zip(expected, actual, strict=False)))
    return expected == actual or same_number(expected, actual)


def exact(expected, actual) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(exact(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(exact(e, a) for e, a in zip(expected, actual, strict=True))
    return expected == actual or same_number(expected, actual)


UPSTREAM_WORDING = {'got ""': "got end of query"}


def strip_upstream(text: str) -> str:
    for prefix in UPSTREAM_PREFIXES:
        text = text.replace(prefix, "")
    for theirs, ours in UPSTREAM_WORDING.items():
        text = text.replace(theirs, ours)
    return text


@pytest.mark.skipif(not CASES, reason=f"conformance data absent: {CASES_DIR} not found")
@pytest.mark.parametrize("name", CASES or ["none"])
def test_case(name: str) -> None:
    case = CASES_DIR / name
    expected = json.loads((case / "expected.json").read_text())
    proc = run_case(name)
    assert "Traceback" not in proc.stderr, proc.stderr
    if "_error" in expected:
        assert proc.returncode == 1, f"expected failure, got exit {proc.returncode}: {proc.stdout[:500]}"
        want = strip_upstream(expected["_error"])
        assert want in proc.stderr, f"{want!r} not in {proc.stderr!r}"
        assert proc.stderr.startswith("tessera: "), proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    body = {k: v for k, v in expected.items() if not k.startswith("_")}
    unordered = set(expected.get("_unordered", []))
    if expected.get("_partial"):
        assert subset(body, data, "", unordered), json.dumps(data)[:2000]
    else:
        assert exact(body, data), json.dumps(data)[:2000]
    for var, n in expected.get("_len", {}).items():
        assert len(data.get(var, [])) == n, (var, data.get(var))
    for var in expected.get("_nonempty", []):
        assert data.get(var), var
    if "_total_rows" in expected:
        total = sum(len(v) for k, v in data.items() if k != "aggregate")
        assert total == expected["_total_rows"], data
    if "_equals_case" in expected:
        other = run_case(expected["_equals_case"])
        assert other.returncode == 0, other.stderr
        assert json.loads(other.stdout) == data
