"""Streaming detokenizer: deltas concatenate to the full decode, never half a character, no needless delay."""
from __future__ import annotations

import random

from tests.tokenizer_fixtures import EMOJI, SCRIPTS, corpus, family, family_dirs, family_specials, load_texts  # noqa: F401

TEXTS = EMOJI + SCRIPTS + ["mixed 日本 👍🏽 text\n\n", "é\u0301 \U0001F600\U0001F600 \u20ac\u00a3", "<b>x</b>\t\t\n  y"]


def _stream(tok, ids, skip=False):
    dec = tok.stream_decoder(skip_special_tokens=skip)
    deltas = [dec.push(i) for i in ids]
    return deltas, dec.flush()


def test_stream_concatenation_equals_decode(family):
    name, ours, ref, folder = family
    for s in corpus(family_specials(load_texts(folder)[0]), n=600, seed=11):
        ids = ref.encode(s).ids
        for skip in (False, True):
            deltas, rest = _stream(ours, ids, skip)
            assert "".join(deltas) + rest == ref.decode(ids, skip_special_tokens=skip), s


def test_never_half_a_character(family):
    name, ours, ref, folder = family
    for s in TEXTS:
        ids = ours.encode(s, add_special_tokens=False)
        deltas, rest = _stream(ours, ids)
        assert "\ufffd" not in "".join(deltas) + rest, (s, deltas)
        assert "".join(deltas) + rest == s


def test_text_is_emitted_as_soon_as_complete(family):
    """After each token, everything decodable so far is out (ByteFallback: once a non-byte token arrives)."""
    name, ours, ref, folder = family
    byte_fallback = any(ours.id_to_token(i) == "<0x41>" for i in [ours.token_to_id("<0x41>")] if i is not None)
    for s in TEXTS:
        ids = ours.encode(s, add_special_tokens=False)
        dec = ours.stream_decoder()
        out = ""
        for k, i in enumerate(ids, 1):
            out += dec.push(i)
            full = ours.decode(ids[:k])
            tok = ours.id_to_token(i)
            if byte_fallback and tok.startswith("<0x") and len(tok) == 6:
                assert full.startswith(out)
            elif not full.endswith("\ufffd"):
                assert out == full, (s, k)


def test_reuse_after_flush_and_special_tokens(family):
    name, ours, ref, folder = family
    sp = sorted(ours.special_ids)[:3]
    ids = ours.encode("Hello", add_special_tokens=False) + sp + ours.encode(" world", add_special_tokens=False)
    dec = ours.stream_decoder(skip_special_tokens=True)
    first = "".join(dec.push(i) for i in ids) + dec.flush()
    assert first == ref.decode(ids, skip_special_tokens=True)
    second = "".join(dec.push(i) for i in ids) + dec.flush()
    assert second == first
    dec = ours.stream_decoder()
    assert "".join(dec.push(i) for i in ids) + dec.flush() == ref.decode(ids, skip_special_tokens=False)


def test_random_byte_splits(family):
    """Token sequences that cut multi-byte characters anywhere (byte-level / byte-fallback tokens)."""
    name, ours, ref, folder = family
    rng = random.Random(7)
    byte_tok = {}
    for b in range(256):
        i = ours.token_to_id(f"<0x{b:02X}>")
        if i is None:
            from intab.pretokenize import byte_to_unicode

            i = ours.token_to_id(byte_to_unicode()[b])
        if i is not None:
            byte_tok[b] = i
    assert len(byte_tok) >= 230  # SmolLM2 lacks the bytes that never occur in UTF-8 (C0, C1, F5..FF)
    for _ in range(300):
        s = "".join(rng.choice(TEXTS) for _ in range(2))
        data = s.encode("utf-8")
        if rng.random() < 0.3:  # corrupt: drop or duplicate a byte
            k = rng.randrange(len(data))
            data = data[:k] + data[k + 1:] if rng.random() < 0.5 else data[:k] + data[k:k + 1] + data[k:]
        ids = [byte_tok[b] for b in data if b in byte_tok]
        deltas, rest = _stream(ours, ids)
        assert "".join(deltas) + rest == ref.decode(ids, skip_special_tokens=False)
