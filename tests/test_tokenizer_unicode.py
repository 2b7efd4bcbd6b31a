"""The pure-Python character classes equal the reference's, code point by code point.

`tokenizers` (Oniguruma + Rust std) classifies with Unicode 16.0; CPython 3.11's `unicodedata`
is 14.0 and Pyodide's 3.14 is 16.0. The pre-tokenizer classes come from the pinned tables in
`intab.unicode_tables`, so they must match the reference here whatever the interpreter.
"""
from __future__ import annotations

import unicodedata

import pytest
from tokenizers import Regex, normalizers, pre_tokenizers

from intab import pretokenize, unicode_tables

ALL = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)


def _ref_spans(pattern: str, text: str) -> list[tuple[int, int]]:
    pt = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    rx = pretokenize.compile_regex(pattern)
    return [span for piece, span in pt.pre_tokenize_str(text)], rx


@pytest.mark.parametrize("pattern", [r"\p{L}+", r"\p{N}+", r"\s+", r"[^\s\p{L}\p{N}]+"])
def test_class_matches_reference_on_every_code_point(pattern):
    spans, rx = _ref_spans(pattern, ALL)
    ours = pretokenize.RegexIsolated(rx)(ALL)
    pos, got = 0, []
    for piece in ours:
        got.append((pos, pos + len(piece)))
        pos += len(piece)
    assert got == spans


def test_digits_pretokenizer_on_every_code_point():
    ref = [p for p, _ in pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str(ALL)]
    assert pretokenize.Digits(True)(ALL) == ref
    ref = [p for p, _ in pre_tokenizers.Digits(individual_digits=False).pre_tokenize_str(ALL)]
    assert pretokenize.Digits(False)(ALL) == ref


def test_gpt2_byte_level_regex_on_code_point_soup():
    # every code point, in an order that puts letters, digits, spaces and marks next to each other
    soup = "".join(ALL[i::97] for i in range(97))
    ref = [p for p, _ in pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str(soup)]
    ours = [pretokenize.to_byte_level(p) for p in pretokenize.ByteLevel(False, True)(soup)]
    assert ours == ref


def test_tables_are_pinned_not_runtime():
    assert unicode_tables.UNICODE_VERSION == "16.0.0"
    # How far the interpreter's own database is from the pinned one (0 under Pyodide's 3.14).
    rx = pretokenize.compile_regex(r"\p{L}")
    drift = sum(1 for c in ALL[:0x32000] if (unicodedata.category(c)[0] == "L") != bool(rx.match(c)))
    if unicodedata.unidata_version == "16.0.0":
        assert drift == 0
    else:
        assert drift > 0  # CPython 3.11 (Unicode 14): letters added since then are still letters for us


KNOWN = [c for c in ALL if unicodedata.category(c) != "Cn" and c != "\x01"]
MARKS = [c for c in KNOWN if unicodedata.combining(c)]


@pytest.mark.parametrize("form", ["NFC", "NFKC", "NFD", "NFKD"])
def test_normalizers_match_reference_on_every_code_point(form):
    """intab's NFC & co. (interpreter tables held to the reference's quirks) equal the reference's:
    every code point alone, every mark after every other mark (reordering), every composite."""
    from intab.tokenizer import _unicode_normalizer

    ours = _unicode_normalizer(form)
    ref = getattr(normalizers, form)()

    def same(texts: list[str]) -> None:
        joined = "\x01".join(texts)
        got, want = ours(joined).split("\x01"), ref.normalize_str(joined).split("\x01")
        bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
        assert not bad, (len(bad), bad[:5])

    same([c for c in ALL if c != "\x01"])
    same(["a" + m + n for m in MARKS for n in ("\u0334", "\u0301", "\u0323", "\u093c", "\u05b0", "\u0345")])
    same(["a" + n + m for m in MARKS for n in ("\u0334", "\u0301", "\u0323", "\u093c", "\u05b0", "\u0345")])
    composites = [c for c in KNOWN if unicodedata.decomposition(c) and not unicodedata.decomposition(c).startswith("<")]
    same([unicodedata.normalize("NFD", c) for c in composites])
    same([unicodedata.normalize("NFD", c) + m for c in composites[::7] for m in MARKS[::11]])


def test_reference_normalizer_ignores_code_points_after_unicode_14():
    """Why intab holds NFC & co. to Unicode 14.0: the reference leaves newer code points inert."""
    body = pretokenize._class_body(unicode_tables.NORMALIZER_INERT)
    import re

    newer = [c for c in ALL if re.fullmatch(f"[{body}]", c)]
    assert len(newer) > 10000  # Unicode 15.0-17.0 and the reference's gaps
    probe = "\x00".join("a" + c + "\u0323\u0301" for c in newer)  # reordering / composition around them
    want = probe  # an inert starter between "a" and the marks: nothing composes or reorders
    for form in ("NFC", "NFKC"):
        assert getattr(normalizers, form)().normalize_str(probe) == want
    assert normalizers.NFD().normalize_str("".join(newer)) == "".join(newer)


def test_guarded_normalizer_under_a_newer_unicode_database():
    """Pyodide's interpreter knows Unicode 16: simulate it with unicodedata2 when installed."""
    ud = pytest.importorskip("unicodedata2")
    if ud.unidata_version == unicodedata.unidata_version:
        pytest.skip("unicodedata2 is not newer than this interpreter's database")
    from unittest import mock

    from intab import tokenizer

    with mock.patch.object(tokenizer, "unicodedata", ud):
        fns = {f: tokenizer._unicode_normalizer(f) for f in ("NFC", "NFD", "NFKC", "NFKD")}
    s = "x\U00016d63\U00016d67 \U000113c2\U000113c9 \U0001611e\U0001611e a\U0001E08F\u0323 e\u0301 \ufb01 \u1e9b\u0323"
    for form, fn in fns.items():
        assert fn(s) == getattr(normalizers, form)().normalize_str(s), form
    assert ud.normalize("NFC", s) != normalizers.NFC().normalize_str(s)  # the unguarded call would differ


def test_lowercase_matches_reference_on_every_code_point():
    from intab.tokenizer import _normalizer

    lower = _normalizer({"type": "Lowercase"})
    joined = "\x01".join(c for c in ALL if c != "\x01")
    assert lower(joined) == normalizers.Lowercase().normalize_str(joined)


def test_case_insensitive_contractions_on_every_code_point():
    """(?i:'s|'t|...) of the Qwen3/Llama 3 pattern: Python's case folding = Oniguruma's (e.g. 'ſ)."""
    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    # all of Latin, Greek, Cyrillic, letterlike symbols and ligatures (where case folding lives), a sample beyond
    chars = [c for c in ALL[:0x2200] + "".join(map(chr, range(0xFB00, 0xFB50))) + ALL[0x2200::13] if c not in "\r\n"]
    text = "".join("'" + c + "x\n'" + c + c + "\n" for c in chars)
    spans, rx = _ref_spans(pattern, text)
    ours = pretokenize.RegexIsolated(rx)(text)
    assert [text[s:e] for s, e in spans] == ours
