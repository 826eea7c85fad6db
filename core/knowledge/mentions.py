"""The Kubernetes resources a chunk of text names (docs/knowledge.md "One graph").

``extract(text)`` returns the mentions stored with each chunk (knowledge_chunks.mentions), each
``{"kind": "Deployment" | None, "name": "web", "namespace": "shop" | None, "form": ...}``, in text
order, each (kind, name, namespace) once. The forms, strongest first:

- ``kind/name``: ``deployment/web``, ``deploy/web``, ``svc/api``, ``deployments.apps/web``, with any
  spelling of a kind in core/builtin_kinds.py (Kind, singular, plural, short name); not inside a
  path or URL (``docs/deploy/web.md``), not a subresource (``pods/exec``, ``deployments/scale``),
  not a word pair (``deploy/upgrade``).
- ``kubectl``: ``kubectl [-n NS|--namespace NS] get|describe|logs|rollout|... KIND NAME...`` or
  ``KIND/NAME``; ``kubectl logs|exec|attach|port-forward NAME`` names a Pod, ``drain NAME`` a Node.
  ``-n`` / ``--namespace`` gives the namespace to every mention of the command (lines continued
  by a backslash are one command; the command is blanked out before the other forms read the text).
- ``manifest``: a YAML object's ``kind:`` with its ``metadata.name`` (and ``metadata.namespace``).
- ``prose``: a kind word beside a name in backticks (``Deployment `web` ``, "the `web` deployment"),
  or a Kind in its own capitalised spelling after an article and a name ("the web Deployment") or
  before a distinctive name ("Deployment web-frontend"); on one line.
- ``pod-name``: a pod name with a placeholder (``web-…``, ``web-...``, ``web-xxxxx``, ``web-<hash>``;
  in a kubectl command also ``web-*``, ``web-$POD``) or "the `web` pods" names the workload
  ``web`` (kind None: core/mention_links.py links it to each workload kind); a ReplicaSet pod's
  name (``web-7d9f8c6b5-x2x9q``) is a Pod mention and names its workload too.
- ``bare``: any other token that could be a resource name (DNS-1123 label, 3-63 characters, not a
  stop word, a version, a number, a hex digest or a YAML key) that is in backticks or distinctive
  (has '-' or a digit). Kind None: it links only to a resource of exactly that name in the
  queried sources. A name already named with a kind in the same chunk is not repeated as a bare one.

Plain words are never bare candidates ("the web of dependencies" names nothing); kind words only
count in the shapes above, so "a Service mesh", "the new Deployment" or "Pod specification" name
nothing either.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterator

# A DNS-1123 subdomain (ConfigMap and Secret names may have dots) and label (everything else).
_SUBDOMAIN = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_LABEL_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")
_SUBDOMAIN_RE = re.compile(_SUBDOMAIN + r"\Z")

# Subresources: ``pods/exec`` in RBAC rules is not a pod named exec.
SUBRESOURCES = frozenset((
    "status", "scale", "log", "logs", "exec", "eviction", "binding", "proxy", "attach", "portforward",
    "ephemeralcontainers", "resize", "token", "finalize", "approval", "rollback", "*",
))

# "deploy/upgrade the driver", "deployment/rollout", "create/update": word pairs in prose.
SLASH_PROSE = frozenset((
    "upgrade", "upgrades", "rollout", "rollouts", "update", "updates", "create", "delete", "deploy", "deployment",
    "manage", "management", "release", "test", "tests", "run", "build", "install", "uninstall", "configure",
    "configuration", "monitor", "monitoring", "operate", "operation", "maintain", "maintenance", "rollback",
    "restart", "scaling", "downgrade", "downgrades", "removal", "remove", "teardown", "setup", "use", "usage",
))

# Words that are never a name: prose around kind words ("the new Deployment") and common
# English or Kubernetes words that pass the DNS-1123 shape.
STOP_WORDS = frozenset("""
a an the this that these those its our your their my his her one two three any all some each every no not
of to in on at by for from with without into onto over under about as is are was were be been being it they
we you he she and or but if then else than so such via per also only just same other another new old
existing given target first second last next previous main primary whole entire single specific particular
corresponding underlying current original desired actual real custom example sample test dummy following
above below relevant related affected running failed failing pending broken healthy unhealthy ready
managed owning owned parent child certain several many more most less few various multiple separate
individual appropriate respective said former latter resulting additional extra simple basic generic
specified named kubernetes k8s object objects resource resources kind kinds
account accounts mesh controller controllers spec specs status name names type types lifecycle security
template templates api-server apiserver level levels policy policies object's field fields list lists
selector selectors label labels annotation annotations owner owners reference references manifest manifests
definition definitions version versions update updates rollout rollouts creation deletion admission
scheduling scheduler topology network networking storage discovery proxy dns ip ips port ports traffic
endpoint endpoints load balancer balancing backed based level-triggered group groups scope scoped
quota quotas limit limits metrics metric data value values key keys mount mounts volume volumes
informer informers cache caches watch watches event events condition conditions phase phases
and-or is-a has-a per-namespace
will would can could shall should may might must cannot won wont don doesn didn isn aren wasn has have had
having does did do done get gets got make makes made use uses used using which who whom whose what when where
while why how after before during until since because though although however therefore thus hence yet
already still even ever never always often sometimes again once twice now here there itself themselves
metadata container containers startup shutdown failure failures validation creation restart restarts
owner's level-based based standard own large larger small smaller newer older different active inactive
external internal same-named right wrong usual normal regular special across between within among upon against toward towards like unlike
""".split()) | frozenset((
    # hyphenated words and tokens with digits that read as prose or versions, not names
    "built-in", "long-running", "non-zero", "so-called", "well-known", "up-to-date", "read-only", "read-write",
    "opt-in", "opt-out", "in-tree", "out-of-tree", "end-to-end", "e2e", "x509", "ipv4", "ipv6", "utf-8", "sha256",
    "base64", "http2", "oauth2", "e-mail", "re-run", "pre-existing", "non-empty", "per-pod", "per-node",
    "multi-cluster", "cross-namespace", "third-party", "top-level", "low-level", "high-level", "real-time",
    "back-off", "n-1", "n-2", "n-3", "1st", "2nd", "3rd", "4th", "kep", "todo", "fixme",
))
_VERSION_RE = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?\Z|\d[\d.\-]*\Z|[0-9a-f]{7,64}\Z|\d{4}-\d{2}(?:-\d{2})?\Z")

# "that checks Deployment", "this new Pod": only articles and possessives start "the web Deployment"
_ARTICLES = ("the", "a", "an", "our", "your", "their", "my")

# kubectl verbs whose arguments name resources; the value-taking flags to skip with their value.
_KUBECTL_VERBS = frozenset((
    "get", "describe", "logs", "log", "rollout", "delete", "edit", "scale", "exec", "attach", "port-forward",
    "expose", "label", "annotate", "patch", "set", "top", "autoscale", "wait", "restart", "cordon", "uncordon",
    "drain", "taint", "debug",
))
_POD_FIRST_VERBS = frozenset(("logs", "log", "exec", "attach", "port-forward", "debug"))
_NODE_VERBS = frozenset(("cordon", "uncordon", "drain", "taint"))
_SUBVERBS = {"rollout": frozenset(("status", "restart", "undo", "history", "pause", "resume")),
             "set": frozenset(("image", "env", "resources", "selector", "serviceaccount", "subject")),
             "top": frozenset()}
_VALUE_FLAGS = frozenset((
    "-n", "--namespace", "-o", "--output", "-l", "--selector", "-c", "--container", "-f", "--filename",
    "--context", "--cluster", "--user", "--kubeconfig", "-p", "--patch", "--type", "--replicas",
    "--field-selector", "--sort-by", "--since", "--since-time", "--tail", "--timeout", "--for", "--to-revision",
    "-L", "--label-columns", "--template", "--port", "--target-port", "--image", "--name", "--min", "--max",
    "--cpu-percent", "--revision", "--grace-period", "-s", "--server", "--as", "--as-group", "--request-timeout",
    "--current-replicas", "--resource-version", "--profile", "--target",
))
_END_OF_COMMAND = frozenset(("|", "||", "&&", ";", "--", ">", ">>", "2>&1", "<"))

# A pod name with a placeholder for its generated part.
_PLACEHOLDER = r"(?:…|\.\.\.|[xX]{3,}|<[^<>\s`]{1,40}>|\{[^{}\s`]{1,40}\}|\*|\$\w+|\$\{\w+\})"
_POD_PLACEHOLDER_RE = re.compile(r"(?<![\w./-])([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)-" + _PLACEHOLDER)
_REPLICASET_POD_RE = re.compile(r"([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-[a-z0-9]{8,10}-[a-z0-9]{5}\Z")
_BACKTICK_RE = re.compile(r"`([^`\n]{1,253})`")
_TOKEN_RE = re.compile(r"(?<![\w./@:-])(?=[a-z]*[-0-9])([a-z0-9][-a-z0-9]{1,61}[a-z0-9])(?![\w/@-]|\.\w)")
_MANIFEST_KIND_RE = re.compile(r"^(\s*)kind:\s*['\"]?([A-Z][A-Za-z0-9]+)['\"]?\s*$")


@lru_cache(maxsize=1)
def _kind_words() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(every spelling -> Kind, full words only -> Kind, Kind spelled as Kind -> Kind), from the
    built-in kind table; short names that are English words are left out of the slash form."""
    from tessera.core.builtin_kinds import BUILTIN_KINDS

    every: dict[str, str] = {}
    words: dict[str, str] = {}
    own: dict[str, str] = {}
    for info in BUILTIN_KINDS:
        if info.kind in ("Event", "Binding", "ComponentStatus"):
            continue  # events are not runbook targets; "binding" is prose
        spellings = {info.kind.lower(), info.plural.lower(), (info.singular or info.kind).lower()}
        for s in spellings:
            words.setdefault(s, info.kind)
            every.setdefault(s, info.kind)
            every.setdefault(f"{s}.{info.group}" if info.group else f"{s}.v1", info.kind)
        for short in info.short_names:
            if short.lower() not in ("no", "ev", "cs", "limits", "quota", "pc", "sc", "ep"):
                every.setdefault(short.lower(), info.kind)
        own.setdefault(info.kind, info.kind)
        own.setdefault(info.kind + ("es" if info.kind.endswith("s") else "s"), info.kind)
    return every, words, own


