"""Regenerate py/intab/unicode_tables.py: the \\p{L} / \\p{N} classes of the reference tokenizer.

Why a generated file: Python's `re` has no \\p{..}, and deriving the classes from `unicodedata`
at run time would tie them to the interpreter's Unicode version (CPython 3.11: 14.0, Pyodide's
3.14: 16.0) and cost a full code-point sweep at page load. The reference (`tokenizers` 0.23:
Oniguruma 6.9.10 and Rust 1.8x std) uses Unicode 16.0, checked code point by code point in
tests/test_tokenizer_unicode.py. Exception: the `Digits` pre-tokenizer uses Rust's
`char::is_numeric`, whose std is already on Unicode 17.0 (RUST_NUMERIC).
The reference's normalizers (NFC, ...) are older and patchy: they know nothing assigned after
Unicode 14.0, lack the combining classes of ~100 marks added since Unicode 11, the canonical
decomposition of U+11938 and 72 compatibility decompositions (NORMALIZER_INERT[_COMPAT], measured
here against `tokenizers` itself). Run under CPython 3.11 (Unicode 14.0), with `tokenizers` 0.23.
Needs unicodedata2 16.0.0 importable and 17.0.0 in another folder (generation only):

    pip install unicodedata2==16.0.0
    pip install --target /tmp/ud17lib unicodedata2==17.0.0
    python3 tests/tokenizer_data/gen_unicode_tables.py /tmp/ud17lib
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import unicodedata2 as ud

OUT = Path(__file__).resolve().parents[2] / "py" / "intab" / "unicode_tables.py"


def ranges(pred) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for cp in range(0x110000):
        if pred(chr(cp)):
            if out and out[-1][1] == cp - 1:
                out[-1][1] = cp
            else:
                out.append([cp, cp])
    return [(a, b) for a, b in out]


def fmt(name: str, rs: list[tuple[int, int]]) -> str:
    items = [f"0x{a:X}" if a == b else f"0x{a:X}-0x{b:X}" for a, b in rs]
    lines, line = [], ""
    for it in items:
        if len(line) + len(it) + 1 > 96:
            lines.append(line)
            line = ""
        line += (" " if line else "") + it
    lines.append(line)
    body = "\n".join(lines)
    return f'{name} = """\n{body}\n"""\n'


def _ud17(ud17_path: str, expr: str) -> set[int]:
    code = (
        "import json, sys, unicodedata2 as u\n"
        "assert u.unidata_version == '17.0.0', u.unidata_version\n"
        f"print(json.dumps([c for c in range(0x110000) if {expr}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": ud17_path}
    return set(json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                         capture_output=True, text=True).stdout))


def rust_numeric(ud17_path: str) -> list[tuple[int, int]]:
    cps = _ud17(ud17_path, "u.category(chr(c))[0] == 'N'")
    return ranges(lambda c: ord(c) in cps)


def after_unicode_14(ud17_path: str) -> list[tuple[int, int]]:
    """Code points assigned in Unicode 15.0..17.0: unknown to the reference's normalizer (14.0)."""
    import unicodedata

    assert unicodedata.unidata_version == "14.0.0", "run under CPython 3.11 (Unicode 14.0)"
    cps = _ud17(ud17_path, "u.category(chr(c)) != 'Cn'")
    return ranges(lambda c: ord(c) in cps and unicodedata.category(c) == "Cn")


