"""The grammar every constraint compiles to: expressions over code points, with named rules.

A regex, a choice list, a GBNF grammar and a JSON Schema all become a `Grammar` of these nodes;
`automaton.py` turns it into a byte-level pushdown automaton. Code points, not bytes: character
classes stay small interval lists, and UTF-8 is handled once, where bytes are stepped.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Iterable, Union

MAX_CHAR = 0x10FFFF
Intervals = tuple[tuple[int, int], ...]   # sorted, disjoint, inclusive (lo, hi) code point ranges


def norm(ranges: Iterable[tuple[int, int]]) -> Intervals:
    """Sort and merge ranges; surrogates (never valid UTF-8) are dropped."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    res: list[tuple[int, int]] = []
    for lo, hi in out:   # cut 0xD800-0xDFFF
        if hi < 0xD800 or lo > 0xDFFF:
            res.append((lo, hi))
        else:
            if lo < 0xD800:
                res.append((lo, 0xD7FF))
            if hi > 0xDFFF:
                res.append((0xE000, hi))
    return tuple(res)


def negate(iv: Intervals) -> Intervals:
    out, prev = [], 0
    for lo, hi in iv:
        if lo > prev:
            out.append((prev, lo - 1))
        prev = hi + 1
    if prev <= MAX_CHAR:
        out.append((prev, MAX_CHAR))
    return norm(out)


def union(*ivs: Intervals) -> Intervals:
    return norm(r for iv in ivs for r in iv)


def subtract(a: Intervals, b: Intervals) -> Intervals:
    return intersect(a, negate(b))


def intersect(a: Intervals, b: Intervals) -> Intervals:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def contains(iv: Intervals, c: int) -> bool:
    i = bisect_right(iv, (c, MAX_CHAR + 1)) - 1
    return i >= 0 and iv[i][0] <= c <= iv[i][1]


def chars_of(s: str) -> Intervals:
    return norm((ord(c), ord(c)) for c in s)


# ---- expression nodes ------------------------------------------------------------------------

@dataclass(frozen=True)
class Chars:
    """One code point from the set."""
    iv: Intervals


@dataclass(frozen=True)
class Seq:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Alt:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Repeat:
    item: "Expr"
    min: int
    max: int | None   # None: unbounded


@dataclass(frozen=True)
class Ref:
    """The rule of that name (rules may be recursive; `automaton.py` refuses left recursion)."""
    name: str


Expr = Union[Chars, Seq, Alt, Repeat, Ref]
EMPTY = Seq(())
NOTHING = Alt(())   # matches no string


def lit(s: str) -> Expr:
    return seq(*[Chars(((ord(c), ord(c)),)) for c in s])


def seq(*items: Expr) -> Expr:
    flat: list[Expr] = []
    for it in items:
        if isinstance(it, Seq):
            flat.extend(it.items)
        else:
            flat.append(it)
    if any(it == NOTHING for it in flat):
        return NOTHING
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def alt(*items: Expr) -> Expr:
    flat: list[Expr] = []
    for it in items:
        for x in (it.items if isinstance(it, Alt) else (it,)):
            if x not in flat:
                flat.append(x)
    return flat[0] if len(flat) == 1 else Alt(tuple(flat))


def opt(item: Expr) -> Expr:
    return Repeat(item, 0, 1)


def star(item: Expr) -> Expr:
    return Repeat(item, 0, None)


@dataclass
class Grammar:
    """Named rules and the root rule's name."""
    rules: dict[str, Expr] = field(default_factory=dict)
    root: str = "root"

    @classmethod
    def single(cls, expr: Expr) -> "Grammar":
        return cls({"root": expr}, "root")
