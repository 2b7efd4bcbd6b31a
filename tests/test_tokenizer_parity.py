"""Encode/decode parity with HF `tokenizers` (run live) on >= 2,000 strings per model family."""
from __future__ import annotations

import pytest

from tests.tokenizer_fixtures import corpus, family, family_dirs, family_specials, load_texts, long_document  # noqa: F401


def _strings(folder: str) -> list[str]:
    text, _ = load_texts(folder)
    return corpus(family_specials(text))


def test_corpus_size(family):
    name, ours, ref, folder = family
    strings = _strings(folder)
    assert len(strings) >= 2000
    assert max(len(ref.encode(s).ids) for s in strings) > 2000  # the long document


def test_encode_matches_reference(family):
    name, ours, ref, folder = family
    bad = []
    strings = _strings(folder)
    for s in strings:
        for add in (True, False):
            got = ours.encode(s, add_special_tokens=add)
            want = ref.encode(s, add_special_tokens=add).ids
            if got != want:
                bad.append((s, add, got[:16], want[:16]))
    assert not bad, f"{name}: {len(bad)} of {2 * len(strings)} encodings differ, first: {bad[:3]!r}"


def test_decode_matches_reference(family):
    name, ours, ref, folder = family
    bad = []
    for s in _strings(folder):
        ids = ref.encode(s).ids
        for skip in (False, True):
            got, want = ours.decode(ids, skip_special_tokens=skip), ref.decode(ids, skip_special_tokens=skip)
            if got != want:
                bad.append((s, skip, got, want))
    assert not bad, f"{name}: {len(bad)} decodes differ, first: {bad[:3]!r}"


def test_vocab_lookups(family):
    name, ours, ref, folder = family
    assert ours.vocab_size == ref.get_vocab_size(with_added_tokens=True)
    vocab = ref.get_vocab(with_added_tokens=True)
    for tok, i in list(vocab.items())[:: max(1, len(vocab) // 5000)]:
        assert ours.token_to_id(tok) == ref.token_to_id(tok) == i
        assert ours.id_to_token(i) == ref.id_to_token(i)
    assert ours.id_to_token(ours.vocab_size + 5) is None
    assert ours.token_to_id("\x00definitely not a token\x00") is None
    specials = {i for i, a in ref.get_added_tokens_decoder().items() if a.special}
    assert ours.special_ids == frozenset(specials)


def test_long_document_roundtrip(family):
    name, ours, ref, folder = family
    doc = long_document()
    ids = ours.encode(doc, add_special_tokens=False)
    assert ids == ref.encode(doc, add_special_tokens=False).ids
    assert ours.decode(ids) == ref.decode(ids) == doc


def test_bad_input_raises_typed_error(family):
    from intab.errors import TokenizerError

    name, ours, ref, folder = family
    with pytest.raises(TokenizerError):
        ours.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match="surrogate"):
        ours.encode("ok \ud800 not")


def test_long_document_with_long_runs(family):
    """A 4,000-word document with runs of thousands of letters, spaces and digits (the BPE's long-word
    path). Speed is measured by tools/bench_tokenizer.py, not asserted here."""
    import random

    name, ours, ref, folder = family
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyzéü日本") for _ in range(rng.randint(2, 12)))
             for _ in range(4000)]
    text = " ".join(words) + "\n" + "x" * 3000 + " " * 2000 + "9" * 500
    ours._cache.clear()  # cold: no word seen before
    assert ours.encode(text) == ref.encode(text).ids, name
