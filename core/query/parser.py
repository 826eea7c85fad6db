"""The parser: tokens -> Query AST, by recursive descent.

Every token is either consumed by a grammar rule or reported: the parser never skips input. Errors
are ParseErrors carrying the offending token's offset, the token and what would have been valid.

Grammar (keywords case-insensitive)::

    query      := [IN name ("," name)*] [AT string] statement [";"] EOF
    statement  := MATCH patterns [WHERE expr] tail | CREATE patterns [RETURN ...]
    tail       := RETURN returns | SET sets [RETURN returns] | DELETE names [RETURN returns]
                | CREATE patterns [RETURN returns]
    returns    := [DISTINCT] item ("," item)* [ORDER BY key ("," key)*] {SKIP|OFFSET n, LIMIT n}
    pattern    := node (rel node)*
    node       := "(" [var] [":" kind] [map] ")"
    rel        := "->" | "<-" | "-" "-" | "-" "[" body "]" ("->" | "-") | "<-" "[" body "]" "-"
    expr       := and (OR and)*          and := not ((AND | ",") not)*     not := NOT not | cmp
    cmp        := add [op add | IS [NOT] NULL | [NOT] IN add | STARTS WITH add | ENDS WITH add]
    add        := unary (("+" | "-") unary)*
    primary    := literal | list | map | "(" expr ")" | sub-pattern | func "(" args ")"
                | AGG "{" [DISTINCT] expr "}" | AGG "(" [DISTINCT] expr ")" | var | var.path
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from tessera.core.errors import ParseError
from tessera.core.query import ast
from tessera.core.query.lexer import EOF, IDENT, NUMBER, STRING, SYMBOL, Token, tokenize

AGGREGATES = ("count", "sum", "avg", "min", "max", "collect")
_CLAUSE_WORDS = {"MATCH", "WHERE", "RETURN", "SET", "DELETE", "CREATE", "ORDER", "SKIP", "OFFSET", "LIMIT"}
_COMPARISON_SYMBOLS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "=~": "=~"}
# How deep parentheses, lists, maps, function calls and NOTs may nest. The parser (and the evaluator
# after it) recurse once per level, about nine Python frames for a parenthesis; 64 levels stays far
# below Python's recursion limit from any caller (CLI, shell, dashboard, tests) while no query a
# person writes comes near it. Checked while parsing, before anything is fetched.
MAX_NESTING = 64


def parse(text: str) -> ast.Query:
    """Parse one query.

    Args:
        text: the query text (comments and a trailing ``;`` allowed).
    Returns:
        the Query AST.
    Raises:
        ParseError with line, column, the offending token and what was expected.
    """
    return _Parser(text).query()


def parse_expression(text: str) -> ast.Expr:
    """Parse one expression alone, as WHERE takes it (a job's alert condition, docs/jobs.md).

    Raises:
        ParseError with the offset of the offending token and what was expected there.
    """
    parser = _Parser(text)
    parser.in_where = True
    if parser.tok.kind == EOF:
        raise parser.error("a condition")
    expr = parser.expr()
    if parser.tok.kind != EOF:
        raise parser.error("an operator, AND, OR or the end")
    return expr


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.in_where = False
        self.depth = 0

    # --- token helpers ---------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def is_sym(self, sym: str, tok: Token | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == SYMBOL and tok.text == sym

    def is_word(self, word: str, tok: Token | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == IDENT and tok.text.upper() == word

    def error(self, expected: str, tok: Token | None = None, message: str = "") -> ParseError:
        tok = tok or self.tok
        return ParseError(message, source=self.text, offset=tok.pos, found=tok.shown(), expected=expected)

    def fail_at(self, message: str, tok: Token) -> ParseError:
        return ParseError(message, source=self.text, offset=tok.pos, found=tok.shown(), expected="")

    def expect_sym(self, sym: str, expected: str | None = None) -> Token:
        if not self.is_sym(sym):
            raise self.error(expected or sym)
        return self.advance()

    def expect_word(self, word: str) -> Token:
        if not self.is_word(word):
            raise self.error(word)
        return self.advance()

    def accept_word(self, word: str) -> bool:
        if self.is_word(word):
            self.advance()
            return True
        return False

    def ident(self, expected: str = "identifier") -> Token:
        if self.tok.kind != IDENT:
            raise self.error(expected)
        return self.advance()

    @contextmanager
    def nested(self) -> Iterator[None]:
        """One more level of nesting at the current token; too many is a ParseError there."""
        if self.depth >= MAX_NESTING:
            raise self.fail_at(
                f"nesting too deep: more than {MAX_NESTING} levels of parentheses, lists, maps or NOT",
                self.tok,
            )
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def slice_from(self, start: Token) -> str:
        """Source text from ``start`` to the end of the last consumed token."""
        last = self.tokens[self.i - 1]
        return self.text[start.pos : last.pos + len(last.text)]

    # --- statement -------------------------------------------------------------------------

    def query(self) -> ast.Query:
        fields: dict = {}
        if self.is_word("IN") and self.peek().kind == IDENT:
            self.advance()
            contexts = [self._context_name()]
            while self.is_sym(","):
                self.advance()
                contexts.append(self._context_name())
            fields["contexts"] = tuple(contexts)
        if self.is_word("AT") and self.peek().kind == STRING:
            self.advance()
            fields["at"] = self.advance().value
        if self.is_word("MATCH"):
            self.advance()
            fields["match"] = self.patterns(context="MATCH")
            if self.accept_word("WHERE"):
                self.in_where = True
                fields["where"] = self.expr()
                self.in_where = False
                self._check_subpatterns(fields["where"], fields["match"])
            self._tail(fields)
        elif self.is_word("CREATE"):
            self.advance()
            fields["create"] = self.patterns(context="CREATE")
            if self.is_word("DELETE"):
                raise self.fail_at("DELETE can only follow MATCH", self.tok)
            if self.accept_word("RETURN"):
                self._returns(fields)
        else:
            raise self.error("MATCH or CREATE" + ("" if "contexts" in fields else " (or IN context)"))
        if self.is_sym(";"):
            self.advance()
            if self.tok.kind != EOF:
                raise self.error("end of query", message="one statement per query")
        if self.tok.kind != EOF:
            raise self.error(self._after_hint(fields))
        return ast.Query(**fields)

    def _check_subpatterns(self, where: ast.Expr, match: tuple[ast.PathPattern, ...]) -> None:
        """A WHERE sub-pattern hangs off exactly one MATCH variable, written bare: ``(d)->(:Kind)``."""
        bound = {n.var for p in match for n in p.nodes if n.var}
        for pred in ast.pattern_predicates(where):
            nodes = pred.pattern.nodes
            refs = [n for n in nodes if n.var in bound]
            if len(refs) != 1:
                found = f", found {len(refs)}" if refs else ""
                raise self._fail_pos(f"pattern must reference exactly one variable from the MATCH clause{found}", pred.pos)
            ref = refs[0]
            if ref.kind:
                raise self._fail_pos("reference node cannot have a kind; write the bare variable, e.g. (d)", ref.pos)
            if ref.props is not None:
                raise self._fail_pos("reference node cannot have properties; filter it in WHERE instead", ref.pos)
            for n in nodes:
                if n is not ref and n.var:
                    raise self._fail_pos(
                        f"node '{n.var}' in WHERE pattern must not specify a variable name; write (:Kind)", n.pos
                    )

    def _fail_pos(self, message: str, pos: int) -> ParseError:
        tok = next((t for t in self.tokens if t.pos == pos), self.tok)
        return self.fail_at(message, tok)

    def _after_hint(self, fields: dict) -> str:
        if fields.get("returns"):
            return "a comma, ORDER BY, SKIP, LIMIT or end of query"
        return "end of query"

    def _context_name(self) -> str:
        start = self.ident("context name")
        name = start.value
        # Context names may contain dots and colons (arn:aws:eks:...:cluster/x, gke_p_z_c).
        while (self.is_sym(".") or self.is_sym(":")) and self.peek().kind in (IDENT, NUMBER):
            if self.tokens[self.i].pos != self.tokens[self.i - 1].pos + len(self.tokens[self.i - 1].text):
                break
            self.advance()
            name += self.tokens[self.i - 1].text + str(self.advance().text)
        return str(name)

    def _tail(self, fields: dict) -> None:
        if self.accept_word("RETURN"):
            self._returns(fields)
        elif self.accept_word("SET"):
            fields["set"] = self._sets()
            if self.accept_word("RETURN"):
                self._returns(fields)
        elif self.accept_word("DELETE"):
            names = [self.ident("variable to delete").value]
            while self.is_sym(","):
                self.advance()
                names.append(self.ident("variable to delete").value)
            fields["delete"] = tuple(names)
            if self.accept_word("RETURN"):
                self._returns(fields)
        elif self.accept_word("CREATE"):
            fields["create"] = self.patterns(context="CREATE")
            if self.accept_word("RETURN"):
                self._returns(fields)
        else:
            expected = "RETURN, SET, DELETE or CREATE" if "where" in fields else "WHERE, RETURN, SET, DELETE or CREATE"
            raise self.error(expected, message="incomplete query")

    def _sets(self) -> tuple[ast.SetItem, ...]:
        items = []
        while True:
            start = self.tok
            target = self.primary()
            if not isinstance(target, ast.Property):
                raise self.error("a property such as d.spec.replicas", tok=start)
            self.expect_sym("=")
            items.append(ast.SetItem(target, self.additive(), pos=start.pos))
            if not self.is_sym(","):
                return tuple(items)
            self.advance()

    def _returns(self, fields: dict) -> None:
        if self.accept_word("DISTINCT"):
            fields["distinct"] = True
        items = [self._return_item()]
        while self.is_sym(","):
            self.advance()
            items.append(self._return_item())
        fields["returns"] = tuple(items)
        seen: set[str] = set()
        while True:
            if self.is_word("ORDER") and "order" not in seen:
                self.advance()
                self.expect_word("BY")
                fields["order_by"] = self._order_keys()
                seen.add("order")
            elif (self.is_word("SKIP") or self.is_word("OFFSET")) and "skip" not in seen:
                self.advance()
                fields["skip"] = self._count("SKIP")
                seen.add("skip")
            elif self.is_word("LIMIT") and "limit" not in seen:
                self.advance()
                fields["limit"] = self._count("LIMIT")
                seen.add("limit")
            else:
                return

    def _count(self, clause: str) -> int:
        tok = self.tok
        if tok.kind != NUMBER or not isinstance(tok.value, int):
            raise self.error(f"a whole number after {clause}")
        return int(self.advance().value)

    def _return_item(self) -> ast.ReturnItem:
        start = self.tok
        if self.tok.kind == EOF or self.is_sym(";"):
            raise self.error("an expression to return")
        expr = self.expr()
        text = self.slice_from(start)
        alias = None
        if self.accept_word("AS"):
            alias = self.ident("a name after AS").value
        return ast.ReturnItem(expr, alias, text, pos=start.pos)

    def _order_keys(self) -> tuple[ast.OrderItem, ...]:
        keys = []
        while True:
            start = self.tok
            expr = self.additive()
            text = self.slice_from(start)
            descending = False
            if self.is_word("DESC") or self.is_word("DESCENDING"):
                self.advance()
                descending = True
            elif self.is_word("ASC") or self.is_word("ASCENDING"):
                self.advance()
            keys.append(ast.OrderItem(expr, descending, text, pos=start.pos))
            if not self.is_sym(","):
                return tuple(keys)
            self.advance()

    # --- patterns --------------------------------------------------------------------------

    def patterns(self, context: str) -> tuple[ast.PathPattern, ...]:
        paths = [self.path(context)]
        while self.is_sym(","):
            self.advance()
            paths.append(self.path(context))
        return tuple(paths)

    def path(self, context: str) -> ast.PathPattern:
        start = self.tok
        path = self._chain(self.node(), start)
        if context == "MATCH" and not path.rels and path.nodes[0].var is None:
            raise self.fail_at("standalone anonymous nodes are not allowed; name the node, e.g. (p:Pod)", start)
        return path

    def _chain(self, first: ast.NodePattern, start: Token) -> ast.PathPattern:
        """The relationships and nodes that follow ``first``, as one path."""
        nodes, rels = [first], []
        while True:
            rel = self.rel()
            if rel is None:
                break
            rels.append(rel)
            nodes.append(self.node())
        return ast.PathPattern(tuple(nodes), tuple(rels), pos=start.pos)

    def node(self) -> ast.NodePattern:
        start = self.expect_sym("(")
        var = kind = props = None
        if self.tok.kind == IDENT:
            var = self.advance().value
        if self.is_sym(":"):
            self.advance()
            kind = self._kind_name()
        if self.is_sym("{"):
            props = self.map_literal()
        expected = ")" if props is not None else (") or {" if kind else ":, { or )")
        if var is None and kind is None and props is None:
            expected = "a variable, :Kind or )"
        self.expect_sym(")", expected)
        return ast.NodePattern(var, kind, props, pos=start.pos)

    def _kind_name(self) -> str:
        name = self.ident("kind identifier").value
        while self.is_sym(".") and self.peek().kind == IDENT:
            self.advance()
            name += "." + self.advance().value
        return str(name)

    def rel(self) -> ast.RelPattern | None:
        tok = self.tok
        if self.is_sym("->"):
            self.advance()
            return ast.RelPattern("right", pos=tok.pos)
        if self.is_sym("<-"):
            self.advance()
            if self.is_sym("["):
                var, rtype, props = self._rel_body()
                self.expect_sym("-", "- after ]")
                return ast.RelPattern("left", var, rtype, props, pos=tok.pos)
            if self.is_sym("-"):
                self.advance()
            return ast.RelPattern("left", pos=tok.pos)
        if self.is_sym("-"):
            self.advance()
            if self.is_sym("-"):
                self.advance()
                return ast.RelPattern("both", pos=tok.pos)
            if self.is_sym("->"):
                self.advance()
                return ast.RelPattern("right", pos=tok.pos)
            if self.is_sym("["):
                var, rtype, props = self._rel_body()
                if self.is_sym("->"):
                    self.advance()
                    return ast.RelPattern("right", var, rtype, props, pos=tok.pos)
                self.expect_sym("-", "-> or - after ]")
                return ast.RelPattern("both", var, rtype, props, pos=tok.pos)
            raise self.error("[, - or > to complete the relationship")
        if self.is_sym("<") or self.is_sym(">"):
            raise self.error("->, <-, -- or -[...]->", message="unexpected relationship token")
        return None

    def _rel_body(self) -> tuple[str | None, str | None, ast.MapLiteral | None]:
        self.expect_sym("[")
        var = rtype = props = None
        if self.tok.kind == IDENT:
            var = self.advance().value
        if self.is_sym(":"):
            self.advance()
            rtype = self.ident("relationship type").value
        if self.is_sym("{"):
            props = self.map_literal()
        self.expect_sym("]", "]" if props is not None else ":, { or ]")
        return var, rtype, props

    # --- literals --------------------------------------------------------------------------

    def map_literal(self) -> ast.MapLiteral:
        with self.nested():
            return self._map_literal()

    def _map_literal(self) -> ast.MapLiteral:
        start = self.expect_sym("{")
        items: list[tuple[str, ast.Expr]] = []
        is_open = False
        if not self.is_sym("}"):
            while True:
                if self._ellipsis():
                    is_open = True
                    break
                if self.tok.kind not in (IDENT, STRING):
                    raise self.error("a key (name or \"quoted\")")
                key = str(self.advance().value)
                self.expect_sym(":")
                items.append((key, self.value_literal()))
                if not self.is_sym(","):
                    break
                self.advance()
        self.expect_sym("}", ", or }")
        return ast.MapLiteral(tuple(items), pos=start.pos, open=is_open)

    def _ellipsis(self) -> bool:
        """A ``...`` placeholder (three adjacent dots) closing a map."""
        dots = self.tokens[self.i : self.i + 3]
        if len(dots) == 3 and all(self.is_sym(".", t) for t in dots) and self.is_sym("}", self.peek(3)):
            if dots[2].pos - dots[0].pos == 2:
                self.i += 3
                return True
        return False

    def value_literal(self) -> ast.Expr:
        tok = self.tok
        if tok.kind in (STRING, NUMBER):
            self.advance()
            return ast.Literal(tok.value, pos=tok.pos)
        if self.is_sym("-") and self.peek().kind == NUMBER:
            self.advance()
            num = self.advance()
            return ast.Literal(-num.value, pos=tok.pos)  # type: ignore[operator]
        if tok.kind == IDENT and tok.text.upper() in ("TRUE", "FALSE", "NULL"):
            self.advance()
            return ast.Literal({"TRUE": True, "FALSE": False, "NULL": None}[tok.text.upper()], pos=tok.pos)
        if self.is_sym("["):
            return self.list_literal(self.value_literal)
        if self.is_sym("{"):
            return self.map_literal()
        raise self.error("value")

    def list_literal(self, item) -> ast.ListLiteral:
        with self.nested():
            return self._list_literal(item)

    def _list_literal(self, item) -> ast.ListLiteral:
        start = self.expect_sym("[")
        items = []
        saved, self.in_where = self.in_where, False  # commas here separate items, not conditions
        if not self.is_sym("]"):
            while True:
                items.append(item())
                if not self.is_sym(","):
                    break
                self.advance()
        self.in_where = saved
        self.expect_sym("]", ", or ]")
        return ast.ListLiteral(tuple(items), pos=start.pos)

    # --- expressions -----------------------------------------------------------------------

    def expr(self) -> ast.Expr:
        start = self.tok
        items = [self.and_expr()]
        while self.is_word("OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else ast.Or(tuple(items), pos=start.pos)

    def and_expr(self) -> ast.Expr:
        start = self.tok
        items = [self.not_expr()]
        while self.is_word("AND") or (self.in_where and self.is_sym(",")):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else ast.And(tuple(items), pos=start.pos)

    def not_expr(self) -> ast.Expr:
        if self.is_word("NOT"):
            with self.nested():
                tok = self.advance()
                return ast.Not(self.not_expr(), pos=tok.pos)
        return self.comparison()

    def comparison(self) -> ast.Expr:
        start = self.tok
        left = self.additive()
        tok = self.tok
        if tok.kind == SYMBOL and tok.text in _COMPARISON_SYMBOLS:
            self.advance()
            return ast.Comparison(_COMPARISON_SYMBOLS[tok.text], left, self.additive(), pos=start.pos)
        if tok.kind == IDENT:
            word = tok.text.upper()
            if word == "IS":
                self.advance()
                negated = self.accept_word("NOT")
                self.expect_word("NULL")
                return ast.IsNull(left, negated, pos=start.pos)
            if word == "CONTAINS":
                self.advance()
                return ast.Comparison("CONTAINS", left, self.additive(), pos=start.pos)
            if word in ("STARTS", "ENDS"):
                self.advance()
                self.expect_word("WITH")
                return ast.Comparison(f"{word}_WITH", left, self.additive(), pos=start.pos)
            if word == "IN":
                self.advance()
                return ast.Comparison("IN", left, self.additive(), pos=start.pos)
            if word == "NOT" and self.is_word("IN", self.peek()):
                self.advance()
                self.advance()
                return ast.Not(ast.Comparison("IN", left, self.additive(), pos=start.pos), pos=start.pos)
        if tok.kind not in (EOF,) and self.in_where and not self._ends_condition(tok):
            raise self.error("operator")
        return left

    def _ends_condition(self, tok: Token) -> bool:
        if tok.kind == SYMBOL:
            return tok.text in (",", ")", ";", "}", "]")
        return tok.kind == IDENT and tok.text.upper() in _CLAUSE_WORDS | {"AND", "OR", "AS"}

    def additive(self) -> ast.Expr:
        start = self.tok
        left = self.unary()
        while self.is_sym("+") or self.is_sym("-"):
            op = self.advance().text
            left = ast.Binary(op, left, self.unary(), pos=start.pos)
        return left

    def unary(self) -> ast.Expr:
        if self.is_sym("-") and self.peek().kind == NUMBER:
            tok = self.advance()
            num = self.advance()
            return ast.Literal(-num.value, pos=tok.pos)  # type: ignore[operator]
        return self.primary()

    def primary(self) -> ast.Expr:
        tok = self.tok
        if tok.kind in (STRING, NUMBER):
            self.advance()
            return ast.Literal(tok.value, pos=tok.pos)
        if self.is_sym("["):
            return self.list_literal(self.expr)
        if self.is_sym("{"):
            return self.map_literal()
        if self.is_sym("("):
            with self.nested():
                return self._paren_or_pattern()
        if tok.kind != IDENT:
            raise self.error("value")
        word = tok.text.upper()
        if word in ("TRUE", "FALSE", "NULL"):
            self.advance()
            return ast.Literal({"TRUE": True, "FALSE": False, "NULL": None}[word], pos=tok.pos)
        nxt = self.peek()
        if word.lower() in AGGREGATES and (self.is_sym("{", nxt) or self.is_sym("(", nxt)):
            with self.nested():
                return self._aggregate()
        if self.is_sym("(", nxt):
            with self.nested():
                return self._function()
        if word in _CLAUSE_WORDS and not self.is_sym(".", nxt):
            raise self.error("value")
        self.advance()
        if self.is_sym(".") and self._adjacent(tok):
            return self._property(tok)
        return ast.Variable(str(tok.value), pos=tok.pos)

    def _adjacent(self, prev: Token) -> bool:
        return self.tok.pos == prev.pos + len(prev.text)

    def _property(self, var_tok: Token) -> ast.Property:
        segments: list[ast.Segment] = []
        while True:
            if self.is_sym("."):
                self.advance()
                if self.tok.kind not in (IDENT, NUMBER) or not self._adjacent(self.tokens[self.i - 1]):
                    raise self.error("a field name after .")
                seg = self.advance()
                segments.append(ast.Key(str(seg.value if seg.kind == IDENT else seg.text)))
            elif self.is_sym("[") and self._adjacent(self.tokens[self.i - 1]):
                self.advance()
                if self.is_sym("*"):
                    self.advance()
                    segments.append(ast.Wildcard())
                elif self.is_sym("]"):
                    segments.append(ast.Wildcard())
                elif self.tok.kind == NUMBER and isinstance(self.tok.value, int):
                    segments.append(ast.Index(int(self.advance().value)))
                elif self.is_sym("-") and self.peek().kind == NUMBER and isinstance(self.peek().value, int):
                    self.advance()
                    segments.append(ast.Index(-int(self.advance().value)))
                else:
                    raise self.error("number or * in array index")
                self.expect_sym("]")
            else:
                break
        text = self.slice_from(var_tok)
        return ast.Property(str(var_tok.value), tuple(segments), text, pos=var_tok.pos)

    def _aggregate(self) -> ast.Aggregate:
        name = self.advance()
        braces = self.is_sym("{")
        close = "}" if braces else ")"
        self.advance()
        distinct = self.accept_word("DISTINCT")
        if name.text.lower() == "count" and self.is_sym("*") and not braces:
            star = self.advance()
            arg: ast.Expr = ast.Literal("*", pos=star.pos)
        else:
            arg = self.additive()
        self.expect_sym(close)
        return ast.Aggregate(name.text.lower(), arg, distinct, braces, pos=name.pos)

    def _function(self) -> ast.FunctionCall:
        name = self.advance()
        self.expect_sym("(")
        args = []
        if not self.is_sym(")"):
            while True:
                args.append(self.additive())
                if not self.is_sym(","):
                    break
                self.advance()
        self.expect_sym(")", ", or )")
        return ast.FunctionCall(name.text.lower(), tuple(args), pos=name.pos)

    def _paren_or_pattern(self) -> ast.Expr:
        """``(expr)`` or a sub-pattern ``(d)->(:Kind)``; a pattern needs a relationship after the node."""
        start_index = self.i
        start = self.tok
        try:
            node = self.node()
            is_pattern = self.is_sym("->") or self.is_sym("<-") or self.is_sym("-")
        except ParseError:
            is_pattern = False
        if is_pattern:
            return ast.PatternPredicate(self._chain(node, start), pos=start.pos)
        self.i = start_index
        self.advance()
        saved, self.in_where = self.in_where, False
        inner = self.expr()
        self.in_where = saved
        self.expect_sym(")", ") or an operator")
        return inner
