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

An unbalanced quote or parenthesis is refused here; a misplaced operator (``web AND``) by FTS5,
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
    column names, ``*`` or what NOT excludes)."""

    fts: str
    words: str


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
        return ParsedSearch(" ".join(self.fts), " ".join(self.words))

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
        self.fts.append(_quoted(words) + ("*" if prefix else ""))
        self.semantic(words)

    def semantic(self, words: str) -> None:
        if self.skip_depth is not None:
            return
        if self.skip_next:
            self.skip_next = False
            return
        self.words.append(words)

    def open_group(self) -> None:
        self.fts.append("(")
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
                self.fts.append(f"NEAR({' '.join(inner)}, {distance.group(1)})")
                return
            ch = self.text[self.i]
            if ch == ")":
                self.i += 1
                self.fts.append(f"NEAR({' '.join(inner)})")
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
            self.fts.append(column.group(1).lower() + ":")
            self.i = column.end()
            return
        end = self.i
        while end < len(text) and not text[end].isspace() and text[end] != '"':
            end += 1
        # ')' at the end of a word closes a group when one is open ("(web OR api)"); otherwise
        # it is part of the word ("f(x)")
        closing = 0
        while end - closing > self.i and text[end - closing - 1] == ")" and closing < len(opened):
            closing += 1
        word = text[self.i:end - closing]
        self.i = end - closing
        if word in OPERATORS:
            self.fts.append(word)
            if word == "NOT":
                self.skip_next = True
            return
        if word.endswith("*") and _has_token(word):
            self.term(word.rstrip("*"), prefix=True)
        elif _has_token(word):
            self.term(word)
