"""Property-based parity with HF `tokenizers` on arbitrary Unicode (hypothesis, derandomized)."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tokenizer_fixtures import family, family_dirs, family_specials, load_texts  # noqa: F401

_SETTINGS = settings(max_examples=400, derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_pieces = st.one_of(
    st.text(max_size=12),  # any code point but surrogates
    st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "M")), max_size=12),
    st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "'s", "'LL", "\u200d", "\ufe0f", "\u0301", "1", "12345"]),
)


def _texts(specials: list[str]):
    extra = st.sampled_from(specials) if specials else st.just("")
    return st.lists(st.one_of(_pieces, _pieces, extra), max_size=8).map("".join)


def test_fuzz_encode_decode(family):
    name, ours, ref, folder = family
    specials = family_specials(load_texts(folder)[0])

    @_SETTINGS
    @given(_texts(specials))
    def check(s: str) -> None:
        ids = ref.encode(s).ids
        assert ours.encode(s) == ids, s
        assert ours.encode(s, add_special_tokens=False) == ref.encode(s, add_special_tokens=False).ids, s
        text = ref.decode(ids, skip_special_tokens=False)
        assert ours.decode(ids) == text
        dec = ours.stream_decoder()
        assert "".join(dec.push(i) for i in ids) + dec.flush() == text

    check()


def test_fuzz_decode_arbitrary_ids(family):
    """Any id sequence (byte tokens, specials, out-of-range ids): decode and streaming match."""
    name, ours, ref, folder = family
    n = ours.vocab_size
    byte_ids = [i for i in (ours.token_to_id(f"<0x{b:02X}>") for b in range(256)) if i is not None]
    low = min(n - 1, 600)
    ids_st = st.lists(st.one_of(st.integers(0, n + 3), st.integers(0, low), st.sampled_from(byte_ids or [0])),
                      max_size=24)

    @_SETTINGS
    @given(ids_st, st.booleans())
    def check(ids: list[int], skip: bool) -> None:
        want = ref.decode(ids, skip_special_tokens=skip)
        assert ours.decode(ids, skip_special_tokens=skip) == want
        dec = ours.stream_decoder(skip_special_tokens=skip)
        assert "".join(dec.push(i) for i in ids) + dec.flush() == want

    check()


def test_split_special_tokens_config(family):
    """tokenizer_config `split_special_tokens: true` = tokenizers' encode_special_tokens."""
    from intab.tokenizer import Tokenizer

    name, ours, ref, folder = family
    text, cfg = load_texts(folder)
    split = Tokenizer.from_json(text, {**cfg, "split_special_tokens": True})
    from tokenizers import Tokenizer as HF

    ref2 = HF.from_str(text)
    ref2.encode_special_tokens = True
    for s in family_specials(text)[:40]:
        probe = f"x{s} {s}\n{s}{s}y"
        assert split.encode(probe) == ref2.encode(probe).ids, probe
