"""Pre-tokenizers of HF `tokenizers`, in pure Python `re`.

Python's `re` has no `\\p{L}`, and its `\\s` differs from Oniguruma's (it also matches
U+001C..U+001F). The reference patterns are therefore translated, with the letter/number
classes taken from `unicode_tables` (pinned to the reference's Unicode version) and `\\s`
spelled out as the Unicode White_Space property, so results do not depend on the
interpreter's own Unicode database (CPython 3.11 and Pyodide differ).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from intab import unicode_tables
from intab.errors import TokenizerError

# Unicode White_Space (stable since 6.3): what Oniguruma's and Rust's \s / is_whitespace match.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

PreTokenizer = Callable[[str], list[str]]


_CLASS_SPECIAL = frozenset("\\]-[^")


def _esc(cp: int) -> str:
    """A code point as written inside a character class: literal (fast for re's parser) unless special."""
    c = chr(cp)
    return "\\" + c if c in _CLASS_SPECIAL else c


def _class_body(table: str) -> str:
    parts = []
    for item in table.split():
        a, _, b = item.partition("-")
        lo = int(a, 16)
        hi = int(b, 16) if b else lo
        parts.append(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}")
    return "".join(parts)


@lru_cache(maxsize=None)
def _bodies() -> dict[str, str]:
    """Class bodies (no brackets) for the escapes the reference patterns use."""
    return {
        "L": _class_body(unicode_tables.LETTER),
        "N": _class_body(unicode_tables.NUMBER),
        "rust_numeric": _class_body(unicode_tables.RUST_NUMERIC),
        "s": "".join(_esc(ord(c)) for c in WHITESPACE),
    }


def translate_regex(pattern: str) -> str:
    """Rewrite an Oniguruma pattern using \\p{L}, \\p{N}, \\s, \\S, \\P{..} into Python `re` syntax."""
    bodies = _bodies()
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e in "pP":
                m = re.match(r"\{(\w+)\}|(\w)", pattern[i + 2:])
                if not m:
                    raise TokenizerError(f"bad unicode class in pre-tokenizer regex {pattern!r}")
                name = m.group(1) or m.group(2)
                if name not in ("L", "N"):
                    raise TokenizerError(f"unsupported unicode class \\p{{{name}}} in pre-tokenizer regex")
                i += 2 + m.end()
                negate = e == "P"
                if in_class:
                    if negate:
                        raise TokenizerError("\\P{..} inside a character class is not supported")
                    out.append(bodies[name])
                else:
                    out.append(("[^" if negate else "[") + bodies[name] + "]")
                continue
            if e in "sS":
                if in_class:
                    if e == "S":
                        raise TokenizerError("\\S inside a character class is not supported")
                    out.append(bodies["s"])
                else:
                    out.append(("[^" if e == "S" else "[") + bodies["s"] + "]")
                i += 2
                continue
            if e in "wWdDbBhHXRK":
                raise TokenizerError(f"unsupported escape \\{e} in pre-tokenizer regex {pattern!r}")
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "[":
                raise TokenizerError("nested character classes are not supported")
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=32)
def compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(translate_regex(pattern))
    except re.error as e:
        raise TokenizerError(f"cannot compile pre-tokenizer regex {pattern!r}: {e}") from e


# GPT-2's pattern, used by ByteLevel(use_regex=True).
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

_BEHAVIORS = ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous")


def split_pieces(text: str, matches: list[tuple[int, int]], behavior: str, invert: bool = False) -> list[str]:
    """HF `NormalizedString::split`: cut `text` at the match spans, keep pieces per `behavior`.

    `invert` swaps which segments count as the delimiter, on the same segmentation."""
    marked: list[tuple[int, int, bool]] = []
    prev = 0
    for s, e in matches:
        if s > prev:
            marked.append((prev, s, invert))
        marked.append((s, e, not invert))
        prev = e
    if prev < len(text):
        marked.append((prev, len(text), invert))
    if behavior == "Isolated":
        spans = [(s, e) for s, e, _ in marked]
    elif behavior == "Removed":
        spans = [(s, e) for s, e, m in marked if not m]
    elif behavior == "MergedWithPrevious":
        spans = []
        prev_match = False
        for s, e, m in marked:
            if m and not prev_match and spans:
                spans[-1] = (spans[-1][0], e)
            else:
                spans.append((s, e))
            prev_match = m
    elif behavior == "MergedWithNext":
        spans = []
        prev_match = False
        for s, e, m in reversed(marked):
            if m and not prev_match and spans:
                spans[-1] = (s, spans[-1][1])
            else:
                spans.append((s, e))
            prev_match = m
        spans.reverse()
    elif behavior == "Contiguous":
        spans = []
        prev_match = False
        for s, e, m in marked:
            if m == prev_match and spans:
                spans[-1] = (spans[-1][0], e)
            else:
                spans.append((s, e))
            prev_match = m
    else:
        raise TokenizerError(f"unsupported split behavior {behavior!r}")
    return [text[s:e] for s, e in spans if e > s]


def _regex_matches(rx: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in rx.finditer(text)]


@dataclass(frozen=True)
class Split:
    """`Split` pre-tokenizer (String or Regex pattern)."""

    regex: re.Pattern[str]
    behavior: str
    invert: bool = False
    isolated_fast: bool = False  # Isolated, not inverted: the pieces are the regex's own coverage

    def __call__(self, text: str) -> list[str]:
        return split_pieces(text, _regex_matches(self.regex, text), self.behavior, self.invert)