# The kind-qualified forms are found from a cheap anchor (a '/', a backtick, a capitalised word, a
# '-' before a placeholder) and checked around it against the kind table: one regular expression
# with every kind spelling in it made the scan twenty times slower.
_CAPITALISED_RE = re.compile(r"[A-Z][A-Za-z]+")
_WORD_BEFORE_RE = re.compile(r"(?<![\w./:@-])([A-Za-z][A-Za-z0-9.]*)\Z")
_NAME_AFTER_SLASH_RE = re.compile(_SUBDOMAIN + r"(?![\w-]|\.\w)")
_PLAIN_WORD_BEFORE_RE = re.compile(r"(?<![\w-])([A-Za-z]+)[ \t]+\Z")
_ARTICLE_NAME_BEFORE_RE = re.compile(r"(?<![\w-])(?i:" + "|".join(_ARTICLES) + r")[ \t]+([a-z0-9][-a-z0-9.]*[a-z0-9])[ \t]+\Z")
_DISTINCT_NAME_AFTER_RE = re.compile(r"[ \t]+(?=[a-z.]*[-0-9])([a-z0-9][-a-z0-9.]*[a-z0-9])(?![\w-]|\.\w)")
_TICK_THEN_WORD_RE = re.compile(r"`(" + _SUBDOMAIN + r")`[ \t]+([A-Za-z]+)(?![\w-])")
# In prose only the placeholders that read as a pod's generated suffix: ``verify-*.sh``,
# ``checkpoint-<container>.tar`` and ``x-kubernetes-*`` are patterns of other names.
_PROSE_PLACEHOLDER_RE = re.compile(r"-(?:…|\.\.\.|[xX]{4,}|<(?:hash|pod-hash|pod|random|suffix|id|pod-id|uid|n|number|"
                                   r"replicaset-hash|template-hash)>)(?![\w.<>-])")
