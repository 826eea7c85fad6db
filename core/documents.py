"""YAML and JSON documents parsed with limits, so hostile input is refused instead of crashing us.

- Nesting depth: at most MAX_DEPTH levels of mappings and sequences. libyaml's composer recurses
  on the C stack and kills the process (SIGSEGV) near 50,000 levels, and deep data breaks rendering
  further on (orjson stops at 254). A cheap scan bounds the depth from above; within MAX_DEPTH
  nothing more is done; otherwise the composed nodes are measured (iteratively), the composing
  done on a thread with a large stack when the bound says the default one might not do, and when
  even that might not do, the parser's events are counted before anything is composed.
- Aliases: a "billion laughs" document (anchors of anchors) is small on disk and astronomically
  large once expanded, which anything walking the data (the engine, a renderer) does. Before a
  document is constructed, its node graph is measured with aliases expanded (memoized, so this
  costs one pass over the distinct nodes); more than MAX_ALIAS_NODES added nodes, an alias that
  refers to a collection containing it, or aliases nesting deeper than MAX_DEPTH are refused.

See docs/limits.md.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from typing import Any

from tessera.core.errors import InputError

MAX_DEPTH = 200
MAX_ALIAS_NODES = 1_000_000

_HINT = "fix the file or leave it out"
_DOC_MARKER = re.compile(r"(?m)^(?:---|\.\.\.)(?=[ \t\r\n]|$)")
_BLOCK_LEAD = re.compile(r"(?m)^[ \-?:]*")


@functools.cache
def _loader_class() -> Any:
    """libyaml's safe loader, where a value its constructor cannot build (an integer of more than
    4,300 digits, which Python refuses to convert; a date such as 2026-13-45) is a YAML error at
    that value's line and column instead of a bare ValueError. Only those two constructors are
    wrapped: wrapping construct_object would cost a Python call per node."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    def guarded(construct: Any, what: str) -> Any:
        def build(loader: Any, node: Any) -> Any:
            try:
                return construct(loader, node)
            except (ValueError, OverflowError) as exc:
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot read {what} value: {str(exc).split(';')[0]}", node.start_mark) from None
        return build

    for tag, what in (("tag:yaml.org,2002:int", "int"), ("tag:yaml.org,2002:timestamp", "timestamp")):
        Loader.add_constructor(tag, guarded(base.yaml_constructors[tag], what))
    return Loader


def _yaml_error(exc: Any, where: str) -> InputError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    pos = f"{mark.line + 1}:{mark.column + 1}:" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).split("\n")[0]
    return InputError(f"{where}:{pos} invalid YAML: {problem}", hint=_HINT)


def _too_deep(where: str, line: int, column: int) -> InputError:
    return InputError(f"{where}:{line}:{column}: nested deeper than {MAX_DEPTH} levels",
                      hint="Kubernetes objects are far shallower; " + _HINT)


def yaml_depth_bound(text: str) -> int:
    """An upper bound on the nesting depth of the YAML ``text``, from a scan at C speed.

    In flow style every level opens with ``[`` or ``{`` (an implicit ``[a: b]`` pair adds one more),
    so a document's flow depth is at most twice its brackets, wherever they are (quoted or not).
    In block style a child starts at a greater column than its parent, except an indentless
    sequence under a mapping key, so block depth is at most twice (1 + the column where a block
    node can start), that column being the run of spaces and ``-``/``?``/``:`` indicators
    that opens a line.
    """
    starts = [0] + [m.start() for m in _DOC_MARKER.finditer(text)] + [len(text)]
    brackets = max(text.count("[", a, b) + text.count("{", a, b) for a, b in itertools.pairwise(starts))
    lead = max(map(len, _BLOCK_LEAD.findall(text)), default=0)
    return 2 * brackets + 2 * (lead + 1)


def check_yaml_depth(text: str, where: str, loader_class: Any = None) -> None:
    """Refuse YAML nested deeper than MAX_DEPTH, before anything composes it (see the module docstring).

    Raises:
        InputError ``where:line:column: nested deeper than ...`` (or invalid YAML met on the way).
    """
    loader_class = loader_class or _loader_class()
    if yaml_depth_bound(text) <= MAX_DEPTH:
        return
    refuse_deep_prefix(text, where, loader_class)
    _events_too_deep(text, where, loader_class, partial=False)