def split_from_json(cfg: dict) -> Split:
    pat = cfg["pattern"]
    if "Regex" in pat:
        rx = compile_regex(pat["Regex"])
    elif "String" in pat:
        rx = re.compile(re.escape(pat["String"]))
    else:
        raise TokenizerError(f"unsupported Split pattern {pat!r}")
    behavior = cfg.get("behavior", "Isolated")
    if behavior not in _BEHAVIORS:
        raise TokenizerError(f"unsupported split behavior {behavior!r}")
    return Split(rx, behavior, bool(cfg.get("invert", False)))


@dataclass(frozen=True)
class RegexIsolated:
    """Isolated split on a regex, fast path: matches and the gaps between them, in order."""

    regex: re.Pattern[str]

    def __call__(self, text: str) -> list[str]:
        rx = self.regex
        if not rx.groups:  # the usual case: the pattern covers every char, findall runs in C
            parts = rx.findall(text)
            if sum(map(len, parts)) == len(text):
                return [p for p in parts if p]
        out: list[str] = []
        prev = 0
        for m in rx.finditer(text):
            s, e = m.span()
            if s > prev:
                out.append(text[prev:s])
            if e > s:
                out.append(text[s:e])
            prev = e
        if prev < len(text):
            out.append(text[prev:])
        return out


@dataclass(frozen=True)
class Digits:
    """`Digits` pre-tokenizer: splits on Rust `char::is_numeric` (Rust std's Unicode, not Oniguruma's)."""

    individual: bool

    def __call__(self, text: str) -> list[str]:
        rx = _digit_regex(self.individual)
        return RegexIsolated(rx)(text)


@lru_cache(maxsize=2)
def _digit_regex(individual: bool) -> re.Pattern[str]:
    body = _bodies()["rust_numeric"]
    return re.compile(f"[{body}]" if individual else f"[{body}]+")


@lru_cache(maxsize=1)
def _digits_then_gpt2() -> re.Pattern[str]:
    """One regex equal to Digits(individual_digits) followed by ByteLevel's GPT-2 split.

    Each numeric char is its own piece; the GPT-2 alternatives never span a numeric char, and a
    numeric char ends a Digits piece, so `\\s+(?!\\S)` may stop before one (as at a piece end).
    Saves a regex pass and a Python call per piece (SmolLM2's pre-tokenizer).
    """
    b = _bodies()
    n, L, ws = b["rust_numeric"], b["L"], b["s"]
    return re.compile(
        f"[{n}]|'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[^{ws}{L}{n}]+|[{ws}]+(?![^{ws}{n}])|[{ws}]+"
    )


@lru_cache(maxsize=1)
def byte_to_unicode() -> tuple[str, ...]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return tuple(chr(table[b]) for b in range(256))


@lru_cache(maxsize=1)
def byte_level_translation() -> dict[int, str]:
    """str.translate table: latin-1 decoded UTF-8 bytes -> byte-level alphabet."""
    return {i: c for i, c in enumerate(byte_to_unicode())}


def to_byte_level(piece: str) -> str:
    return piece.encode("utf-8").decode("latin-1").translate(byte_level_translation())


@dataclass(frozen=True)
class ByteLevel:
    """`ByteLevel` pre-tokenizer's split step (the byte mapping is applied by the tokenizer)."""

    add_prefix_space: bool
    use_regex: bool

    def __call__(self, text: str) -> list[str]:
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        if not self.use_regex:
            return [text] if text else []
        return RegexIsolated(compile_regex(GPT2_PATTERN))(text)


@dataclass(frozen=True)
class Sequence:
    steps: tuple[PreTokenizer, ...]

    def __call__(self, text: str) -> list[str]:
        pieces = [text]
        for step in self.steps:
            nxt: list[str] = []
            for p in pieces:
                nxt.extend(step(p))
            pieces = nxt
        return pieces


def identity(text: str) -> list[str]:
    return [text] if text else []


def from_json(cfg: dict | None) -> tuple[PreTokenizer, bool]:
    """Build a pre-tokenizer; the flag says whether a ByteLevel step (byte mapping) is present."""
    if cfg is None:
        return identity, False
    kind = cfg.get("type")
    if kind == "Sequence":
        subs = cfg["pretokenizers"]
        if (len(subs) == 2 and subs[0].get("type") == "Digits" and subs[0].get("individual_digits")
                and subs[1].get("type") == "ByteLevel" and not subs[1].get("add_prefix_space", True)
                and subs[1].get("use_regex", True)):
            return RegexIsolated(_digits_then_gpt2()), True
        steps = []
        byte_level = False
        for sub in cfg["pretokenizers"]:
            fn, bl = from_json(sub)
            steps.append(fn)
            byte_level = byte_level or bl
        return Sequence(tuple(steps)), byte_level
    if kind == "Split":
        sp = split_from_json(cfg)
        if sp.behavior == "Isolated" and not sp.invert:
            return RegexIsolated(sp.regex), False
        return sp, False
    if kind == "ByteLevel":
        return ByteLevel(bool(cfg.get("add_prefix_space", False)), bool(cfg.get("use_regex", True))), True
    if kind == "Digits":
        return Digits(bool(cfg.get("individual_digits", False))), False
    raise TokenizerError(f"unsupported pre-tokenizer {kind!r}")