_NAME_BEFORE_RE = re.compile(r"(?<![\w./-])([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)\Z")


def extract(text: str) -> list[dict[str, Any]]:
    """The mentions in ``text``: kind-qualified ones first-come, then bare candidates (see the
    module note for the forms)."""
    found = _Found()
    if not text:
        return []
    _kubectl_mentions(text, found)
    text = _without_kubectl(text)
    _slash_mentions(text, found)
    _manifest_mentions(text, found)
    _prose_mentions(text, found)
    _pod_name_mentions(text, found)
    _bare_mentions(text, found)
    return found.mentions


class _Found:
    """Mentions in order, each (kind, name, namespace) once; bare names only when not named with
    a kind."""

    def __init__(self) -> None:
        self.mentions: list[dict[str, Any]] = []
        self._keys: set[tuple] = set()
        self.qualified_names: set[str] = set()

    def add(self, kind: str | None, name: str, namespace: str | None, form: str) -> None:
        name = name.strip()
        if not _SUBDOMAIN_RE.match(name) or len(name) > 253:
            return
        if namespace is not None and not _LABEL_RE.match(namespace):
            namespace = None
        if kind is None and form == "bare" and name in self.qualified_names:
            return
        key = (kind, name, namespace, form if kind is None else "")
        if key in self._keys:
            return
        self._keys.add(key)
        if kind is not None or form != "bare":
            self.qualified_names.add(name)
        self.mentions.append({"kind": kind, "name": name, "namespace": namespace, "form": form})


