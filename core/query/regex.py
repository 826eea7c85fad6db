"""``=~``: regular-expression search in time linear in the text, with RE2 (google-re2).

Python's ``re`` backtracks, so ``"^(a+)+$"`` against 32 ``a`` and a ``!`` would run for hours;
RE2 never backtracks. RE2 syntax is also what Cyphernetes uses (Go's ``regexp``). Where it
differs from Python's ``re`` (docs/language.md, "Regular expressions"):

- no backreferences (``\\1``), lookahead or lookbehind (``(?=``, ``(?!``, ``(?<=``, ``(?<!``),
  possessive or atomic groups: these are refused with a one-line error saying so;
- ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only (``\\p{L}``, ``\\p{N}`` match Unicode);
- ``\\Z`` is spelt ``\\z``; ``$`` without ``(?m)`` matches only at the very end.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tessera.core.errors import QueryError

_SYNTAX_HINT = "=~ takes RE2 syntax, as Go and Cyphernetes do; see docs/language.md"


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (Go's MatchString, as Cyphernetes).

    Raises:
        QueryError: the pattern is not valid RE2 syntax (one line, with how to fix it).
    """
    compiled = _compile(pattern)
    try:
        return compiled.search(text) is not None
    except UnicodeEncodeError:
        # A lone surrogate in resource data (JSON allows "\ud800") cannot be encoded for RE2;
        # it is matched as U+FFFD instead of failing the query.
        return compiled.search(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) is not None


def check_pattern(pattern: str) -> None:
    """Raise the QueryError ``search`` would raise for ``pattern``, without searching anything."""
    _compile(pattern)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    import re2  # imported here: only queries using =~ pay for it

    options = re2.Options()
    options.log_errors = False  # RE2 would also log each bad pattern to stderr
    options.never_capture = True  # =~ only asks whether it matches
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        raise _invalid(pattern, exc.args[0] if exc.args else b"") from None
    except UnicodeEncodeError:
        raise QueryError(
            f"invalid regular expression '{_printable(pattern)}': it contains a lone surrogate",
            hint="write the character itself, or \\x{...} for a code point",
        ) from None


def _invalid(pattern: str, raw: bytes | str) -> QueryError:
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    reason, _, fragment = detail.partition(": ")
    shown = f"{reason} '{_printable(fragment)}'" if fragment else reason
    return QueryError(f"invalid regular expression '{_printable(pattern)}': {shown}", hint=_hint(reason, fragment))


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so the message stays on one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _hint(reason: str, fragment: str) -> str:
    if reason == "invalid perl operator" and fragment.startswith(("(?=", "(?!", "(?<=", "(?<!")):
        return "RE2 syntax has no lookahead or lookbehind: combine two conditions with AND / NOT"
    if reason == "invalid perl operator" and fragment.startswith("(?P="):
        return "RE2 syntax has no backreferences such as (?P=name)"
    if reason == "invalid perl operator" and fragment.startswith("(?>"):
        return "RE2 syntax has no atomic groups; RE2 never backtracks anyway"
    if reason == "invalid escape sequence" and fragment[1:2].isdigit():
        return "RE2 syntax has no backreferences such as \\1"
    if reason == "invalid escape sequence" and fragment.startswith("\\Z"):
        return "RE2 syntax writes the end of the text as \\z"
    if reason == "invalid escape sequence" and fragment.startswith("\\u"):
        return "RE2 syntax writes a code point as \\x{263a}"
    if reason == "bad repetition operator" and fragment.endswith("+"):
        return "RE2 syntax has no possessive quantifiers such as a++; RE2 never backtracks anyway"
    if reason.startswith("pattern too large"):
        return "the pattern is too large for RE2: simplify it or split it into several conditions"
    return _SYNTAX_HINT
