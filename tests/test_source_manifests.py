"""The manifest source: files, directories, stdin, Lists, kubectl dumps, CRDs, errors."""

from __future__ import annotations

import io
import json

import pytest

from tessera.core.errors import InputError, SourceUnavailable
from tessera.core.kinds import KindRegistry
from tessera.plugins.sources.manifests import ManifestSource

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}}}
"""


def kinds(src):
    return KindRegistry(src.kinds())


def test_multi_doc_yaml_and_default_namespace(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text(POD.format(name="a", app="x") + "---\n" + POD.format(name="b", app="y")
                 + "---\n# empty\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    src = ManifestSource(str(f))
    pods = src.list(kinds(src).resolve("po"))
    assert [p["metadata"]["name"] for p in pods] == ["a", "b"]
    assert {p["metadata"]["namespace"] for p in pods} == {"default"}
    ns = src.list(kinds(src).resolve("ns"))
    assert "namespace" not in ns[0]["metadata"]


def test_directory_recursive_skips_hidden(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub" / "a.yml").write_text(POD.format(name="a", app="x"))
    (tmp_path / ".git" / "b.yaml").write_text(POD.format(name="hidden", app="x"))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    src = ManifestSource(str(tmp_path))
    assert [p["metadata"]["name"] for p in src.list(kinds(src).resolve("pod"))] == ["a"]


def test_kubectl_json_list_and_filters(tmp_path):
    dump = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "shop", "labels": {"app": "web"}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2", "namespace": "other", "labels": {"app": "db"}}},
    ]}
    f = tmp_path / "dump.json"
    f.write_text(json.dumps(dump))
    src = ManifestSource(str(f))
    pod = kinds(src).resolve("Pod")
    assert len(src.list(pod)) == 2
    assert [p["metadata"]["name"] for p in src.list(pod, namespace="shop")] == ["p1"]
    assert [p["metadata"]["name"] for p in src.list(pod, labels={"app": "db"})] == ["p2"]
    assert [p["metadata"]["name"] for p in src.list(pod, name="p1")] == ["p1"]
    assert src.list(kinds(src).resolve("deployments.apps"))[0]["metadata"]["name"] == "web"


def test_typed_list_items_get_kind(tmp_path):
    f = tmp_path / "pods.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "PodList", "items": [{"metadata": {"name": "p", "namespace": "n"}}]}))
    src = ManifestSource(str(f))
    (p,) = src.list(kinds(src).resolve("pods"))
    assert p["kind"] == "Pod" and p["apiVersion"] == "v1"


def test_stdin():
    src = ManifestSource("-", stdin=io.StringIO(POD.format(name="s", app="x")))
    assert src.name == "stdin"
    assert src.list(kinds(src).resolve("pods"))[0]["metadata"]["name"] == "s"


def test_crd_kinds_and_unknown_kinds(tmp_path):
    f = tmp_path / "crd.yaml"
    f.write_text("""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.acme.io}
spec:
  group: acme.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions: [{name: v1beta1, served: true, storage: true}]