# ---------------------------------------------------------------------------- kubectl lines


_KUBECTL_RE = re.compile(r"(?<![\w/.-])kubectl(?![\w-])(?:[^\n]*?\\\r?\n)*[^\n]*")


def _kubectl_commands(text: str) -> Iterator[list[str]]:
    """The words after each ``kubectl`` (a line continued by a trailing backslash read whole)."""
    for _, _, words in _kubectl_spans(text):
        yield words


def _kubectl_spans(text: str) -> Iterator[tuple[int, int, list[str]]]:
    """Each kubectl command as (start, end, its words): it ends at the end of its line (or of its
    continued lines), at a shell separator, or where its code span or statement closes, so the
    prose after `kubectl ...` on the same line is not part of it."""
    if "kubectl" not in text:
        return
    for span in _KUBECTL_RE.finditer(text):
        start = span.start()
        end = start + len("kubectl")
        words = []
        for raw_match in re.finditer(r"\\\r?\n|\S+", span.group(0)[len("kubectl"):]):
            raw = raw_match.group(0)
            if raw.startswith("\\") and raw.strip("\\\r\n") == "":
                continue  # a line continuation
            if raw in _END_OF_COMMAND or raw.startswith(("|", "&&", ";", "#", "$(")) or raw == "kubectl":
                break
            end = start + len("kubectl") + raw_match.end()
            word = raw.strip("`'\",;()!?")
            closes = "`" in raw[1:] or raw.endswith(";")  # the end of a code span or statement
            if closes:
                word = word.split("`")[0].rstrip(".:")
            if word:
                words.append(word)
            if closes:
                break
        yield start, end, words


def _without_kubectl(text: str) -> str:
    """``text`` with each kubectl command blanked out (its mentions, with their namespace, are
    read by _kubectl_mentions; the other forms must not read them again without it)."""
    if "kubectl" not in text:
        return text
    parts, at = [], 0
    for start, end, _ in _kubectl_spans(text):
        parts.append(text[at:start])
        parts.append(re.sub(r"[^\n`]", " ", text[start:end]))  # backticks kept: code spans still pair up
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _kubectl_mentions(text: str, found: _Found) -> None:
    every, _, _ = _kind_words()
    for words in _kubectl_commands(text):
        namespace, positional = _kubectl_arguments(words)
        if not positional or positional[0] not in _KUBECTL_VERBS:
            continue
        verb, args = positional[0], positional[1:]
        if verb in _SUBVERBS and args and (args[0] in _SUBVERBS[verb] or verb == "top"):
            args = args[1:] if verb != "top" else args
        if verb in _NODE_VERBS:
            args = ["node", *args]
        if not args:
            continue
        first = args[0]
        if "/" in first:
            for arg in args:
                kind_word, _, name = arg.partition("/")
                kind = every.get(kind_word.lower())
                if kind and name and name.lower() not in SUBRESOURCES:
                    _add_named(found, kind, name, namespace, "kubectl")
            continue
        kind = every.get(first.lower()) if "," not in first else None
        if kind is None:
            if verb in _POD_FIRST_VERBS:
                _add_named(found, "Pod", first, namespace, "kubectl")
            continue
        for arg in args[1:]:
            if arg in STOP_WORDS or "=" in arg or arg.startswith(("-", "$", "<")) and not _POD_PLACEHOLDER_RE.match(arg):
                break
            _add_named(found, kind, arg, namespace, "kubectl")