def normalizer_quirks() -> tuple[set[int], set[int]]:
    """Code points the reference's normalizers treat as inert (all forms; NFKC/NFKD only).

    Inert = combining class 0, no decomposition, no composition: the reference leaves them as they
    are while this interpreter's `unicodedata` (14.0) would reorder, decompose or compose them."""
    import unicodedata

    from tokenizers import normalizers

    known = [chr(c) for c in range(2, 0x110000) if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) != "Cn"]
    inert: set[int] = set()
    ref_nfd = normalizers.NFD()
    for m in (c for c in known if unicodedata.combining(c)):  # marks whose combining class the reference lacks
        probe = ("a\u0301" + m) if unicodedata.combining(m) == 1 else ("a" + m + "\u0334")
        if ref_nfd.normalize_str(probe) == probe != unicodedata.normalize("NFD", probe):
            inert.add(ord(m))
    compat: set[int] = set()
    for form, bucket in (("NFD", inert), ("NFC", inert), ("NFKD", compat), ("NFKC", compat)):
        ref = getattr(normalizers, form)()
        joined = "\x01".join(known)
        ours, theirs = unicodedata.normalize(form, joined).split("\x01"), ref.normalize_str(joined).split("\x01")
        for c, a, b in zip(known, ours, theirs):
            if a != b:
                assert b == c, (form, hex(ord(c)))  # the reference leaves it untouched
                bucket.add(ord(c))
    # primary composites the reference does not compose: make their last part inert too
    for c in known:
        d = unicodedata.decomposition(c)
        if d and not d.startswith("<") and ord(c) in inert:
            inert.add(ord(unicodedata.normalize("NFD", c)[-1]))
    compat -= inert
    return inert, compat


def lowercase_extra() -> dict[int, str]:
    """Code points the reference's Lowercase (Rust std, Unicode 17) lowercases and str.lower() (14.0) does not."""
    from tokenizers import normalizers

    chars = [chr(c) for c in range(2, 0x110000) if not 0xD800 <= c < 0xE000]
    joined = "\x01".join(chars)
    ours, theirs = joined.lower().split("\x01"), normalizers.Lowercase().normalize_str(joined).split("\x01")
    return {ord(c): b for c, a, b in zip(chars, ours, theirs) if a != b}


def main() -> None:
    assert ud.unidata_version == "16.0.0", ud.unidata_version
    letters = ranges(lambda c: ud.category(c).startswith("L"))
    numbers = ranges(lambda c: ud.category(c).startswith("N"))
    rust_numbers = rust_numeric(sys.argv[1])
    newer = after_unicode_14(sys.argv[1])
    quirks, quirks_compat = normalizer_quirks()
    newer_set = {c for a, b in newer for c in range(a, b + 1)}
    inert = ranges(lambda c: ord(c) in quirks or ord(c) in newer_set)
    inert_compat = ranges(lambda c: ord(c) in quirks_compat)
    lower = lowercase_extra()
    lower_text = "LOWERCASE_EXTRA = {\n" + "".join(
        f"    0x{k:X}: {v!r},\n" for k, v in sorted(lower.items())) + "}\n"
    text = (
        '"""Unicode 16.0 character classes (generated by tests/tokenizer_data/gen_unicode_tables.py; do not edit).\n\n'
        "LETTER = \\\\p{L}, NUMBER = \\\\p{N} (Oniguruma, Unicode 16.0); RUST_NUMERIC = Rust's\n"
        "char::is_numeric (Unicode 17.0), used by the Digits pre-tokenizer. Space-separated hex code\n"
        "points or ranges A-B. Pinned to the reference tokenizer, not to the running interpreter.\n"
        "NORMALIZER_INERT: code points the reference's normalizers (NFC...) leave untouched, unlike\n"
        "unicodedata: everything assigned after Unicode 14.0 plus the reference's gaps (marks without\n"
        "combining class, U+11938); NORMALIZER_INERT_COMPAT: more of them for NFKC/NFKD only.\n"
        "LOWERCASE_EXTRA: lowercase mappings of the reference's Lowercase (Rust, Unicode 17.0) that\n"
        "str.lower() under Unicode 14.0 lacks.\n"
        '"""\n\nUNICODE_VERSION = "16.0.0"\nRUST_UNICODE_VERSION = "17.0.0"\n\n'
        + fmt("LETTER", letters) + "\n" + fmt("NUMBER", numbers) + "\n" + fmt("RUST_NUMERIC", rust_numbers)
        + "\n" + fmt("NORMALIZER_INERT", inert) + "\n" + fmt("NORMALIZER_INERT_COMPAT", inert_compat)
        + "\n" + lower_text
    )
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}: {len(letters)} letter, {len(numbers)} number, {len(rust_numbers)} rust-numeric, "
          f"{len(inert)} + {len(inert_compat)} normalizer-inert ranges ({len(quirks)} + {len(quirks_compat)} quirks)")


if __name__ == "__main__":
    main()
