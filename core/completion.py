"""Completion for query editors (the shell, the dashboard's inline editor), with no UI library.

``complete(text, cursor, ...)`` looks at the tokens before the cursor (the real lexer, via
core/query/highlight.safe_tokens) to decide what is being typed:

- ``(x:`` or ``(:`` then a prefix -> kind names;
- ``var.`` or ``var.a.b.`` -> the next field-path step of the kind bound to ``var`` in the text;
- ``:`` at the start of the text -> macro names;
- any other word (or nothing) -> keywords plus the variables and aliases declared in the text.

Matching is a case-insensitive prefix match. ``field_paths(objects)`` derives the field paths a
completer offers from a few sampled objects. ``is_complete(text)`` tells an editor whether Enter
should run the text or start a new line.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from tessera.core.errors import ParseError, TesseraError
from tessera.core.query.lexer import IDENT, NUMBER, SYMBOL, Token

# Offered after a bare word, in this order; multi-word ones complete as a whole.
KEYWORDS: tuple[str, ...] = (
    "MATCH", "WHERE", "RETURN", "AS", "ORDER BY", "LIMIT", "SKIP", "OFFSET", "CREATE", "SET", "DELETE",
    "AND", "OR", "NOT", "IN", "CONTAINS", "STARTS WITH", "ENDS WITH", "IS NULL", "IS NOT NULL", "DISTINCT",
    "ASC", "DESC", "AT", "NULL", "TRUE", "FALSE", "COUNT", "SUM", "AVG", "MIN", "MAX", "COLLECT",
    "datetime", "duration", "search",
)

# For a variable whose kind is not written (``(x)``): what every Kubernetes object has.
GENERIC_PATHS: tuple[str, ...] = (
    "apiVersion", "kind", "metadata", "metadata.name", "metadata.namespace", "metadata.labels",
    "metadata.annotations", "metadata.creationTimestamp", "metadata.uid", "metadata.ownerReferences",
    "spec", "status",
)

_PATH_SYMBOLS = frozenset({".", "[", "]", "*"})
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def complete(
    text: str,
    cursor: int,
    *,
    kinds: Iterable[str],
    fields: Callable[[str], list[str]] | None = None,
    macros: Iterable[str] = (),
) -> tuple[int, list[str]]:
    """Completions for the text at the cursor.

    Args:
        text: the whole editor text.
        cursor: the cursor offset in text.
        kinds: kind names to offer after ``(x:``.
        fields: given a kind name as written in the text (``Pod``, ``po``, ``deployments.apps``),
            its dotted field paths (``metadata.name``, ``spec.containers[*].image``; see
            field_paths). None: no field completion (variables without a kind still get
            GENERIC_PATHS).
        macros: macro names (without ``:``) to offer after a leading ``:``.
    Returns:
        (start, candidates): replace text[start:cursor] with a candidate. No candidates inside a
        string or a comment.
    """
    cursor = max(0, min(cursor, len(text)))
    before = text[:cursor]
    lead = before.lstrip()
    if lead.startswith(":"):
        name = lead[1:]
        if any(ch.isspace() for ch in name):
            return cursor, []
        return cursor - len(name), _prefixed(name, macros)
    if lead.startswith("\\"):
        return cursor, []  # shell commands: the shell completes those itself
    tokens, extras = _tokens(before)
    if _inside_literal(before, extras):
        return cursor, []
    chain = _chain(tokens, cursor)
    head_index = len(tokens) - len(chain)
    prev = tokens[head_index - 1] if head_index > 0 else None
    if not chain and prev is not None and prev.pos + len(prev.text) == cursor and (
            prev.kind != SYMBOL or prev.text in (")", "]", "}")):
        return cursor, []  # right after a number, string or closing bracket: nothing to add yet
    opener = _opener(tokens[:head_index - 1]) if prev is not None else ""
    if prev is not None and prev.kind == SYMBOL and prev.text == ":" and opener in ("(", "[", "{"):
        if opener != "(":
            return cursor, []  # a relationship type or a map value: nothing to offer
        start = chain[0].pos if chain else cursor
        return start, _prefixed(before[start:], kinds)
    if chain and any(t.kind == SYMBOL and t.text == "." for t in chain):
        head = chain[0]
        if head.kind != IDENT:
            return cursor, []
        path = before[head.pos + len(head.text) + 1:]
        return _field_candidates(text, str(head.value), path, cursor, fields)
    word = chain[-1] if chain and chain[-1].kind == IDENT and len(chain) == 1 else None
    prefix = before[word.pos:] if word else ""
    if chain and word is None:
        return cursor, []
    all_tokens, _ = _tokens(text)
    names = [v for v in declared_variables(all_tokens) if v != prefix]
    lower = _writes_lower_case(all_tokens, word, prefix)
    words = [k.lower() if lower and k.isupper() else k for k in KEYWORDS]
    return cursor - len(prefix), _prefixed(prefix, names + words)


def declared_variables(tokens: list[Token]) -> list[str]:
    """Variables and aliases declared in a query, in order of first appearance.

    Args:
        tokens: the query's tokens (lexer.tokenize or highlight.safe_tokens).
    Returns:
        names bound in node and relationship patterns (``(x:Kind)``, ``(x)``, ``[r:T]``) and
        after ``AS``.
    """
    out: list[str] = []
    for k, tok in enumerate(tokens):
        if tok.kind != IDENT or k == 0:
            continue
        prev = tokens[k - 1]
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        in_pattern = prev.kind == SYMBOL and prev.text in ("(", "[") and (
            nxt is None or (nxt.kind == SYMBOL and nxt.text in (":", ")", "]", "{")))
        after_as = prev.kind == IDENT and prev.text.upper() == "AS"
        name = str(tok.value)
        if (in_pattern or after_as) and name not in out and not _is_keyword(name):
            out.append(name)
    return out


def bound_kind(tokens: list[Token], text: str, var: str) -> str | None:
    """The kind written for ``var`` in a node pattern (``(var:Kind)``), as written; None if none."""
    for k in range(1, len(tokens) - 2):
        tok = tokens[k]
        if (tok.kind == IDENT and tok.value == var and tokens[k - 1].text == "("
                and tokens[k + 1].kind == SYMBOL and tokens[k + 1].text == ":" and tokens[k + 2].kind == IDENT):
            start = tokens[k + 2].pos
            end = start + len(tokens[k + 2].text)
            for t in tokens[k + 3:]:  # a group-qualified kind: deployments.apps
                if t.pos != end or t.kind not in (IDENT, SYMBOL) or (t.kind == SYMBOL and t.text != "."):
                    break
                end = t.pos + len(t.text)
            return text[start:end]
    return None


def field_paths(objects: list[dict[str, Any]], limit: int = 1500, max_items: int = 20) -> list[str]:
    """The dotted field paths found in sampled objects, for completion.

    Every intermediate path is included (``spec``, ``spec.containers``...). A list gives
    ``x[*]`` and ``x[0]`` and its elements' fields under both; a key holding a dot is escaped
    (``app\\.kubernetes\\.io/name``); keys a query could not spell are left out.

    Args:
        objects: resources (dicts), typically the first ~20 of a kind.
        limit: at most this many paths; when there are more, the shallowest are kept.
        max_items: list elements looked at per list.
    Returns:
        the paths, sorted.
    """
    found: set[str] = set()

    def walk(value: Any, prefix: str, depth: int) -> None:
        if depth > 12:
            return
        if isinstance(value, dict):
            for key, sub in value.items():
                name = _spell_key(key)
                if name is None:
                    continue
                path = f"{prefix}.{name}" if prefix else name
                found.add(path)
                walk(sub, path, depth + 1)
        elif isinstance(value, list) and prefix:
            for marker in ("[*]", "[0]"):
                found.add(prefix + marker)
            for item in value[:max_items]:
                walk(item, prefix + "[*]", depth + 1)
            if value:
                walk(value[0], prefix + "[0]", depth + 1)

    for obj in objects:
        walk(obj, "", 0)
    paths = sorted(found, key=_path_order)
    if len(paths) > limit:
        paths = sorted(sorted(paths, key=lambda p: (p.count(".") + p.count("["), p))[:limit], key=_path_order)
    return paths


def _path_order(path: str) -> str:
    """Sort key keeping a list's ``[*]`` / ``[0]`` right after the list (``env``, ``env[*]``, ``envFrom``)."""
    return path.replace("[", "\x00[").replace(".", "\x01")


def is_complete(text: str) -> bool:
    """Whether an editor's Enter should run the text rather than add a line.

    Args:
        text: the editor text.
    Returns:
        True for a blank text, a shell command (``\\...``) or macro call (``:...``), text ending
        with ``;``, a query that parses, or one with an error before its end (running it shows
        the error); False when the parser ran out of input (``MATCH (p:Pod)``) or a string or
        comment is still open.
    """
    stripped = text.strip()
    if not stripped or stripped[0] in "\\:" or stripped.endswith(";"):
        return True
    from tessera.core.query.lexer import END_OF_QUERY
    from tessera.core.query.parser import parse

    try:
        parse(text)
    except ParseError as err:
        if err.found == END_OF_QUERY:
            return False
        return not err.expected.startswith(("a closing", "*/"))
    except TesseraError:
        return True
    return True


def _tokens(text: str) -> tuple[list[Token], list[tuple[int, int, str]]]:
    from tessera.core.query.highlight import safe_tokens

    return safe_tokens(text)


def _inside_literal(before: str, extras: list[tuple[int, int, str]]) -> bool:
    """True when the text ends inside a string or comment."""
    for start, end, cls in extras:
        if end != len(before):
            continue
        if cls == "comment" and before.startswith("/*", start) and before.endswith("*/") and end - start >= 4:
            continue  # a closed block comment just before the cursor
        return True
    return False


def _chain(tokens: list[Token], cursor: int) -> list[Token]:
    """The run of adjacent identifier / path tokens ending exactly at the cursor."""
    chain: list[Token] = []
    end = cursor
    for tok in reversed(tokens):
        if tok.pos + len(tok.text) != end:
            break
        if tok.kind in (IDENT, NUMBER) or (tok.kind == SYMBOL and tok.text in _PATH_SYMBOLS):
            chain.append(tok)
            end = tok.pos
        else:
            break
    chain.reverse()
    # A path starts with a name: drop a leading ``]`` or ``.`` left over from something else.
    while chain and chain[0].kind != IDENT:
        chain.pop(0)
    return chain


def _opener(tokens: list[Token]) -> str:
    """The innermost open bracket after these tokens ("" when none)."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for tok in tokens:
        if tok.kind != SYMBOL:
            continue
        if tok.text in "([{":
            stack.append(tok.text)
        elif tok.text in pairs and stack and stack[-1] == pairs[tok.text]:
            stack.pop()
    return stack[-1] if stack else ""


def _field_candidates(text: str, var: str, path: str, cursor: int,
                      fields: Callable[[str], list[str]] | None) -> tuple[int, list[str]]:
    """The next step of the field paths of ``var``'s kind that extend ``path``."""
    all_tokens, _ = _tokens(text)
    if var not in declared_variables(all_tokens):
        return cursor, []
    kind = bound_kind(all_tokens, text, var)
    paths: list[str] = list(GENERIC_PATHS)
    if kind is not None and fields is not None:
        try:
            paths = fields(kind) or paths
        except TesseraError:
            pass  # an unknown kind or an unreachable source: fall back to what every object has
    dots = [m.end() for m in _UNESCAPED_DOT.finditer(path)]
    seg_start = dots[-1] if dots else 0
    segment = path[seg_start:]
    want = path.lower()
    out: list[str] = []
    for candidate in paths:
        if not candidate.lower().startswith(want):
            continue
        rest = candidate[seg_start:]
        if _UNESCAPED_DOT.search(rest) or rest == segment or rest in out:
            continue
        out.append(rest)
    return cursor - len(segment), out


def _prefixed(prefix: str, names: Iterable[str]) -> list[str]:
    """Names starting with prefix (case-insensitively), in their order, without duplicates."""
    want = prefix.lower()
    out: list[str] = []
    for name in names:
        if name.lower().startswith(want) and name not in out and name != prefix:
            out.append(name)
    return out


def _writes_lower_case(tokens: list[Token], word: Token | None, prefix: str) -> bool:
    """Offer keywords in lower case when the user writes them so: as the text's keywords are,
    else as the prefix is."""
    from tessera.core.query.highlight import KEYWORDS as WORDS

    for tok in tokens:
        if tok.kind == IDENT and tok.text.upper() in WORDS and (word is None or tok.pos != word.pos):
            return tok.text.islower()
    return bool(prefix) and prefix.islower()


def _is_keyword(name: str) -> bool:
    from tessera.core.query.highlight import AGGREGATES, KEYWORDS as WORDS

    return name.upper() in WORDS or name.upper() in AGGREGATES


_SPELLABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:(?:[-/]|\\\.)[A-Za-z0-9_]+)*\Z")


def _spell_key(key: Any) -> str | None:
    """How a query writes this key as a path segment, or None when it cannot."""
    if not isinstance(key, str):
        return None
    escaped = key.replace(".", "\\.")
    if _SPELLABLE.match(escaped):
        return escaped
    return None