def _kubectl_arguments(words: list[str]) -> tuple[str | None, list[str]]:
    """(the -n/--namespace value, the positional words), skipping flags and their values."""
    namespace: str | None = None
    positional: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and len(word) > 1:
            flag, eq, value = word.partition("=")
            if flag in ("-n", "--namespace"):
                if eq:
                    namespace = value
                elif i + 1 < len(words):
                    namespace = words[i + 1]
                    i += 1
            elif flag.startswith("-n") and not flag.startswith("--") and len(flag) > 2:
                namespace = flag[2:]
            elif flag in _VALUE_FLAGS and not eq:
                i += 1
            i += 1
            continue
        positional.append(word)
        i += 1
    return namespace, positional


def _add_named(found: _Found, kind: str, name: str, namespace: str | None, form: str) -> None:
    """A kind-qualified name; a Pod name with a placeholder names its workload instead, and a
    ReplicaSet pod's name its workload too."""
    placeholder = _POD_PLACEHOLDER_RE.match(name)
    name = name.rstrip(".,:;")
    if kind == "Pod" and placeholder:
        found.add(None, placeholder.group(1), namespace, "pod-name")
        return
    found.add(kind, name, namespace, form)
    if kind == "Pod":
        generated = _REPLICASET_POD_RE.match(name)
        if generated:
            found.add(None, generated.group(1), namespace, "pod-name")


# ---------------------------------------------------------------------------- other forms


def _slash_mentions(text: str, found: _Found) -> None:
    every, _, _ = _kind_words()
    slash = text.find("/")
    while slash >= 0:
        before = _WORD_BEFORE_RE.search(text, max(0, slash - 64), slash)
        if before is not None:
            kind = every.get(before.group(1).lower())
            after = _NAME_AFTER_SLASH_RE.match(text, slash + 1) if kind else None
            if (after is not None and after.group().lower() not in SUBRESOURCES and after.group() not in SLASH_PROSE
                    and not _is_path_after(text, after.end())):
                _add_named(found, kind, after.group(), _namespace_nearby(text, before.start(), after.end()),
                           "kind/name")
        slash = text.find("/", slash + 1)


def _is_path_after(text: str, end: int) -> bool:
    """``pods/foo/bar``: a path (an API path, a file), not a resource."""
    return text[end:end + 1] == "/" and text[end + 1:end + 2].isalnum()


def _namespace_nearby(text: str, start: int, end: int) -> str | None:
    """``-n shop`` / ``--namespace shop`` on the same line, right after the mention."""
    line_end = text.find("\n", end)
    after = text[end: line_end if line_end >= 0 else len(text)]
    m = re.match(r"\s+(?:-n\s*|--namespace[=\s]\s*)([a-z0-9][-a-z0-9]*)", after)
    return m.group(1) if m else None


def _manifest_mentions(text: str, found: _Found) -> None:
    """``kind: Deployment`` then its ``metadata:`` block's ``name:`` / ``namespace:``."""
    if "kind:" not in text:
        return
    _, _, own = _kind_words()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _MANIFEST_KIND_RE.match(line)
        if not m or m.group(2) not in own or own[m.group(2)] != m.group(2):
            continue
        indent = len(m.group(1))
        name = namespace = None
        in_metadata = False
        meta_indent = -1
        for other in lines[i + 1: i + 40]:
            if other.strip() in ("---", "...") or _MANIFEST_KIND_RE.match(other) and len(
                    _MANIFEST_KIND_RE.match(other).group(1)) == indent:
                break
            stripped = other.lstrip()
            depth = len(other) - len(stripped)
            if stripped.startswith("metadata:") and depth == indent:
                in_metadata, meta_indent = True, depth
                continue
            if in_metadata:
                if stripped and depth <= meta_indent:
                    in_metadata = False
                    continue
                field = re.match(r"(name|namespace):\s*['\"]?([a-z0-9][-a-z0-9.]*)['\"]?\s*$", stripped)
                if field and field.group(1) == "name" and name is None:
                    name = field.group(2)
                elif field and field.group(1) == "namespace" and namespace is None:
                    namespace = field.group(2)
        if name:
            found.add(m.group(2), name, namespace, "manifest")


