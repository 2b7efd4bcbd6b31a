"""Grammar (ir.py) -> a byte-level pushdown automaton, built lazily as tokens explore it.

Each rule becomes a Thompson NFA over code points; a reference to a recursive rule becomes a call
edge (push the return state, enter the rule), every other reference is expanded in place, so a
schema without recursion is one NFA and its states never carry a stack. A parser state is the
epsilon-closed set of items (NFA state, return stack); states are interned as small ints and their
transitions are memoized per byte, so a token's step is a list lookup once it has been seen.

UTF-8 is decoded here: a byte state is (parser state, the bytes of an unfinished character). A
lead byte is taken only if some character it can begin is allowed next, so a token that ends in
the middle of a character is allowed exactly when the character can still be completed legally.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Iterable

from .errors import ConstraintError
from .ir import (Alt, Chars, Expr, Grammar, Intervals, Ref, Repeat, Seq, contains, intersect, norm)

DEAD = -1
_UNKNOWN = -2
MAX_NFA_STATES = 400_000
MAX_ITEMS = 20_000


class Nfa:
    """States are ints; per state: character edges, epsilon edges, call edges."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[Intervals, int]]] = []
        self.eps: list[list[int]] = []
        self.calls: list[list[tuple[int, int]]] = []   # (callee start, return state)
        self.final_of: dict[int, int] = {}              # rule final state -> rule start (for pops)

    def new(self) -> int:
        if len(self.edges) >= MAX_NFA_STATES:
            raise ConstraintError(f"the constraint is too large: more than {MAX_NFA_STATES} automaton states.",
                                  "Use smaller repetition counts (maxLength, maxItems, {m,n}) or a simpler schema.")
        self.edges.append([])
        self.eps.append([])
        self.calls.append([])
        return len(self.edges) - 1


def _references(expr: Expr, out: set[str]) -> None:
    if isinstance(expr, Ref):
        out.add(expr.name)
    elif isinstance(expr, (Seq, Alt)):
        for it in expr.items:
            _references(it, out)
    elif isinstance(expr, Repeat):
        _references(expr.item, out)


def _recursive_rules(g: Grammar) -> set[str]:
    refs = {}
    for name, e in g.rules.items():
        s: set[str] = set()
        _references(e, s)
        missing = s - g.rules.keys()
        if missing:
            raise ConstraintError(f"grammar: rule {name!r} refers to undefined rule {sorted(missing)[0]!r}.",
                                  "Define every rule the grammar uses.", param="grammar", keyword="undefined rule")
        refs[name] = s
    rec: set[str] = set()
    for start in g.rules:   # a rule is recursive if it can reach itself
        seen, todo = set(), list(refs[start])
        while todo:
            r = todo.pop()
            if r == start:
                rec.add(start)
                break
            if r not in seen:
                seen.add(r)
                todo.extend(refs[r])
    return rec


def _count_refs(expr: Expr, uses: dict[str, int]) -> None:
    if isinstance(expr, Ref):
        uses[expr.name] = uses.get(expr.name, 0) + 1
    elif isinstance(expr, (Seq, Alt)):
        for it in expr.items:
            _count_refs(it, uses)
    elif isinstance(expr, Repeat):
        for _ in range(min(expr.max if expr.max is not None else expr.min + 1, 2) or 1):
            _count_refs(expr.item, uses)


def _size(expr: Expr, cap: int = 10_000) -> int:
    """IR nodes (repetitions counted per copy), up to cap."""
    if isinstance(expr, (Seq, Alt)):
        n = 1
        for it in expr.items:
            n += _size(it, cap)
            if n > cap:
                break
        return n
    if isinstance(expr, Repeat):
        return 1 + _size(expr.item, cap) * max(1, expr.max if expr.max is not None else expr.min + 1)
    return 1


def _nullable(expr: Expr, g: Grammar, memo: dict[str, bool]) -> bool:
    if isinstance(expr, Chars):
        return False
    if isinstance(expr, Seq):
        return all(_nullable(it, g, memo) for it in expr.items)
    if isinstance(expr, Alt):
        return any(_nullable(it, g, memo) for it in expr.items)
    if isinstance(expr, Repeat):
        return expr.min == 0 or _nullable(expr.item, g, memo)
    if expr.name not in memo:
        memo[expr.name] = False   # assume not while computing (least fixed point)
        memo[expr.name] = _nullable(g.rules[expr.name], g, memo)
    return memo[expr.name]


