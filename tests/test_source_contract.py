"""The source contract (core/sources/): the registry finds sources through entry points, and each
bundled source has exactly the capabilities it declares, with the protocol's signatures."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import pytest

from tessera.core.errors import SourceUnavailable
from tessera.core.sources import protocol
from tessera.core.sources.registry import source_class, source_names

REPO = Path(__file__).resolve().parents[1]

CAPABILITIES = [obj for obj in vars(protocol).values() if inspect.isclass(obj) and Protocol in obj.__bases__]


def _third_party(tmp_path: Path, entries: str) -> Path:
    """A distribution installed as a bare dist-info in tmp_path, registering ``entries``."""
    (tmp_path / "echo_source.py").write_text(
        "class EchoSource:\n"
        "    name = 'echo'\n"
        "    writable = False\n"
        "    def kinds(self):\n"
        "        return []\n"
        "    def list(self, kind, *, namespace=None, name=None, labels=None):\n"
        "        return []\n"
    )
    info = tmp_path / "echo_source-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-source\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[tessera.sources]\n{entries}\n")
    return tmp_path


def test_a_third_party_source_is_found_through_its_entry_point(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_third_party(tmp_path, "echo = echo_source:EchoSource")))
    cls = source_class("echo")
    assert cls.__module__ == "echo_source" and cls.__name__ == "EchoSource"
    assert isinstance(cls(), protocol.Source)
    assert "echo" in source_names()
    # and `tessera info`, a real process, lists it beside the bundled ones
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([str(Path(sys.executable).parent / "tessera"), "info"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {"echo", "demo", "kubernetes", "manifests", "replay"} <= set(json.loads(proc.stdout)["source_plugins"])


def test_a_bundled_name_is_not_taken_over_by_another_distribution(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_third_party(tmp_path, "demo = echo_source:EchoSource")))
    assert source_class("demo").__module__ == "tessera.plugins.sources.demo"


def test_an_unknown_source_name_is_a_clear_error():
    with pytest.raises(SourceUnavailable) as err:
        source_class("no-such-source")
    assert "no source plugin named 'no-such-source' is installed" in err.value.one_line()
    assert "tessera.sources" in err.value.one_line()


def test_bundled_sources_come_from_the_entry_points_in_pyproject():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["tessera.sources"]
    for name, target in declared.items():
        module, attr = target.split(":")
        cls = source_class(name)
        assert (cls.__module__, cls.__name__) == (module, attr)


@pytest.mark.parametrize("group", ["tessera.sources", "tessera.cells"])
def test_the_bundled_table_is_the_installed_entry_points(group):
    """plugins/bundled.py, which the CLI hands to core so no metadata is read, says exactly what
    pyproject.toml registers (as installed)."""
    from tessera.core import entry_points
    from tessera.plugins.bundled import ENTRY_POINTS

    assert ENTRY_POINTS[group] == {ep.name: ep.value for ep in entry_points.own(group)}


def test_a_known_entry_point_loads_what_the_installed_one_loads():
    from tessera.core import entry_points
    from tessera.plugins.bundled import ENTRY_POINTS

    for group, points in ENTRY_POINTS.items():
        installed = {ep.name: ep for ep in entry_points.own(group)}
        for name, value in points.items():
            assert entry_points.KnownEntryPoint(name, value).load() is installed[name].load()


def test_core_names_no_plugin_module():
    # import-linter sees import statements; this also catches a module named in a string table
    # (core/notebook/cells.py once had one for the bundled cell types)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "core").rglob("*.py")
                 if "tessera.plugins" in p.read_text()]
    assert offenders == []


def _members(capability: type) -> tuple[list[str], list[str]]:
    """(method names, data member names) a capability protocol declares."""
    methods = [n for n, v in vars(capability).items() if inspect.isfunction(v) and not n.startswith("_")]
    return methods, list(vars(capability).get("__annotations__", {}))


def _check_signature(source: object, capability: type, method: str) -> None:
    cls = type(source)
    want = dict(list(inspect.signature(getattr(capability, method)).parameters.items())[1:])  # without self
    have = inspect.signature(getattr(source, method))  # bound: without self
    for pname, param in want.items():
        assert pname in have.parameters, f"{cls.__name__}.{method} lacks parameter {pname}"
        assert have.parameters[pname].kind == param.kind, f"{cls.__name__}.{method}({pname}) is {have.parameters[pname].kind}"
    extra = [p for n, p in have.parameters.items() if n not in want
             and p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert not extra, f"{cls.__name__}.{method} requires {extra}, which the protocol does not pass"


@pytest.fixture
def bundled_sources(tmp_path, kubeconfig):
    from tessera.core.sources.union import UnionSource

    manifest = tmp_path / "app.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: default}\n")
    sources = [
        source_class("manifests")(str(manifest)),
        source_class("demo")(),
        source_class("replay")("demo"),
        source_class("kubernetes")(kubeconfig=str(kubeconfig)),
    ]
    sources.append(UnionSource(sources[:2]))
    sources += _store_sources()
    sources.append(source_class("knowledge")())
    yield sources
    for source in sources:
        if isinstance(source, protocol.ClosableSource):
            source.close()


def _store_sources() -> list:
    """``local`` and ``peer:alice`` over a real store and a (still empty) replica file."""
    from tests.peer_sync_helpers import add_peer_with_empty_replica

    add_peer_with_empty_replica("alice")
    return [source_class("local")(), source_class("peer")("alice")]


def test_each_bundled_source_has_exactly_the_capabilities_it_declares(bundled_sources):
    from tessera.core.secrets import guard

    for source in bundled_sources:
        cls = type(source)
        declared = [c for c in CAPABILITIES if c in cls.__mro__]
        assert protocol.Source in declared, cls.__name__
        for capability in declared:
            methods, data = _members(capability)
            for method in methods:
                owner = next(k for k in cls.__mro__ if method in vars(k))
                assert owner not in CAPABILITIES, f"{cls.__name__}.{method} is the protocol's stub, not an implementation"
                _check_signature(source, capability, method)
            for attr in data:
                assert hasattr(source, attr), f"{cls.__name__} declares {capability.__name__} but has no {attr}"
        for capability in CAPABILITIES:
            # a capability it has but does not declare would be used by core all the same
            assert isinstance(source, capability) == (capability in declared), (cls.__name__, capability.__name__)
            # the Secret-redacting wrapper every opened source goes through keeps the same capabilities
            assert isinstance(guard(source), capability) == (capability in declared), (cls.__name__, capability.__name__)


def test_the_knowledge_joined_to_a_source_keeps_its_capabilities_and_adds_scoring(bundled_sources):
    """-s knowledge beside another source (core/sources/joined.py): the other's capabilities,
    watchable only when both are, and always ScoringSource and ClosableSource."""
    from tessera.core.secrets import guard
    from tessera.core.sources.joined import JoinedSource

    knowledge = next(s for s in bundled_sources if type(s).__name__ == "KnowledgeSource")
    for base in bundled_sources:
        if base is knowledge:
            continue
        joined = guard(JoinedSource(base, knowledge))
        for capability in CAPABILITIES:
            always = capability in (protocol.ScoringSource, protocol.ClosableSource, protocol.Source)
            expected = always or isinstance(base, capability)
            assert isinstance(joined, capability) == expected, (type(base).__name__, capability.__name__)
        assert joined.name == base.name
