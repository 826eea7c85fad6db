"""Macros (core/macros.py): Cyphernetes' file format, expansion, errors, and the built-in macros
running for real — reads on the bundled demo cluster, writes against the Kubernetes emulator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tessera.core import api, config
from tessera.core.errors import InputError, UsageError
from tessera.core.macros import DEFAULT_MACROS, expand, load_macros, parse_macros, split_statements

SHELL = [sys.executable, "-m", "tessera.cli.main", "shell"]

# Arguments for the built-in macros that take some (names present in the demo cluster).
DEMO_ARGS = {"expose": ["frontend"], "expose_public": ["frontend", "shop.example.com"],
             "public_deploy": ["frontend"], "create_deploy": ["hello", "nginx:1.27"]}
WRITES = {"expose", "expose_public", "create_deploy"}


def test_file_format_header_params_description_and_statements(tmp_path):
    text = (
        "# my macros\n"
        "\n"
        ":two_steps ns name   # Look twice\n"
        "MATCH (p:Pod {namespace: \"$ns\"})\n"
        "RETURN p.metadata.name;\n"
        "// a comment line inside the body\n"
        "MATCH (d:Deployment {name: \"$name\"}) RETURN d.spec.replicas; MATCH (s:Service) RETURN s\n"
        ":plain\n"
        "MATCH (n:Namespace) RETURN n.metadata.name\n"
    )
    first, second = parse_macros(text, "/x/macros.txt")
    assert (first.name, first.params, first.doc, first.origin) == ("two_steps", ("ns", "name"), "Look twice", "/x/macros.txt:3")
    assert first.statements == (
        'MATCH (p:Pod {namespace: "$ns"})\nRETURN p.metadata.name',
        '// a comment line inside the body\nMATCH (d:Deployment {name: "$name"}) RETURN d.spec.replicas',
        "MATCH (s:Service) RETURN s",
    )
    assert (second.name, second.params, second.doc, len(second.statements)) == ("plain", (), "", 1)
    assert first.usage() == ":two_steps ns name"


def test_split_statements_ignores_semicolons_in_strings_and_comments():
    text = 'MATCH (a) WHERE a.x = "a;b" RETURN a; // c;d\nMATCH (b) /* ; */ RETURN b;;  \n  // only a comment;'
    assert split_statements(text) == ['MATCH (a) WHERE a.x = "a;b" RETURN a', "// c;d\nMATCH (b) /* ; */ RETURN b"]


def test_expand_substitutes_arguments_and_keeps_other_dollars():
    macros = {m.name: m for m in parse_macros(':m name dep # d\nMATCH (x:Pod {name: "$name"}) WHERE x.a =~ "^v$" '
                                               'AND x.b = "$dep-$name" AND x.c = "$names" RETURN x\n')}
    (text,) = expand(":m web 'two words';", macros)
    assert text == 'MATCH (x:Pod {name: "web"}) WHERE x.a =~ "^v$" AND x.b = "two words-web" AND x.c = "$names" RETURN x'


def test_expand_errors_are_usage_errors_with_hints():
    macros = load_macros()
    with pytest.raises(UsageError) as err:
        expand(":deplyo", macros)
    assert err.value.exit_code == 2 and err.value.one_line() == "unknown macro ':deplyo' (did you mean :deploy?)"
    with pytest.raises(UsageError) as err:
        expand(":expose a b", macros)
    assert err.value.one_line() == "macro ':expose' takes 1 argument, got 2 (usage: :expose deploymentName)"
    with pytest.raises(UsageError, match="takes 2 arguments, got 0"):
        expand(":expose_public", macros)
    with pytest.raises(UsageError, match="needs a macro name"):
        expand(":", macros)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("MATCH (p:Pod) RETURN p\n", 1, "a statement outside a macro"),
    ("# c\n:ok\nMATCH (p:Pod) RETURN p\n:empty\n\n", 4, "macro ':empty' has no statements"),
    (":1bad\nMATCH (p:Pod) RETURN p\n", 1, "'1bad' is not a valid macro name"),
    (":m a a\nMATCH (p:Pod) RETURN p\n", 1, "macro ':m' names parameter 'a' twice"),
    (":m\nMATCH (p:Pod) RETURN p\n\n:m\nMATCH (p:Pod) RETURN p\n", 4, "macro ':m' is defined twice (first at line 1)"),
    (":   # no name\nMATCH (p:Pod) RETURN p\n", 1, "a macro header without a name"),
])
def test_a_broken_user_file_names_file_and_line(text, line, message):
    path = config.macros_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_macros()
    assert err.value.exit_code == 2
    assert err.value.message.startswith(f"{path}:{line}: {message}"), err.value.message


def test_user_macros_override_built_ins_and_add_new_ones():
    path = config.macros_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(":po # only names\nMATCH (p:Pod) RETURN p.metadata.name AS name;\n"
                    ":mine ns\nMATCH (p:Pod {namespace: \"$ns\"}) RETURN count(p) AS n;\n")
    macros = load_macros()
    assert macros["po"].origin == f"{path}:1" and macros["po"].doc == "only names"
    assert macros["deploy"].origin == "built-in"
    assert list(macros)[-2:] == ["po", "mine"]
    sources = api.open_sources(["demo"])
    (text,) = expand(":mine shop", macros)
    assert api.run_query(text, sources).rows == [{"n": 12}]


def test_built_in_macros_are_cyphernetes_defaults():
    names = [m.name for m in parse_macros(DEFAULT_MACROS)]
    assert names == ["po", "deploy", "svc", "ns", "no", "pv", "pvc", "event", "podmon", "ing", "cm", "secret", "job",
                     "cronjob", "expose", "expose_public", "public_deploy", "create_deploy"]
    assert all(m.doc for m in parse_macros(DEFAULT_MACROS))


@pytest.mark.parametrize("name", [m.name for m in parse_macros(DEFAULT_MACROS)])
def test_every_built_in_macro_parses_and_its_reads_run_on_the_demo_cluster(name):
    macros = load_macros()
    sources = api.open_sources(["demo"])
    texts = expand(" ".join([":" + name, *DEMO_ARGS.get(name, [])]), macros)
    for text in texts:
        query = api.parse_query(text)
        if query.is_mutation:
            assert name in WRITES
            continue
        result = api.run_query(text, sources)
        assert result.columns and "Name" in result.columns[0] or result.columns[0] == "Resource"
        if name != "event":  # the demo cluster has no events
            assert result.rows, f":{name} found nothing in the demo cluster"
            assert any(v is not None for v in result.rows[0].values())


def test_adjusted_macros_return_values():
    sources = api.open_sources(["demo"])
    macros = load_macros()
    nodes = api.run_query(expand(":no", macros)[0], sources).rows
    assert all(row["CPU"] for row in nodes), "Cyphernetes' :no read n.status... (an undefined variable)"
    ingresses = api.run_query(expand(":ing", macros)[0], sources).rows
    assert {row["Service"] for row in ingresses} >= {"frontend"}, "the v1 backend.service.name field"


def test_write_macros_run_against_a_cluster(kubeconfig, kube_api):
    script = (":create_deploy shopfront nginx:1.27\n"
              ":expose shopfront\n"
              ":create_deploy edge nginx:1.27\n"
              ":expose_public edge edge.example.com\n")
    proc = subprocess.run([*SHELL, "--kubeconfig", str(kubeconfig), "-o", "jsonl"], input=script,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    dep = kube_api.get("apps/v1", "Deployment", "shop", "shopfront")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert kube_api.get("v1", "Service", "shop", "shopfront")["spec"]["selector"] == {"app": "shopfront"}
    ingress = kube_api.get("networking.k8s.io/v1", "Ingress", "shop", "edge")
    assert ingress["spec"]["rules"][0]["host"] == "edge.example.com"
    rows = [line for line in proc.stdout.splitlines() if '"Name"' in line]
    assert '"Name":"shopfront"' in rows[0] and '"Host":"edge.example.com"' in rows[-1], proc.stdout
