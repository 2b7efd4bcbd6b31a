"""Regular expressions -> grammar expressions (ir.py), for `regex=`, JSON Schema `pattern` and GBNF.

The syntax is Python's `re` with ASCII classes (`re.ASCII`: \\d = [0-9], \\w = [A-Za-z0-9_],
\\s = [ \\t\\n\\r\\f\\v]), which is also what ECMA-262 (JSON Schema's dialect) means by \\d and \\w.
What cannot be matched by a finite automaton, or would change meaning under one, is refused with
a `ConstraintError` naming it: lookaround, backreferences, word boundaries, inline flags,
possessive quantifiers, anchors anywhere but at the ends. Lazy quantifiers are accepted: they
change which match `re` reports, never whether a whole string matches.
"""
from __future__ import annotations

from .errors import ConstraintError
from .ir import (EMPTY, MAX_CHAR, Chars, Expr, Intervals, Repeat, alt, chars_of, negate, norm, seq,
                 union)

DIGIT = norm([(0x30, 0x39)])
WORD = norm([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
SPACE = chars_of(" \t\n\r\f\v")
# ECMA-262 WhiteSpace and LineTerminator, for JSON Schema patterns
ECMA_SPACE = union(SPACE, chars_of("\u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"), norm([(0x2000, 0x200A)]))
ANY = norm([(0, MAX_CHAR)])
MAX_REPEAT = 10_000

_CLASS_ESCAPES = {"d": DIGIT, "w": WORD}
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a", "0": "\0"}


class _Parser:
    def __init__(self, pattern: str, param: str, ecma: bool):
        self.p = pattern
        self.i = 0
        self.param = param
        self.space = ECMA_SPACE if ecma else SPACE
        # `.`: Python excludes \n; ECMA excludes every line terminator
        self.dot = negate(chars_of("\n\r\u2028\u2029") if ecma else chars_of("\n"))

    def fail(self, what: str, hint: str | None = None) -> ConstraintError:
        return ConstraintError(f"{self.param}: {what} (at offset {self.i} of {self.p!r}).",
                               hint or "Rewrite the pattern without it: only regular constructs can be enforced "
                                       "token by token.", param=self.param, keyword=what.split(" ")[0])

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def take(self) -> str:
        c = self.peek()
        self.i += 1
        return c

    # alternation := sequence ('|' sequence)*
    def parse(self) -> tuple[Expr, bool, bool]:
        """The whole pattern -> (expr, anchored at start, anchored at end), per top-level branch."""
        branches: list[tuple[Expr, bool, bool]] = [self.branch(top=True)]
        while self.peek() == "|":
            self.take()
            branches.append(self.branch(top=True))
        if self.i < len(self.p):
            raise self.fail("unbalanced ')'")
        starts = {b[1] for b in branches}
        ends = {b[2] for b in branches}
        if len(starts) > 1 or len(ends) > 1:
            # mixed anchoring across branches: make each branch explicit for search semantics
            return _MixedAnchors(tuple(branches)), False, False  # type: ignore[return-value]
        return alt(*[b[0] for b in branches]), starts.pop(), ends.pop()

    def alternation(self) -> Expr:
        items = [self.branch(top=False)[0]]
        while self.peek() == "|":
            self.take()
            items.append(self.branch(top=False)[0])
        return alt(*items)

    def branch(self, top: bool) -> tuple[Expr, bool, bool]:
        items: list[Expr] = []
        start = end = False
        if top and self.peek() == "^":
            self.take()
            start = True
        while self.i < len(self.p) and self.peek() not in "|)":
            if self.peek() == "$":
                self.take()
                if top and (self.i == len(self.p) or self.peek() in "|)"):
                    end = True
                    break
                raise self.fail("'$' anchor inside the pattern")
            if self.peek() == "^":
                raise self.fail("'^' anchor inside the pattern")
            items.append(self.quantified())
        return seq(*items), start, end

    def quantified(self) -> Expr:
        atom = self.atom()
        while True:
            c = self.peek()
            if c == "*":
                lo, hi = 0, None
            elif c == "+":
                lo, hi = 1, None
            elif c == "?":
                lo, hi = 0, 1
            elif c == "{" and self._brace_ahead():
                lo, hi = self._braces()
                c = ""
            else:
                return atom
            if c:
                self.take()
            if self.peek() == "?":
                self.take()                       # lazy: same language
            elif self.peek() == "+":
                raise self.fail("possessive quantifier")
            if (hi is not None and hi > MAX_REPEAT) or lo > MAX_REPEAT:
                raise self.fail(f"repetition count above {MAX_REPEAT}")
            atom = Repeat(atom, lo, hi)

    def _brace_ahead(self) -> bool:
        j = self.p.find("}", self.i)
        if j < 0:
            return False
        body = self.p[self.i + 1:j]
        parts = body.split(",")
        return len(parts) in (1, 2) and all(x.strip() == "" or x.strip().isdigit() for x in parts) and \
            (parts[0].strip() != "" or len(parts) == 2) and body.strip() != ""

    def _braces(self) -> tuple[int, int | None]:
        j = self.p.index("}", self.i)
        body = self.p[self.i + 1:j]
        self.i = j + 1
        if "," in body:
            a, b = body.split(",")
            lo = int(a) if a.strip() else 0
            hi = int(b) if b.strip() else None
        else:
            lo = hi = int(body)
        if hi is not None and hi < lo:
            raise self.fail("repetition {m,n} with n < m")
        return lo, hi

    def atom(self) -> Expr:
        c = self.take()
        if c == "(":
            if self.peek() == "?":
                nxt = self.p[self.i + 1:self.i + 2]
                if nxt == ":":
                    self.i += 2
                elif nxt == "P" and self.p[self.i + 2:self.i + 3] == "<":
                    self.i = self.p.index(">", self.i) + 1
                elif nxt == "<" and self.p[self.i + 2:self.i + 3] not in ("=", "!"):
                    self.i = self.p.index(">", self.i) + 1
                elif nxt in ("=", "!") or self.p[self.i + 1:self.i + 3] in ("<=", "<!"):
                    raise self.fail("lookaround (?=, ?!, ?<=, ?<!)")
                else:
                    raise self.fail("inline flags or extension group (?...)")
            inner = self.alternation()
            if self.take() != ")":
                raise self.fail("missing ')'")
            return inner
        if c == "[":
            return Chars(self.char_class())
        if c == ".":
            return Chars(self.dot)
        if c == "\\":
            return self.escape(in_class=False)
        if c in "*+?":
            raise self.fail(f"nothing to repeat before '{c}'")
        if c == "{" and self._brace_ahead_at(self.i - 1):
            raise self.fail("nothing to repeat before '{'")
        if c == "":
            raise self.fail("pattern ends early")
        return Chars(((ord(c), ord(c)),))

    def _brace_ahead_at(self, pos: int) -> bool:
        save = self.i
        self.i = pos
        try:
            return self._brace_ahead()
        finally:
            self.i = save

    def escape(self, in_class: bool) -> Expr:
        iv = self.escape_set(in_class)
        return Chars(iv)

    def escape_set(self, in_class: bool) -> Intervals:
        c = self.take()
        if c == "":
            raise self.fail("pattern ends with '\\'")
        if c in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[c]
        if c in "DW":
            return negate(_CLASS_ESCAPES[c.lower()])
        if c == "s":
            return self.space
        if c == "S":
            return negate(self.space)
        if c == "b" and in_class:
            return chars_of("\b")
        if c in "bBAZzG":
            raise self.fail(f"anchor or word boundary '\\{c}'")
        if c.isdigit() and c != "0":
            raise self.fail(f"backreference '\\{c}'")
        if c == "0":
            # \0 then up to two more octal digits (Python)
            j = self.i
            while j < len(self.p) and j < self.i + 2 and self.p[j] in "01234567":
                j += 1
            code = int("0" + self.p[self.i:j], 8)
            self.i = j
            return norm([(code, code)])
        if c in _SIMPLE_ESCAPES:
            ch = _SIMPLE_ESCAPES[c]
            return norm([(ord(ch), ord(ch))])
        if c in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[c]
            h = self.p[self.i:self.i + n]
            if len(h) != n or any(d not in "0123456789abcdefABCDEF" for d in h):
                raise self.fail(f"bad escape '\\{c}{h}'")
            self.i += n
            code = int(h, 16)
            if code > MAX_CHAR:
                raise self.fail(f"escape '\\{c}{h}' beyond U+10FFFF")
            return norm([(code, code)])
        if c in "pP":
            raise self.fail(f"unicode property '\\{c}'")
        if c.isalnum():
            raise self.fail(f"unknown escape '\\{c}'")
        return norm([(ord(c), ord(c))])

    def char_class(self) -> Intervals:
        negated = False
        if self.peek() == "^":
            self.take()
            negated = True
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            c = self.peek()
            if c == "":
                raise self.fail("missing ']'")
            if c == "]" and not first:
                self.take()
                break
            if c == "[" and self.p[self.i + 1:self.i + 2] in (":", "=", "."):
                raise self.fail("POSIX class [:...:]")
            first = False
            lo_set = self.class_atom()
            if self.peek() == "-" and self.p[self.i + 1:self.i + 2] not in ("]", ""):
                self.take()
                hi_set = self.class_atom()
                if len(lo_set) != 1 or lo_set[0][0] != lo_set[0][1] or len(hi_set) != 1 or hi_set[0][0] != hi_set[0][1]:
                    raise self.fail("range with a class escape as an end")
                lo, hi = lo_set[0][0], hi_set[0][0]
                if hi < lo:
                    raise self.fail("bad character range")
                ranges.append((lo, hi))
            else:
                ranges.extend(lo_set)
        iv = norm(ranges)
        return negate(iv) if negated else iv

    def class_atom(self) -> Intervals:
        c = self.take()
        if c == "\\":
            return self.escape_set(in_class=True)
        return norm([(ord(c), ord(c))])


class _MixedAnchors:
    """Top-level branches anchored differently (e.g. '^a|b$'): search semantics per branch."""

    def __init__(self, branches):
        self.branches = branches


def parse_regex(pattern: str, *, param: str = "regex", search: bool = False, ecma: bool = False) -> Expr:
    """The language of `pattern`: whole strings it matches (`re.fullmatch`), or with search=True
    strings that contain a match (`re.search`, as JSON Schema's `pattern` means)."""
    if not isinstance(pattern, str):
        raise ConstraintError(f"{param}: the pattern must be a string, not {type(pattern).__name__}.",
                              "Pass the regular expression as a string.", param=param)
    parser = _Parser(pattern, param, ecma)
    expr, start, end = parser.parse()
    anyc = Repeat(Chars(ANY), 0, None)
    if isinstance(expr, _MixedAnchors):
        if not search:
            raise parser.fail("'^'/'$' anchors on some branches only")
        return alt(*[seq(EMPTY if s else anyc, e, EMPTY if t else anyc) for e, s, t in expr.branches])
    if search:
        return seq(EMPTY if start else anyc, expr, EMPTY if end else anyc)
    return expr


def escape_literal(s: str) -> str:
    """A regex matching exactly `s`."""
    return "".join("\\" + c if c in r".^$*+?{}[]\|()" else c for c in s)
