"""Syntax classes for query text, for editors that highlight while the user types.

``spans(text)`` classifies every token of a (possibly partial or wrong) query using the real
lexer, so the highlighting agrees with what the parser reads. The lexer drops comments and raises
on an unterminated string or comment; here comments are found in the gaps between tokens, and an
unterminated tail is shown as the string or comment it starts. Nothing here ever raises.

Classes: keyword, function, kind, variable, field, key, string, number, comment, operator,
punctuation, error (a character no rule accepts), macro and argument (a ``:name args`` call),
command (a backslash command such as ``\\o json``).
"""

from __future__ import annotations

from tessera.core.errors import ParseError
from tessera.core.query.lexer import EOF, IDENT, NUMBER, STRING, SYMBOL, UNKNOWN, Token, tokenize

KEYWORDS = frozenset({
    "MATCH", "WHERE", "RETURN", "AS", "ORDER", "BY", "LIMIT", "SKIP", "OFFSET", "CREATE", "SET", "DELETE",
    "DETACH", "AND", "OR", "NOT", "IN", "CONTAINS", "STARTS", "ENDS", "WITH", "IS", "NULL", "TRUE", "FALSE",
    "AT", "DISTINCT", "ASC", "DESC", "ASCENDING", "DESCENDING",
})
AGGREGATES = frozenset({"COUNT", "SUM", "AVG", "MIN", "MAX", "COLLECT"})
OPERATORS = frozenset({"->", "<-", "<=", ">=", "<>", "!=", "=~", "=", "<", ">", "-", "+", "*"})

Span = tuple[int, int, str]


def spans(text: str) -> list[Span]:
    """Classify the text for highlighting.

    Args:
        text: query text, complete or not; may also be a shell command (``\\o json``) or a macro
            call (``:po``).
    Returns:
        (start, end, class) triples, sorted and not overlapping; whitespace is not covered.
    """
    try:
        return _spans(text)
    except Exception:  # noqa: BLE001 - called on every keystroke: a bug must not break typing
        return []


def safe_tokens(text: str) -> tuple[list[Token], list[Span]]:
    """The lexer's tokens for text, never raising, plus the spans the lexer does not return.

    Args:
        text: query text.
    Returns:
        (tokens without the EOF token, extra spans): the extra spans are comments, and an
        unterminated string / block comment / backtick name running to the end of the text
        (classed string / comment / variable).
    """
    tail: Span | None = None
    try:
        tokens = tokenize(text, check_numbers=False)
    except ParseError as err:
        cut = err.offset
        try:
            tokens = tokenize(text[:cut], check_numbers=False)
        except ParseError:
            tokens = [Token(EOF, "", None, 0)]
            cut = 0
        opener = text[cut:cut + 2]
        cls = "comment" if opener == "/*" else "variable" if opener.startswith("`") else "string"
        tail = (cut, len(text), cls)
    tokens = [t for t in tokens if t.kind != EOF]
    end = tail[0] if tail else len(text)
    extras = _comments(text, tokens, end)
    if tail:
        extras.append(tail)
    return tokens, extras


def _comments(text: str, tokens: list[Token], end: int) -> list[Span]:
    """Comments in the gaps between tokens (the lexer leaves only blanks and comments there)."""
    out: list[Span] = []
    gaps = []
    pos = 0
    for tok in tokens:
        gaps.append((pos, tok.pos))
        pos = tok.pos + len(tok.text)
    gaps.append((pos, end))
    for start, stop in gaps:
        i = start
        while i < stop:
            if text.startswith("//", i):
                nl = text.find("\n", i, stop)
                j = stop if nl < 0 else nl
                out.append((i, j, "comment"))
                i = j
            elif text.startswith("/*", i):
                close = text.find("*/", i + 2, stop)
                j = stop if close < 0 else close + 2
                out.append((i, j, "comment"))
                i = j
            else:
                i += 1
    return out


def _command_spans(text: str, start: int, cls: str) -> list[Span]:
    """A one-line shell command or macro call: its first word, then each argument."""
    out: list[Span] = []
    i, n = start, len(text)
    first = True
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        out.append((i, j, cls if first else "argument"))
        first = False
        i = j
    return out


def _spans(text: str) -> list[Span]:
    lead = len(text) - len(text.lstrip())
    if text[lead:lead + 1] == "\\":
        return _command_spans(text, lead, "command")
    if text[lead:lead + 1] == ":":
        return _command_spans(text, lead, "macro")
    tokens, extras = safe_tokens(text)
    out: list[Span] = list(extras)
    stack: list[str] = []
    for k, tok in enumerate(tokens):
        prev = tokens[k - 1] if k else None
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        if tok.kind == SYMBOL:
            if tok.text in "([{":
                stack.append(tok.text)
            elif tok.text in ")]}" and stack and stack[-1] == {")": "(", "]": "[", "}": "{"}[tok.text]:
                stack.pop()
            cls = "operator" if tok.text in OPERATORS else "punctuation"
        elif tok.kind == STRING:
            cls = "string"
        elif tok.kind == NUMBER:
            cls = "number"
        elif tok.kind == UNKNOWN:
            cls = "error"
        elif tok.kind == IDENT:
            cls = _ident_class(tok, prev, nxt, stack)
        else:
            continue
        out.append((tok.pos, tok.pos + len(tok.text), cls))
    out.sort()
    return out


def _ident_class(tok: Token, prev: Token | None, nxt: Token | None, stack: list[str]) -> str:
    """The class of an identifier from its neighbours and the bracket it sits in."""
    word = tok.text.upper()
    if prev is not None and prev.kind == SYMBOL and prev.text == "." and prev.pos + 1 == tok.pos:
        return "field"
    if prev is not None and prev.kind == SYMBOL and prev.text == ":" and stack and stack[-1] in "([":
        return "kind"  # (v:Kind), [r:TYPE]
    next_sym = nxt.text if nxt is not None and nxt.kind == SYMBOL else ""
    if stack and stack[-1] == "{" and next_sym == ":":
        return "key"  # {name: "x"}
    if word in AGGREGATES and next_sym in ("(", "{"):
        return "function"
    if word in KEYWORDS:
        return "keyword"
    if next_sym == "(":
        return "function"  # datetime(), duration()
    return "variable"
