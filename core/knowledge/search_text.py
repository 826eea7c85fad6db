"""What the user typed to ``tessera search``, made into an FTS5 query and into the words the
semantic ranking embeds (docs/knowledge.md, "Searching").

The text is FTS5 query syntax where it uses syntax, and plain words everywhere else, so plain
text never makes FTS5 fail:

- ``"a phrase"`` (``""`` inside is a quote), ``word*`` / ``"a phras"*`` prefixes, ``AND``, ``OR``,
  ``NOT`` (upper case, as FTS5 has them: ``and`` is a word), ``NEAR(a b, 10)``, parentheses, and
  column filters ``title:``, ``heading:``, ``text:``, ``path:`` are passed on as syntax;
- every other run of characters is a word and is quoted (``crash-loop`` -> ``"crash-loop"``,
  which FTS5's tokenizer makes the phrase "crash loop"; ``deployment/web``, ``kube-proxy``,
  ``app.kubernetes.io/name``, ``don't`` likewise); a run of punctuation only is left out.

Plain text of several terms must all be in a chunk (FTS5's implicit AND); ``terms`` lets the
ranking add chunks holding some of them when fewer chunks hold them all. An unbalanced quote or
parenthesis is refused here; a misplaced operator (``web AND``) by FTS5,
whose message core/knowledge/search.py turns into the same one-line QueryError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tessera.core.errors import QueryError, printable

COLUMNS = ("title", "heading", "text", "path")
OPERATORS = ("AND", "OR", "NOT")
SYNTAX_HINT = ('operators are AND, OR, NOT between two terms, NEAR(a b, 10), "a phrase", word*, '
               '( ), title:/heading:/text:/path:word; put an operator in quotes to search for the word')

_COLUMN_PREFIX = re.compile(r"(?i)(title|heading|text|path):")
_NEAR_DISTANCE = re.compile(r"\s*,\s*(\d+)\s*\)")


@dataclass(frozen=True)
class ParsedSearch:
    """``fts``: the FTS5 MATCH expression (``""`` when the text has no word to match);
    ``words``: the text the semantic ranking embeds (phrases and words, without operators,
    column names, ``*`` or what NOT excludes); ``terms``: for plain text of several terms (no
    operator, group, NEAR or column filter), each term as FTS5 syntax, for the ranking to fall
    back on chunks holding some of them when too few hold them all (empty otherwise)."""

    fts: str
    words: str
    terms: tuple[str, ...] = ()


def parse(text: str) -> ParsedSearch:
    """The FTS5 expression and the semantic words for ``text`` (see the module docstring).

    Raises:
        QueryError for an unbalanced quote or parenthesis, naming where it starts.
    """
    return _Parser(text).run()


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _has_token(word: str) -> bool:
    """Whether FTS5's unicode61 tokenizer finds a token in ``word`` (letters, digits, marks)."""
    return any(ch.isalnum() for ch in word)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.fts: list[str] = []
        self.words: list[str] = []
        self.depth = 0
        self.skip_next = False  # the term after NOT: kept out of the semantic words
        self.skip_depth: int | None = None  # inside a NOT ( ... ) group
        self.plain = True  # no syntax but phrases and prefixes: the terms may be relaxed to OR

    def fail(self, what: str, at: int) -> QueryError:
        return QueryError(f"bad search text '{printable(self.text)}': {what} (at character {at + 1})",
                          hint=SYNTAX_HINT)

    def run(self) -> ParsedSearch:
        text = self.text
        opened: list[int] = []
        while self.i < len(text):
            ch = text[self.i]
            if ch.isspace():
                self.i += 1
            elif ch == '"':
                self.term(self.phrase())
            elif ch == "(":
                opened.append(self.i)
                self.open_group()
                self.i += 1
            elif ch == ")":
                if not opened:
                    raise self.fail("')' without '('", self.i)
                opened.pop()
                self.close_group()
                self.i += 1
            elif text.startswith("NEAR(", self.i):
                self.near()
            else:
                self.word(opened)
        if opened:
            raise self.fail("'(' not closed", opened[-1])
        terms = tuple(dict.fromkeys(t for t in self.fts if t != "AND"))
        return ParsedSearch(" ".join(self.fts), " ".join(self.words), terms if self.plain and len(terms) > 1 else ())

    def phrase(self) -> str:
        """The phrase starting at the quote under the cursor, its doubled quotes undone."""
        start = self.i
        self.i += 1
        parts: list[str] = []
        while True:
            end = self.text.find('"', self.i)
            if end < 0:
                raise self.fail("quote not closed", start)
            parts.append(self.text[self.i:end])
            if self.text.startswith('""', end):
                parts.append('"')
                self.i = end + 2
                continue
            self.i = end + 1
            return "".join(parts)

    def term(self, words: str, *, prefix: bool = False) -> None:
        """One phrase (FTS5-quoted), ``*`` after it for a prefix (also written straight after a
        closing quote)."""
        if self.text.startswith("*", self.i):
            self.i += 1
            prefix = True
        if not _has_token(words):  # "" or "--": nothing FTS5 would match
            return
        self.operand(_quoted(words) + ("*" if prefix else ""))
        self.semantic(words)

    def operand(self, token: str) -> None:
        """Emit the start of an operand (a phrase, ``(``, NEAR(...), a column filter), with an
        explicit AND after a previous operand: FTS5 reads ``a b`` as ``a AND b`` but refuses
        ``a (b)`` (KEP titles are full of "Name (ABBR)")."""
        if self.fts and (self.fts[-1] == ")" or self.fts[-1].endswith(('"', '*', ')'))) and self.fts[-1] not in OPERATORS:
            self.fts.append("AND")
        self.fts.append(token)

    def semantic(self, words: str) -> None:
        if self.skip_depth is not None:
            return
        if self.skip_next:
            self.skip_next = False
            return
        self.words.append(words)

    def open_group(self) -> None:
        self.plain = False
        self.operand("(")
        self.depth += 1
        if self.skip_next and self.skip_depth is None:
            self.skip_next, self.skip_depth = False, self.depth

    def close_group(self) -> None:
        self.fts.append(")")
        if self.skip_depth == self.depth:
            self.skip_depth = None
        self.depth -= 1

    def near(self) -> None:
        """``NEAR(term term ..., N)``: the terms quoted, the distance kept."""
        self.plain = False
        start = self.i
        self.i += len("NEAR(")
        inner: list[str] = []
        while True:
            while self.i < len(self.text) and self.text[self.i].isspace():
                self.i += 1
            if self.i >= len(self.text):
                raise self.fail("NEAR( not closed", start)
            distance = _NEAR_DISTANCE.match(self.text, self.i)
            if distance:
                self.i = distance.end()
                self.operand(f"NEAR({' '.join(inner)}, {distance.group(1)})")
                return
            ch = self.text[self.i]
            if ch == ")":
                self.i += 1
                self.operand(f"NEAR({' '.join(inner)})")
                return
            if ch == '"':
                words = self.phrase()
            else:
                end = self.i
                while end < len(self.text) and not self.text[end].isspace() and self.text[end] not in '"),':
                    end += 1
                if end == self.i:  # a stray comma
                    raise self.fail("NEAR( takes terms, then optionally ', N)'", self.i)
                words = self.text[self.i:end]
                self.i = end
            prefix = self.text.startswith("*", self.i) or words.endswith("*")
            if self.text.startswith("*", self.i):
                self.i += 1
            words = words.rstrip("*")
            if _has_token(words):
                inner.append(_quoted(words) + ("*" if prefix else ""))
                self.semantic(words)

    def word(self, opened: list[int]) -> None:
        """A bare run of characters: an operator, a column filter, a prefix or a plain word."""
        text = self.text
        column = _COLUMN_PREFIX.match(text, self.i)
        if column:  # the filter applies to what follows: a word, a "phrase" or a ( group )
            self.plain = False
            self.operand(column.group(1).lower() + ":")
            self.i = column.end()
            return
        # The word ends at a space or a quote, or at a ')' that closes an open group ("(web OR
        # api)", "(i.e. roll back)?"); a ')' matching a '(' inside the word is the word's ("f(x)").
        end, inner = self.i, 0
        while end < len(text) and not text[end].isspace() and text[end] != '"':
            if text[end] == "(":
                inner += 1
            elif text[end] == ")":
                if inner == 0 and opened:
                    break
                inner = max(0, inner - 1)
            end += 1
        word = text[self.i:end]
        self.i = end
        if word in OPERATORS:
            self.plain = False
            self.fts.append(word)
            if word == "NOT":
                self.skip_next = True
            return
        if word.endswith("*") and _has_token(word):
            self.term(word.rstrip("*"), prefix=True)
        elif _has_token(word):
            self.term(word)