def _prose_mentions(text: str, found: _Found) -> None:
    _, words, own = _kind_words()
    for m in _BACKTICK_RE.finditer(text):  # Deployment `web`
        before = _PLAIN_WORD_BEFORE_RE.search(text, max(0, m.start() - 64), m.start())
        if before is not None and before.group(1).lower() in words and _SUBDOMAIN_RE.match(m.group(1)):
            _add_prose(found, words[before.group(1).lower()], m.group(1))
    for m in _TICK_THEN_WORD_RE.finditer(text):  # the `web` deployment
        kind = words.get(m.group(2).lower())
        if kind == "Pod":  # "the `web` pods": pods are named after their workload
            if _plain_name(m.group(1)):
                found.add(None, m.group(1), None, "pod-name")
        elif kind is not None:
            _add_prose(found, kind, m.group(1))
    for m in _CAPITALISED_RE.finditer(text):
        kind = own.get(m.group())
        if kind is None or (m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_-")):
            continue
        if m.end() < len(text) and (text[m.end()].isalnum() or text[m.end()] in "_-"):
            continue
        article = _ARTICLE_NAME_BEFORE_RE.search(text, max(0, m.start() - 80), m.start())
        if article is not None and _plain_name(article.group(1)):  # the web Deployment
            _add_prose(found, kind, article.group(1))
            continue  # what follows "the web Deployment" is prose
        # Deployment web-frontend. "Pod specification", "Node affinity", "Service account": a
        # plain word after a Kind is prose far more often than a name, so only a distinctive one
        after = _DISTINCT_NAME_AFTER_RE.match(text, m.end())
        if after is not None and _plain_name(after.group(1)):
            _add_prose(found, kind, after.group(1))


def _add_prose(found: _Found, kind: str, name: str) -> None:
    if name.lower() in STOP_WORDS or name.lower() in _kind_words()[0]:
        return
    _add_named(found, kind, name, None, "prose")


def _plain_name(name: str) -> bool:
    return (bool(_LABEL_RE.match(name)) and name not in STOP_WORDS and not _VERSION_RE.match(name) and len(name) >= 2
            and (_distinctive(name) or not name.endswith(_ADJECTIVE_ENDINGS)))


# "the associated Pod", "a suspended Job", "the headless Service": words with these endings
# before a Kind describe it rather than name it
_ADJECTIVE_ENDINGS = ("ed", "ing", "able", "ible", "ive", "less", "ful", "ous", "est", "ier")


def _distinctive(name: str) -> bool:
    return "-" in name or any(ch.isdigit() for ch in name)


def _pod_name_mentions(text: str, found: _Found) -> None:
    for m in _PROSE_PLACEHOLDER_RE.finditer(text):
        before = _NAME_BEFORE_RE.search(text, max(0, m.start() - 64), m.start())
        if before is not None and before.group(1) not in STOP_WORDS:
            found.add(None, before.group(1), None, "pod-name")


def _bare_mentions(text: str, found: _Found) -> None:
    every, _, _ = _kind_words()
    for m in _BACKTICK_RE.finditer(text):
        token = m.group(1).strip()
        if _candidate(token, every) and not _POD_PLACEHOLDER_RE.fullmatch(token):
            found.add(None, token, None, "bare")
    for m in _TOKEN_RE.finditer(text):
        token = m.group(1)
        if (_distinctive(token) and _candidate(token, every) and not _POD_PLACEHOLDER_RE.match(text, m.start())
                and not _is_key(text, m.start(), m.end())):
            found.add(None, token, None, "bare")


def _is_key(text: str, start: int, end: int) -> bool:
    """``kep-number: 3973``: a YAML or front-matter key (first on its line, then ':'), not a name."""
    if text[end:end + 1] != ":":
        return False
    line_start = text.rfind("\n", 0, start) + 1
    return text[line_start:start].strip(" \t-") == ""


def _candidate(token: str, kind_words: dict[str, str]) -> bool:
    return (3 <= len(token) <= 63 and bool(_LABEL_RE.match(token)) and token not in STOP_WORDS
            and token not in kind_words and not _VERSION_RE.match(token) and any(ch.isalpha() for ch in token)
            and not token.startswith("-") and "--" not in token)