def _first_refs(expr: Expr, g: Grammar, memo: dict[str, bool], out: set[str]) -> None:
    """Rules reachable at the start of `expr` without consuming a character."""
    if isinstance(expr, Ref):
        out.add(expr.name)
    elif isinstance(expr, Seq):
        for it in expr.items:
            _first_refs(it, g, memo, out)
            if not _nullable(it, g, memo):
                break
    elif isinstance(expr, Alt):
        for it in expr.items:
            _first_refs(it, g, memo, out)
    elif isinstance(expr, Repeat):
        if expr.max != 0:
            _first_refs(expr.item, g, memo, out)


def _check_left_recursion(g: Grammar) -> None:
    memo: dict[str, bool] = {}
    first = {}
    for name, e in g.rules.items():
        s: set[str] = set()
        _first_refs(e, g, memo, s)
        first[name] = s
    for start in g.rules:
        seen, todo = set(), list(first[start])
        while todo:
            r = todo.pop()
            if r == start:
                raise ConstraintError(f"grammar: rule {start!r} is left-recursive (it can reach itself before "
                                      "reading a character).",
                                      "Rewrite it with repetition, e.g. `list ::= item (\",\" item)*` instead of "
                                      "`list ::= list \",\" item | item`.", param="grammar", keyword="left recursion")
            if r not in seen:
                seen.add(r)
                todo.extend(first[r])


class _Compiler:
    def __init__(self, g: Grammar):
        self.g = g
        self.nfa = Nfa()
        self.recursive = _recursive_rules(g)
        # A rule used in several places is called (compiled once) when it is big: expanding it at
        # every use multiplies the automaton (a schema's shared $defs, an object's member lists).
        uses: dict[str, int] = {}
        for e in g.rules.values():
            _count_refs(e, uses)
        self.called = set(self.recursive) | {n for n, k in uses.items() if k > 1 and _size(g.rules[n]) > 40}
        self.starts: dict[str, tuple[int, int]] = {}
        self.inlining: list[str] = []
        self.items: dict[int, str] = {}          # id(Repeat) -> its item as a called rule
        self.item_rules: dict[str, Expr] = {}

    def repeated_item(self, e: Repeat) -> Expr:
        """The item of a long counted repetition as a call to one compiled copy, when it is big: a
        string of maxLength 1024 expanded in place took 1024 copies of the JSON character's NFA
        (1.9 s to compile); called, each position is one call edge and its return state."""
        if max(e.min, e.max or 0) <= 8 or _size(e.item, 64) <= 12:
            return e.item
        if id(e) not in self.items:
            name = f"\0item{len(self.items)}"
            self.items[id(e)], self.item_rules[name] = name, e.item
            self.called.add(name)
        return Ref(self.items[id(e)])

    def rule(self, name: str) -> tuple[int, int]:
        """(start, final) of a called rule, compiled once."""
        if name not in self.starts:
            s, f = self.nfa.new(), self.nfa.new()
            self.starts[name] = (s, f)
            self.nfa.final_of[f] = s
            self.build(self.item_rules[name] if name in self.item_rules else self.g.rules[name], s, f)
        return self.starts[name]

    def build(self, e: Expr, a: int, b: int) -> None:
        """Add states so that `e` leads from a to b."""
        nfa = self.nfa
        if isinstance(e, Chars):
            if e.iv:
                nfa.edges[a].append((e.iv, b))
        elif isinstance(e, Seq):
            if not e.items:
                nfa.eps[a].append(b)
                return
            cur = a
            for i, it in enumerate(e.items):
                nxt = b if i == len(e.items) - 1 else nfa.new()
                self.build(it, cur, nxt)
                cur = nxt
        elif isinstance(e, Alt):
            for it in e.items:
                s = nfa.new()
                nfa.eps[a].append(s)
                self.build(it, s, b)
        elif isinstance(e, Repeat):
            item = self.repeated_item(e)
            cur = a
            for _ in range(e.min):
                nxt = nfa.new()
                self.build(item, cur, nxt)
                cur = nxt
            if e.max is None:
                loop = nfa.new()
                nfa.eps[cur].append(loop)
                body_end = nfa.new()
                self.build(item, loop, body_end)
                nfa.eps[body_end].append(loop)
                nfa.eps[loop].append(b)
            else:
                nfa.eps[cur].append(b)
                for _ in range(e.max - e.min):   # x{0,n} = (x(x(...)?)?)?: each copy may stop
                    nxt = nfa.new()
                    self.build(item, cur, nxt)
                    nfa.eps[nxt].append(b)
                    cur = nxt
        elif isinstance(e, Ref):
            if e.name in self.called:
                s, f = self.rule(e.name)
                nfa.calls[a].append((s, b))
            else:
                if e.name in self.inlining:   # pragma: no cover - recursive rules are called
                    raise AssertionError(e.name)
                self.inlining.append(e.name)
                self.build(self.g.rules[e.name], a, b)
                self.inlining.pop()
        else:  # pragma: no cover
            raise TypeError(e)