def refuse_deep_prefix(text: str, where: str, loader_class: Any) -> None:
    """Refuse at once a text whose flow brackets nest past MAX_DEPTH where that shows early.

    libyaml keeps one possible simple key per open flow level and walks them all at every token:
    composing (or parsing to the end) 50,000 nested ``{a: `` took it 20 s. The text up to where
    the brackets first run MAX_DEPTH + _CUT_MARGIN deep is parsed instead: its events before the
    cut are the whole text's, so a level past MAX_DEPTH found there is the one the whole text has.
    Quoted brackets make that prefix end shallow (or not parse); then nothing is said here and
    the caller's full check decides.

    Raises:
        InputError ``where:line:column: nested deeper than ...``.
    """
    cut = _deep_bracket_cut(text)
    if cut is not None:
        _events_too_deep(text[:cut], where, loader_class, partial=True)


_CUT_MARGIN = 16
_BRACKETS = re.compile(r"[\[\]{}]")


def _deep_bracket_cut(text: str) -> int | None:
    """Where the running count of open flow brackets (quoted or not) first reaches
    MAX_DEPTH + _CUT_MARGIN, or None when it never does."""
    depth = 0
    for m in _BRACKETS.finditer(text):
        depth += 1 if m.group() in "[{" else -1
        if depth >= MAX_DEPTH + _CUT_MARGIN:
            return m.end()
    return None


