"""The regex engine against Python's `re.fullmatch` (ASCII classes) on a generated corpus:
random patterns built from every supported construct, and per pattern strings sampled from it,
mutated, and random, including non-ASCII and multi-byte characters."""
from __future__ import annotations

import random
import re

import pytest

from intab.constrain import ConstraintError
from intab.constrain.automaton import Automaton
from intab.constrain.ir import Grammar
from intab.constrain.regex import parse_regex

from constrain_helpers import matches

ALPHABET = "ab0_. -\"\\\né€😀x"


def gen_pattern(rng: random.Random, depth: int = 0) -> tuple[str, object]:
    """(pattern text, a sampler producing strings from it)."""
    r = rng.random()
    if depth > 3 or r < 0.3:
        kind = rng.choice(["lit", "class", "negclass", "dot", "esc", "unicode"])
        if kind == "lit":
            c = rng.choice("ab0_ -éx")
            return re.escape(c), lambda: c
        if kind == "class":
            chars = rng.sample("ab0x_é", 3)
            if rng.random() < 0.3:
                return "[a-c0]", lambda: rng.choice("abc0")
            return "[" + "".join(chars) + "]", lambda: rng.choice(chars)
        if kind == "negclass":
            return '[^a"]', lambda: rng.choice('b0 é€😀\\')
        if kind == "dot":
            return ".", lambda: rng.choice("ab é€😀\\\"")
        if kind == "unicode":
            return "[\u00e0-\u00ff€]", lambda: rng.choice("éà€ÿ")
        e = rng.choice([r"\d", r"\w", r"\s", r"\D", r"\S", r"\W", r"\.", r"\\", r'\"'])
        sample = {r"\d": "0123456789", r"\w": "aZ_9", r"\s": " \t\n", r"\D": "a é", r"\S": "a0é",
                  r"\W": " é-", r"\.": ".", r"\\": "\\", r'\"': '"'}[e]
        return e, lambda: rng.choice(sample)
    if r < 0.5:
        n = rng.randint(2, 3)
        parts = [gen_pattern(rng, depth + 1) for _ in range(n)]
        return "".join(p for p, _ in parts), lambda: "".join(s() for _, s in parts)
    if r < 0.65:
        parts = [gen_pattern(rng, depth + 1) for _ in range(rng.randint(2, 3))]
        return "(?:" + "|".join(p for p, _ in parts) + ")", lambda: rng.choice(parts)[1]()
    p, s = gen_pattern(rng, depth + 1)
    # Nested repetition can send `re` (a backtracker) into exponential time: over a repeated
    # part, only ? and {2}.
    nested = any(x in p.replace("\\", "") for x in "*+?{")
    q = rng.choice(["?", "{2}"] if nested else ["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}", "*?", "+?"])
    lo, hi = {"*": (0, 3), "+": (1, 3), "?": (0, 1), "{2}": (2, 2), "{1,3}": (1, 3), "{0,2}": (0, 2),
              "{2,}": (2, 4), "*?": (0, 3), "+?": (1, 3)}[q]
    group = f"({p})" if rng.random() < 0.5 else f"(?:{p})"
    return group + q, lambda: "".join(s() for _ in range(rng.randint(lo, hi)))


def mutate(rng: random.Random, s: str) -> str:
    if not s or rng.random() < 0.3:
        return s + rng.choice(ALPHABET)
    i = rng.randrange(len(s))
    op = rng.random()
    if op < 0.33:
        return s[:i] + s[i + 1:]
    if op < 0.66:
        return s[:i] + rng.choice(ALPHABET) + s[i + 1:]
    return s[:i] + rng.choice(ALPHABET) + s[i:]


def test_equals_re_fullmatch_on_a_generated_corpus():
    rng = random.Random(20261201)
    checked = positives = 0
    for _ in range(400):
        pattern, sample = gen_pattern(rng)
        compiled = re.compile(pattern, re.ASCII)
        a = Automaton(Grammar.single(parse_regex(pattern)))
        strings = set()
        for _ in range(6):
            s = sample()
            strings.update([s, mutate(rng, s), mutate(rng, mutate(rng, s))])
        strings.update("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 5))) for _ in range(4))
        for s in strings:
            want = compiled.fullmatch(s) is not None
            assert matches(a, s) == want, (pattern, s)
            checked += 1
            positives += want
    assert checked > 5000 and positives > 1500


@pytest.mark.parametrize("pattern,strings", [
    (r"a{3}", ["aaa", "aa", "aaaa"]),
    (r"[^\d]+", ["ab", "a1", "é€"]),
    (r"\x41\u00e9\U0001F600", ["Aé😀", "Ae😀"]),
    (r"(?P<x>ab)+|c", ["abab", "c", "abc"]),
    (r"^abc$", ["abc", "ab"]),
    (r"[\]\-a]", ["]", "-", "a", "b"]),
    (r"a{,2}", ["", "aa", "aaa"]),
    (r"a{x}", ["a{x}", "a"]),
])
def test_edge_cases(pattern, strings):
    a = Automaton(Grammar.single(parse_regex(pattern)))
    for s in strings:
        assert matches(a, s) == (re.fullmatch(pattern, s, re.ASCII) is not None), (pattern, s)


@pytest.mark.parametrize("pattern,construct", [
    (r"(?=a)a", "lookaround"), (r"(a)\1", "backreference"), (r"\bword", "anchor"), (r"(?i)a", "inline"),
    (r"a*+", "possessive"), (r"a^b", "'^'"), (r"\p{L}", "unicode"), (r"a$b", "'$'"), (r"(ab", "missing"),
    (r"*a", "nothing"),
])
def test_unsupported_constructs_are_refused_with_their_name(pattern, construct):
    with pytest.raises(ConstraintError) as err:
        parse_regex(pattern)
    assert construct in str(err.value)
    assert err.value.param == "regex"


def test_search_semantics_for_json_schema_patterns():
    a = Automaton(Grammar.single(parse_regex("b+", search=True, ecma=True)))
    assert matches(a, "abba") and not matches(a, "aaa")
    a = Automaton(Grammar.single(parse_regex("^a|b$", search=True, ecma=True)))
    for s in ["ax", "xb", "xax", "bx"]:
        assert matches(a, s) == (re.search("^a|b$", s) is not None), s


def test_utf8_is_followed_byte_by_byte():
    a = Automaton(Grammar.single(parse_regex("é€")))
    s = a.step_bytes(a.start, "é".encode() + "€".encode()[:1])   # a token may end inside a character
    assert s >= 0 and not a.accepting(s)
    assert a.step(s, 0x41) < 0                                     # ... and must finish it
    assert a.accepting(a.step_bytes(s, "€".encode()[1:]))
    assert a.step_bytes(a.start, b"\xc3\xa8") < 0                  # è is not é: dead at its last byte
    assert a.step(a.start, 0xC0) < 0 and a.step(a.start, 0xFF) < 0  # never valid UTF-8