class Automaton:
    """The lazily built byte automaton of one compiled constraint.

    `start` is the initial byte state; `step(s, byte)` the next one (DEAD when the byte is not
    allowed); `accepting(s)` whether the text so far is a complete match. States are ints.
    """

    def __init__(self, grammar: Grammar):
        if grammar.root not in grammar.rules:
            raise ConstraintError(f"grammar: no rule {grammar.root!r} to start from.",
                                  "Name the start rule `root`.", param="grammar", keyword="root")
        _check_left_recursion(grammar)
        comp = _Compiler(grammar)
        nfa = comp.nfa
        self.root_start, self.root_final = nfa.new(), nfa.new()
        comp.build(grammar.rules[grammar.root], self.root_start, self.root_final)
        self.nfa = nfa
        # parser states: frozenset of (nfa state, stack) items, epsilon-closed
        self._pstates: list[frozenset] = []
        self._pindex: dict[frozenset, int] = {}
        self._paccept: list[bool] = []
        self._pout: list[Intervals | None] = []          # union of the characters it may take
        self._pchar: list[dict[int, int]] = []          # memo: code point -> parser state
        # byte states: (parser state, pending UTF-8 bytes)
        self._bstates: list[tuple[int, bytes]] = []
        self._bindex: dict[tuple[int, bytes], int] = {}
        self.trans: list[array] = []                    # per byte state: 256 next states
        self.start = self._byte_state(self._parser_state([(self.root_start, ())]), b"")

    # ---- parser states -----------------------------------------------------------------------
    def _closure(self, items: Iterable[tuple[int, tuple]]) -> frozenset:
        nfa = self.nfa
        seen: set = set()
        todo = list(items)
        while todo:
            it = todo.pop()
            if it in seen:
                continue
            seen.add(it)
            if len(seen) > MAX_ITEMS:
                raise ConstraintError("the constraint is too ambiguous to follow (too many parse paths at once).",
                                      "Make alternatives differ early (anyOf branches with distinct first "
                                      "characters, grammar rules without nested optional repetition).")
            n, st = it
            for t in nfa.eps[n]:
                todo.append((t, st))
            for s, ret in nfa.calls[n]:
                todo.append((s, st + (ret,)))
            if st and n in nfa.final_of:
                todo.append((st[-1], st[:-1]))
        # Only items that can take a character (or accept) matter from here on; dropping the
        # epsilon-only ones makes e.g. "right after the opening quote" and "after one character"
        # the same state, so a loop is seen as one.
        edges, root_final = nfa.edges, self.root_final
        return frozenset(it for it in seen if edges[it[0]] or (it[0] == root_final and not it[1]))

    def _parser_state(self, items: Iterable[tuple[int, tuple]]) -> int:
        ps = self._closure(items)
        pid = self._pindex.get(ps)
        if pid is None:
            pid = len(self._pstates)
            self._pstates.append(ps)
            self._pindex[ps] = pid
            self._paccept.append((self.root_final, ()) in ps)
            self._pout.append(None)
            self._pchar.append({})
        return pid

    def parser_step(self, pid: int, c: int) -> int:
        memo = self._pchar[pid]
        r = memo.get(c)
        if r is None:
            edges = self.nfa.edges
            nxt = [(t, st) for n, st in self._pstates[pid] for iv, t in edges[n] if contains(iv, c)]
            r = self._parser_state(nxt) if nxt else DEAD
            memo[c] = r
        return r

    def out_chars(self, pid: int) -> Intervals:
        iv = self._pout[pid]
        if iv is None:
            edges = self.nfa.edges
            iv = norm(r for n, _ in self._pstates[pid] for cls, _ in edges[n] for r in cls)
            self._pout[pid] = iv
        return iv

    def loop_chars(self, pid: int) -> Intervals:
        """Characters that lead from this parser state back to itself (the dense part of a state,
        e.g. the inside of a JSON string): one step per class of equivalent characters."""
        edges = self.nfa.edges
        cuts: set[int] = set()
        for n, _ in self._pstates[pid]:
            for cls, _ in edges[n]:
                for lo, hi in cls:
                    cuts.add(lo)
                    cuts.add(hi + 1)
        bounds = sorted(cuts)
        out = []
        for lo, nxt in zip(bounds, bounds[1:]):
            if self.parser_step(pid, lo) == pid:
                out.append((lo, nxt - 1))
        return norm(out)

    # ---- byte states -------------------------------------------------------------------------
    def _byte_state(self, pid: int, pending: bytes) -> int:
        key = (pid, pending)
        s = self._bindex.get(key)
        if s is None:
            s = len(self._bstates)
            self._bstates.append(key)
            self._bindex[key] = s
            self.trans.append(array("i", [_UNKNOWN]) * 256)
        return s

    def parser_of(self, s: int) -> tuple[int, bytes]:
        return self._bstates[s]

    def accepting(self, s: int) -> bool:
        pid, pending = self._bstates[s]
        return not pending and self._paccept[pid]

    def can_continue(self, s: int) -> bool:
        pid, pending = self._bstates[s]
        return bool(pending) or bool(self.out_chars(pid))

    def step(self, s: int, b: int) -> int:
        r = self.trans[s][b]
        if r == _UNKNOWN:
            r = self._compute(s, b)
            self.trans[s][b] = r
        return r

    def step_bytes(self, s: int, data: bytes) -> int:
        for b in data:
            s = self.step(s, b)
            if s < 0:
                return DEAD
        return s

    def _compute(self, s: int, b: int) -> int:
        pid, pending = self._bstates[s]
        if not pending:
            if b < 0x80:
                nxt = self.parser_step(pid, b)
                return DEAD if nxt < 0 else self._byte_state(nxt, b"")
            if not (0xC2 <= b <= 0xF4):
                return DEAD
            data = bytes([b])
        else:
            if not (0x80 <= b <= 0xBF):
                return DEAD
            data = pending + bytes([b])
        need = 2 if data[0] < 0xE0 else 3 if data[0] < 0xF0 else 4
        if len(data) == 2:   # second-byte limits: no overlong forms, no surrogates, nothing past U+10FFFF
            lead, b2 = data[0], data[1]
            if (lead == 0xE0 and b2 < 0xA0) or (lead == 0xED and b2 > 0x9F) or \
               (lead == 0xF0 and b2 < 0x90) or (lead == 0xF4 and b2 > 0x8F):
                return DEAD
        if len(data) == need:
            c = data.decode("utf-8")
            nxt = self.parser_step(pid, ord(c))
            return DEAD if nxt < 0 else self._byte_state(nxt, b"")
        lo, hi = _prefix_range(data, need)
        if not intersect(self.out_chars(pid), ((lo, hi),)):
            return DEAD
        return self._byte_state(pid, data)

    @property
    def size(self) -> tuple[int, int, int]:
        """(NFA states, parser states, byte states): how much has been built."""
        return len(self.nfa.edges), len(self._pstates), len(self._bstates)


def _prefix_range(data: bytes, need: int) -> tuple[int, int]:
    """The code points whose UTF-8 form starts with `data` (a valid, unfinished prefix)."""
    lo = data + bytes([0x80]) * (need - len(data))
    hi = data + bytes([0xBF]) * (need - len(data))
    if len(data) == 1:   # second-byte limits
        lead = data[0]
        lo = bytes([lead, 0xA0 if lead == 0xE0 else 0x90 if lead == 0xF0 else 0x80]) + lo[2:]
        hi = bytes([lead, 0x9F if lead == 0xED else 0x8F if lead == 0xF4 else 0xBF]) + hi[2:]
    return ord(lo.decode("utf-8")), ord(hi.decode("utf-8"))


__all__ = ["Automaton", "DEAD", "bisect_left"]