def _events_too_deep(text: str, where: str, loader_class: Any, *, partial: bool) -> bool:
    """Raise ``_too_deep`` at the first event nesting past MAX_DEPTH. Returns False when there is
    none; a YAML error is raised as an InputError unless ``partial`` (the text was cut short)."""
    import yaml

    opens = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    closes = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    depth = 0
    try:
        for event in yaml.parse(text, Loader=loader_class):
            if isinstance(event, opens):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise _too_deep(where, mark.line + 1, mark.column + 1)
            elif isinstance(event, closes):
                depth -= 1
    except yaml.YAMLError as exc:
        if partial:
            return False
        raise _yaml_error(exc, where) from None
    return False


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def _check_aliases(root: Any, where: str, cap: int) -> None:
    """Refuse a composed document whose aliases expand too far (see the module docstring).

    Sizes saturate at ``cap``, so a chain of doubling anchors stays a small number."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            size[key] = min(cap, 1 + sum(size[id(k)] for k in kids))
            is_collection = isinstance(node.value, list)  # mappings and sequences; a scalar holds a str
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0) if is_collection else 0
            open_nodes.discard(key)
            if depth[key] > MAX_DEPTH:
                mark = node.start_mark
                raise _too_deep(where, mark.line + 1, mark.column + 1)
            continue
        if key in size:
            continue
        if key in open_nodes:
            mark = node.start_mark
            raise InputError(f"{where}:{mark.line + 1}:{mark.column + 1}: an alias refers to a collection that "
                             "contains it, so the data would be infinite", hint=_HINT)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)
    added = size[id(root)] - len(size)
    if added > MAX_ALIAS_NODES:
        mark = root.start_mark
        raise InputError(f"{where}:{mark.line + 1}: aliases expand this document by more than "
                         f"{MAX_ALIAS_NODES:,} nodes", hint="a 'billion laughs' document? " + _HINT)


def _check_tree_depth(root: Any, where: str) -> None:
    """Refuse a composed document (no aliases) nested deeper than MAX_DEPTH; iterative."""
    import yaml

    mapping, sequence = yaml.MappingNode, yaml.SequenceNode
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            mark = node.start_mark
            raise _too_deep(where, mark.line + 1, mark.column + 1)
        if isinstance(node, mapping):
            stack.extend((part, depth + 1) for pair in node.value for part in pair if isinstance(part, (mapping, sequence)))
        elif isinstance(node, sequence):
            stack.extend((child, depth + 1) for child in node.value if isinstance(child, (mapping, sequence)))


def _load(text: str, where: str, loader_class: Any, measure: bool) -> list[Any]:
    import yaml

    aliases = "*" in text and "&" in text  # an alias needs an anchor; most manifests have neither
    cap = len(text) + MAX_ALIAS_NODES + 1
    docs: list[Any] = []
    loader = loader_class(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None and aliases:
                _check_aliases(node, where, cap)  # measures depth too, aliases expanded
            elif node is not None and measure:
                _check_tree_depth(node, where)
            docs.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, where) from None
    finally:
        loader.dispose()
    return docs


# libyaml's composer recurses on the C stack, about 170 bytes a level: fine at 20,000 levels on a
# thread's 8 MiB, dead near 50,000. Below SAFE_COMPOSE_DEPTH (by the scan's bound) a document is
# composed as is and then measured on its nodes (a tenth of the cost of parsing it twice); up to
# BIG_STACK_DEPTH it is composed on a thread with a 64 MiB stack; past that, the exact event count
# (check_yaml_depth) runs before anything is composed.
SAFE_COMPOSE_DEPTH = 5_000
BIG_STACK_DEPTH = 150_000
_BIG_STACK = 64 * 1024 * 1024


def _on_big_stack(fn: Any, *args: Any) -> Any:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    with _STACK_SIZE_LOCK:
        previous = threading.stack_size(_BIG_STACK)
        try:
            worker = threading.Thread(target=run, name="tessera-yaml", daemon=True)
            worker.start()
        finally:
            threading.stack_size(previous)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


_STACK_SIZE_LOCK = threading.Lock()  # threading.stack_size is process-wide: set and restored under it


def load_yaml_documents(text: str, where: str) -> list[Any]:
    """Every document of a (multi-document) YAML text, as safe_load_all would give them.

    Raises:
        InputError naming ``where`` and the line and column at fault: invalid YAML, nesting
        deeper than MAX_DEPTH, or aliases expanding past MAX_ALIAS_NODES or into themselves.
    """
    loader_class = _loader_class()
    bound = yaml_depth_bound(text)
    if bound > MAX_DEPTH:
        refuse_deep_prefix(text, where, loader_class)
    if bound > BIG_STACK_DEPTH:
        check_yaml_depth(text, where, loader_class)  # exact; afterwards the depth is known to be fine
        bound = MAX_DEPTH
    if bound > SAFE_COMPOSE_DEPTH:
        return _on_big_stack(_load, text, where, loader_class, True)
    return _load(text, where, loader_class, bound > MAX_DEPTH)


_JSON_STRING = re.compile(rb'"[^"]*"')
_ALL_BUT_BRACKETS_AND_QUOTES = bytes(c for c in range(256) if c not in b'[]{}"')
_SQUARE = bytes.maketrans(b"{}", b"[]")


def check_json_depth(data: bytes, where: str, *, hint: str = "Kubernetes objects are far shallower; " + _HINT) -> None:
    """Refuse valid JSON nested deeper than MAX_DEPTH (orjson itself stops only at 1024).

    Strings are cut out (in JSON they are unambiguous: escaped backslashes and quotes go first),
    leaving the brackets; each pass of removing the innermost pairs takes one level off, so the
    passes count the depth. Every step is a C-speed bytes operation (an 80 MB kubectl dump of
    10k pods: about 0.1 s): the escapes are looked for only when there is a backslash; of the
    quotes, adjacent pairs go first with one ``replace`` (two neighbouring quotes close or open
    an empty string or an empty gap between strings, so dropping them keeps every other quote's
    parity: most strings hold no bracket), and only strings holding brackets are left for the
    regular expression; a pass is one ``replace`` of ``[]`` once braces read as brackets (a
    mismatched pair that this would hide is looked at again the exact way before refusing).

    Raises:
        InputError naming ``where``.
    """
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in data else data
    marks = unescaped.translate(None, _ALL_BUT_BRACKETS_AND_QUOTES)
    if marks.count(b"[") + marks.count(b"{") <= MAX_DEPTH:
        return
    marks = marks.replace(b'""', b"")
    brackets = _JSON_STRING.sub(b"", marks) if b'"' in marks else marks
    if _depth_over_limit(brackets.translate(_SQUARE), b"[]") and _depth_over_limit(brackets):
        raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels", hint=hint)


_INNERMOST = re.compile(rb"\[\]|\{\}")


def _depth_over_limit(brackets: bytes, pair: bytes | None = None) -> bool:
    """Whether ``brackets`` (strings cut out) nest deeper than MAX_DEPTH: a pass takes the
    innermost pairs off (``pair`` by ``replace``, else either kind by the regular expression);
    unbalanced input is not refused here (it is not JSON, which the parser reports)."""
    levels = 0
    while brackets:
        if pair is not None:
            shorter = brackets.replace(pair, b"")
            removed = len(shorter) != len(brackets)
            brackets = shorter
        else:
            brackets, removed = _INNERMOST.subn(b"", brackets)
        if not removed:
            return False
        levels += 1
        if levels > MAX_DEPTH:
            return True
    return False