---
apiVersion: acme.io/v1beta1
kind: Widget
metadata: {name: w1, namespace: x}
---
apiVersion: other.io/v1
kind: Gadget
metadata: {name: g1}
""")
    src = ManifestSource(str(f))
    reg = kinds(src)
    assert reg.resolve("wd").kind == "Widget"
    assert src.list(reg.resolve("widgets.acme.io"))[0]["metadata"]["name"] == "w1"
    gadget = reg.resolve("gadget")
    assert gadget.group == "other.io" and not gadget.namespaced


def test_bad_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(InputError) as info:
        ManifestSource(str(f)).kinds()
    assert str(info.value).startswith(f"{f}:5:1: invalid YAML")
    assert info.value.exit_code == 2


def test_bad_json_names_file_and_line(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"kind": "List",\n "items": [}\n')
    with pytest.raises(InputError, match=r"bad\.json:2:\d+: invalid JSON"):
        ManifestSource(str(f)).kinds()


@pytest.mark.parametrize("content, message", [
    # JSON is parsed from the bytes; a byte that is not UTF-8 is still reported as such, at its place
    (b'{"kind": "Pod",\n "metadata": {"name": "caf\xe9"}}\n', "bad.json:2:27: not UTF-8 text (byte 0xe9)"),
    (b'{"kind": "Pod", "spec": ' + b"[" * 300 + b"]" * 300 + b", \"x\": \"\xe9\"}",
     "bad.json:1:633: not UTF-8 text (byte 0xe9)"),  # before the depth is refused
    (b'  \n\t{"kind": "List",\n "items": [}\n', "bad.json:3:12: invalid JSON"),  # leading space: still JSON
])
def test_json_errors_name_the_line_and_column(tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    with pytest.raises(InputError) as info:
        ManifestSource(str(f)).kinds()
    assert message in str(info.value)


def test_json_read_from_bytes_and_from_text_agree(tmp_path):
    doc = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "caf\u00e9", "namespace": "x"}}]}
    plain, bom = tmp_path / "plain.json", tmp_path / "bom.json"
    plain.write_bytes(b" \n" + json.dumps(doc, ensure_ascii=False).encode())
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc, ensure_ascii=False).encode())
    assert ManifestSource(str(plain)).objects() == ManifestSource(str(bom)).objects() == doc["items"]


def test_missing_path():
    with pytest.raises(SourceUnavailable, match="no such file or directory"):
        ManifestSource("/nonexistent/x.yaml").kinds()


# --- limits and empty input (issue 12; the CLI contract is in test_inputs.py) ----------------------


@pytest.mark.parametrize("stdin", ["", "   \n", "plain words\n", "---\n---\n"], ids=["empty", "blank", "text", "markers"])
def test_stdin_with_no_objects_is_an_input_error(stdin):
    source = ManifestSource("-", stdin=io.StringIO(stdin))
    assert source.kinds(), "the built-in kinds stay known, so errors in the query itself come first"
    with pytest.raises(InputError, match="no Kubernetes objects read from stdin") as info:
        source.list(next(k for k in source.kinds() if k.kind == "Pod"))
    assert info.value.exit_code == 2
    with pytest.raises(InputError, match="no Kubernetes objects read from stdin"):
        source.objects()



def test_closed_stdin_is_a_usage_error(monkeypatch):
    import sys

    from tessera.core.errors import UsageError

    stream = io.StringIO("")
    stream.close()
    with pytest.raises(UsageError, match="stdin is closed"):
        ManifestSource("-", stdin=stream).kinds()
    monkeypatch.setattr(sys, "stdin", None)  # what Python sets when started with fd 0 closed (<&-)
    with pytest.raises(UsageError, match="stdin is closed"):
        ManifestSource("-").kinds()


def test_list_items_that_are_not_objects_become_one_warning_in_the_result(tmp_path):
    from tessera.core import api

    f = tmp_path / "l.yaml"
    f.write_text("apiVersion: v1\nkind: PodList\nitems:\n- 7\n- [a]\n- {metadata: 3}\n- {metadata: {name: a}}\n")
    src = ManifestSource(str(f))
    result = api.run_query("MATCH (p:Pod) RETURN p.metadata.name AS n", [src])
    assert result.rows == [{"n": "a"}]
    assert result.warnings == [f"{f}: skipped 3 items that are not Kubernetes objects "
                               "(each must be a mapping with a kind, and its metadata a mapping)"]
    again = api.run_query("MATCH (p:Pod) RETURN p.metadata.name AS n", [src])
    assert again.warnings == []  # handed out once per read


def test_directory_limit_counts_every_file_together(tmp_path, monkeypatch):
    for i in range(3):
        (tmp_path / f"{i}.yaml").write_text(POD.format(name=f"p{i}", app="x"))
    size = sum(len(POD.format(name=f"p{i}", app="x")) for i in range(3))
    monkeypatch.setenv("TESSERA_MAX_INPUT_BYTES", str(size))
    assert len(ManifestSource(str(tmp_path)).objects()) == 3
    monkeypatch.setenv("TESSERA_MAX_INPUT_BYTES", str(size - 1))
    with pytest.raises(InputError, match=rf"the files read from {tmp_path} come to {size:,} bytes with .*2\.yaml, over the"):
        ManifestSource(str(tmp_path)).objects()


def test_utf8_bom_and_utf16_are_read(tmp_path):
    text = POD.format(name="bom", app="x")
    (tmp_path / "a.yaml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (tmp_path / "b.yaml").write_bytes(text.replace("bom", "utf16").encode("utf-16"))
    (tmp_path / "c.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"}}).encode())
    src = ManifestSource(str(tmp_path))
    assert sorted(o["metadata"]["name"] for o in src.objects()) == ["bom", "j", "utf16"]


def test_skipped_items_are_warned_once_across_re_reads(tmp_path):
    f = tmp_path / "l.json"
    f.write_text(json.dumps({"kind": "List", "items": [1, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}]}))
    src = ManifestSource(str(f))
    src.objects()
    assert len(src.take_warnings()) == 1
    src.refresh()  # what --watch --interval does each interval
    src.objects()
    assert src.take_warnings() == []
