"""GBNF-like grammars (llama.cpp's syntax) -> grammar (ir.py).

    root   ::= object
    object ::= "{" ws ( pair ( "," ws pair )* )? "}"
    pair   ::= string ":" ws value          # comments run to the end of the line
    ws     ::= [ \\t\\n]{0,4}

Rules are `name ::= alternatives`; an expression is a sequence of literals ("..." with \\n \\t
\\r \\\\ \\" \\xHH \\uHHHH \\UHHHHHHHH escapes), character classes ([a-z], [^"\\\\]), `.` (any
character), rule names, `( ... )` groups, and the postfix `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`.
The start rule is `root`. Left recursion is refused (automaton.py), as llama.cpp does.
"""
from __future__ import annotations

from .errors import ConstraintError
from .ir import MAX_CHAR, Chars, Expr, Grammar, Ref, Repeat, alt, negate, norm, seq

_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "^": "^",
        "0": "\0", "/": "/", "'": "'"}


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0

    def fail(self, what: str) -> ConstraintError:
        line = self.s.count("\n", 0, self.i) + 1
        return ConstraintError(f"grammar: {what} (line {line}).",
                               "Check the grammar's syntax: `name ::= alternatives`, literals in double quotes, "
                               "character classes in brackets.", param="grammar", keyword="syntax")

    def skip(self, newlines: bool = True) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            elif c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            else:
                break

    def name(self) -> str:
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] in "-_"):
            j += 1
        if j == self.i:
            raise self.fail(f"expected a rule name at {self.s[self.i:self.i + 10]!r}")
        n, self.i = self.s[self.i:j], j
        return n

    def grammar(self) -> Grammar:
        rules: dict[str, Expr] = {}
        self.skip()
        while self.i < len(self.s):
            name = self.name()
            self.skip()
            if not self.s.startswith("::=", self.i):
                raise self.fail(f"expected '::=' after {name!r}")
            self.i += 3
            if name in rules:
                raise self.fail(f"rule {name!r} is defined twice")
            rules[name] = self.alternatives()
            self.skip()
        if "root" not in rules:
            raise ConstraintError("grammar: there is no `root` rule.", "Name the start rule `root`.",
                                  param="grammar", keyword="root")
        return Grammar(rules, "root")

    def alternatives(self) -> Expr:
        items = [self.sequence()]
        while True:
            self.skip()
            if self.i < len(self.s) and self.s[self.i] == "|":
                self.i += 1
                items.append(self.sequence())
            else:
                return alt(*items)

    def at_rule_start(self) -> bool:
        """A name followed by ::= begins the next rule (a sequence ends before it)."""
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] in "-_"):
            j += 1
        k = j
        while k < len(self.s) and self.s[k] in " \t\r\n":
            k += 1
        return j > self.i and self.s.startswith("::=", k)

    def sequence(self) -> Expr:
        items: list[Expr] = []
        while True:
            self.skip(newlines=False)
            if self.i < len(self.s) and self.s[self.i] == "\n":
                # a sequence continues on the next line unless that line starts a rule
                save = self.i
                self.skip()
                if self.i >= len(self.s) or self.at_rule_start() or self.s[self.i] in "|)":
                    if self.i < len(self.s) and self.s[self.i] in "|)":
                        continue
                    self.i = save
                    return seq(*items)
                continue
            if self.i >= len(self.s) or self.s[self.i] in "|)":
                return seq(*items)
            items.append(self.postfix(self.atom()))

    def atom(self) -> Expr:
        c = self.s[self.i]
        if c == '"':
            self.i += 1
            out = []
            while True:
                if self.i >= len(self.s):
                    raise self.fail("unterminated string literal")
                ch = self.s[self.i]
                if ch == '"':
                    self.i += 1
                    break
                out.append(self.char())
            return seq(*[Chars(((o, o),)) for o in out])
        if c == "[":
            self.i += 1
            neg = self.i < len(self.s) and self.s[self.i] == "^"
            if neg:
                self.i += 1
            ranges = []
            while True:
                if self.i >= len(self.s):
                    raise self.fail("unterminated character class")
                if self.s[self.i] == "]":
                    self.i += 1
                    break
                lo = self.char()
                hi = lo
                if self.s.startswith("-", self.i) and self.s[self.i + 1:self.i + 2] != "]":
                    self.i += 1
                    hi = self.char()
                if hi < lo:
                    raise self.fail("bad range in a character class")
                ranges.append((lo, hi))
            iv = norm(ranges)
            return Chars(negate(iv) if neg else iv)
        if c == ".":
            self.i += 1
            return Chars(norm([(0, MAX_CHAR)]))
        if c == "(":
            self.i += 1
            e = self.alternatives()
            self.skip()
            if self.i >= len(self.s) or self.s[self.i] != ")":
                raise self.fail("missing ')'")
            self.i += 1
            return e
        if c.isalnum() or c in "-_":
            return Ref(self.name())
        raise self.fail(f"unexpected {c!r}")

    def char(self) -> int:
        c = self.s[self.i]
        if c != "\\":
            self.i += 1
            return ord(c)
        e = self.s[self.i + 1:self.i + 2]
        if e in "xuU" and e:
            n = {"x": 2, "u": 4, "U": 8}[e]
            h = self.s[self.i + 2:self.i + 2 + n]
            if len(h) != n or any(d not in "0123456789abcdefABCDEF" for d in h):
                raise self.fail(f"bad escape \\{e}{h}")
            self.i += 2 + n
            return int(h, 16)
        if e in _ESC:
            self.i += 2
            return ord(_ESC[e])
        raise self.fail(f"unknown escape \\{e}")

    def postfix(self, e: Expr) -> Expr:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "*":
                e, self.i = Repeat(e, 0, None), self.i + 1
            elif c == "+":
                e, self.i = Repeat(e, 1, None), self.i + 1
            elif c == "?":
                e, self.i = Repeat(e, 0, 1), self.i + 1
            elif c == "{":
                j = self.s.find("}", self.i)
                if j < 0:
                    raise self.fail("missing '}'")
                body = self.s[self.i + 1:j].replace(" ", "")
                try:
                    if "," in body:
                        a, b = body.split(",")
                        lo, hi = int(a or 0), (int(b) if b else None)
                    else:
                        lo = hi = int(body)
                except ValueError:
                    raise self.fail(f"bad repetition {{{body}}}") from None
                if hi is not None and hi < lo:
                    raise self.fail(f"bad repetition {{{body}}}")
                e, self.i = Repeat(e, lo, hi), j + 1
            else:
                break
        return e


def parse_gbnf(text: str) -> Grammar:
    if not isinstance(text, str):
        raise ConstraintError("grammar: must be a string.", "Pass the grammar's text.", param="grammar")
    return _Parser(text).grammar()
