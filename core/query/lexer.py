"""The lexer: query text -> tokens with offsets. Comments are dropped here, nothing else is.

Identifiers are generous because Kubernetes names are: inside an identifier a ``-`` or ``/``
followed by a letter, digit or ``_`` continues it (``kind-prod``, ``kubernetes\\.io/name``,
``foo-bar``), and ``\\.`` keeps a dot in it (``app\\.kubernetes\\.io``). So subtraction needs
spaces around ``-`` when both sides are names (``a - b``); ``datetime() - duration(...)`` is fine
either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.core.errors import ParseError

# Token kinds.
IDENT = "IDENT"
STRING = "STRING"
NUMBER = "NUMBER"
SYMBOL = "SYMBOL"
EOF = "EOF"
UNKNOWN = "UNKNOWN"

# How a parse error names the end of the text, where other tokens are quoted ("RETURN").
END_OF_QUERY = "end of query"

# Longest first: the lexer tries each in order.
_SYMBOLS = (
    "->", "<-", "<=", ">=", "<>", "!=", "=~",
    "(", ")", "{", "}", "[", "]", ",", ":", ".", ";", "=", "<", ">", "-", "+", "*",
)

# An integer literal may have this many digits. Python refuses to convert more than 4,300 digits
# between text and int (in either direction, so printing such a value would fail too); 1,000
# leaves room for a sum of them and is far beyond any Kubernetes value (int64 has 19 digits).
MAX_INTEGER_DIGITS = 1000

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", '"': '"', "'": "'", "/": "/"}


@dataclass(frozen=True)
class Token:
    """One token. ``text`` is the exact source slice; ``value`` the decoded value.

    kind: IDENT / STRING / NUMBER / SYMBOL / EOF / UNKNOWN (a character no rule accepts, left for
    the parser to report with what it expected there).
    """

    kind: str
    text: str
    value: object
    pos: int

    def shown(self) -> str:
        """The token as an error message quotes it: ``"RETURN"``; ``end of query`` at the end."""
        return END_OF_QUERY if self.kind == EOF else '"' + self.text.replace('"', '\\"') + '"'


def _digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def tokenize(text: str, *, check_numbers: bool = True) -> list[Token]:
    """Split query text into tokens, ending with one EOF token.

    Args:
        text: the query.
        check_numbers: refuse numbers out of range (a highlighter passes False: such a number
            is still a NUMBER token, valued None, and the tokens after it are still found).
    Returns:
        the tokens; comments and whitespace are dropped.
    Raises:
        ParseError for an unterminated string or block comment, or a number out of range.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ParseError(
                    "unterminated comment", source=text, offset=i, found='"/*"', expected="*/ to close it"
                )
            i = end + 2
            continue
        if ch in "\"'":
            i = _string(text, i, tokens)
            continue
        if _digit(ch) or (ch == "." and i + 1 < n and _digit(text[i + 1]) and _number_allowed(tokens)):
            i = _number(text, i, tokens, check_numbers)
            continue
        if _is_ident_start(ch) or ch == "\\":
            i = _ident(text, i, tokens)
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise ParseError("unterminated `name`", source=text, offset=i, found='"`"', expected="a closing `")
            tokens.append(Token(IDENT, text[i : end + 1], text[i + 1 : end], i))
            i = end + 1
            continue
        for sym in _SYMBOLS:
            if text.startswith(sym, i):
                tokens.append(Token(SYMBOL, sym, sym, i))
                i += len(sym)
                break
        else:
            tokens.append(Token(UNKNOWN, ch, ch, i))
            i += 1
    tokens.append(Token(EOF, "", None, n))
    return tokens


def _number_allowed(tokens: list[Token]) -> bool:
    """A leading-dot number (``.5``) only where a value can start, not after ``x`` in ``x.5``."""
    return not tokens or tokens[-1].kind == SYMBOL and tokens[-1].text not in (")", "]", "}")


def _string(text: str, start: int, tokens: list[Token]) -> int:
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            tokens.append(Token(STRING, text[start : i + 1], "".join(out), start))
            return i + 1
        if ch == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "u" and i + 5 < n + 0 and all(c in "0123456789abcdefABCDEF" for c in text[i + 2 : i + 6]) and len(text[i + 2 : i + 6]) == 4:
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            # Unknown escapes keep the backslash: regexes such as "\d" stay as written.
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ParseError(
        "unterminated string", source=text, offset=start, found=f'"{text[start:start + 12]}"', expected=f"a closing {quote}"
    )


def _number(text: str, start: int, tokens: list[Token], check: bool = True) -> int:
    i, n = start, len(text)
    while i < n and _digit(text[i]):
        i += 1
    is_float = False
    if i + 1 < n and text[i] == "." and _digit(text[i + 1]):
        is_float = True
        i += 1
        while i < n and _digit(text[i]):
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and _digit(text[j]):
            is_float = True
            i = j
            while i < n and _digit(text[i]):
                i += 1
    if i < n and _is_ident_start(text[i]):
        # ``5m`` or ``10Gi`` is an identifier-ish word, not a number followed by a name.
        return _ident(text, start, tokens)
    raw = text[start:i]
    value = _number_value(text, start, raw, is_float) if check else None
    tokens.append(Token(NUMBER, raw, value, start))
    return i


def _number_value(text: str, start: int, raw: str, is_float: bool) -> int | float:
    found = f'"{raw[:12]}..."' if len(raw) > 15 else f'"{raw}"'
    if is_float:
        value = float(raw)
        if math.isinf(value):
            raise ParseError(
                "number out of range", source=text, offset=start, found=found,
                expected="a number below 1.8e308",
            )
        return value
    digits = len(raw.lstrip("0")) or 1
    if digits > MAX_INTEGER_DIGITS:
        raise ParseError(
            f"integer too long ({digits} digits)", source=text, offset=start, found=found,
            expected=f"at most {MAX_INTEGER_DIGITS} digits",
        )
    return int(raw.lstrip("0") or "0")  # leading zeros count towards Python's limit too


def _ident(text: str, start: int, tokens: list[Token]) -> int:
    i, n = start, len(text)
    out: list[str] = []
    while i < n:
        ch = text[i]
        if _is_ident_char(ch):
            out.append(ch)
            i += 1
        elif ch == "\\" and i + 1 < n and text[i + 1] == ".":
            out.append(".")
            i += 2
        elif ch in "-/" and i + 1 < n and _is_ident_char(text[i + 1]) and out:
            if ch == "-" and text.startswith("->", i):
                break
            out.append(ch)
            i += 1
        else:
            break
    if not out:
        tokens.append(Token(UNKNOWN, text[start], text[start], start))
        return start + 1
    tokens.append(Token(IDENT, text[start:i], "".join(out), start))
    return i
