"""Tokenizer features beyond the four shipped files, checked against `tokenizers` on edited specs.

Variants of the SmolLM2 tokenizer.json (added tokens with lstrip/rstrip/normalized, other
normalizers, split behaviours, decoders, post-processors) so the code paths a future model would
use are exact too, or refuse to load.
"""
from __future__ import annotations

import copy
import json

import pytest
from tokenizers import Tokenizer as HFTokenizer

from intab.errors import TokenizerError
from intab.tokenizer import Tokenizer
from tests.tokenizer_fixtures import family_dirs, load_texts  # noqa: F401

PROBES = [
    "", "Hello world", "  two  spaces  ", "x<|im_start|>y", " <|im_start|> ", "\t<|im_end|>\n\n", "<|im_end|><|im_end|>",
    "Ünïcödé 日本語 123 4567", "a\u030a A\u030a ﬁ Ⅻ", "don't STOP", "line1\nline2\r\n", "🎉<MARK> <MARK>x", "<mark>",
    "tail<MARK>", "  <MARK>  ", "MARKS", "a.b,c;d", "e\u0301",
]


@pytest.fixture(scope="module")
def smol_spec(family_dirs) -> dict:
    """SmolLM2's tokenizer.json cut to its first 2,000 merges (loads ~20x faster, same code paths)."""
    spec = json.loads(load_texts(str(family_dirs["smollm2"]))[0])
    model = spec["model"]
    merges = model["merges"][:2000]
    keep = {a["content"] for a in spec["added_tokens"]}
    keep |= {t for t in model["vocab"] if len(t) == 1}
    keep |= {a + b for a, b in merges}
    ordered = sorted(keep, key=lambda t: model["vocab"][t])
    model["vocab"] = {t: i for i, t in enumerate(ordered)}
    model["merges"] = merges
    return spec


def _check(spec: dict, probes=PROBES, config: dict | None = None) -> None:
    ref = HFTokenizer.from_str(json.dumps(spec))
    ours = Tokenizer.from_json(copy.deepcopy(spec), config)
    for s in probes:
        for add in (True, False):
            assert ours.encode(s, add) == ref.encode(s, add_special_tokens=add).ids, (s, add)
        ids = ref.encode(s).ids
        for skip in (False, True):
            assert ours.decode(ids, skip) == ref.decode(ids, skip_special_tokens=skip), (s, skip)
            dec = ours.stream_decoder(skip)
            assert "".join(dec.push(i) for i in ids) + dec.flush() == ref.decode(ids, skip_special_tokens=skip)


def _add(spec: dict, content: str, **flags) -> dict:
    spec = copy.deepcopy(spec)
    new_id = max(spec["model"]["vocab"].values()) + 1 + len(spec["added_tokens"])
    spec["added_tokens"].append({"id": new_id, "content": content, "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": False, **flags})
    return spec


@pytest.mark.parametrize("flags", [{}, {"lstrip": True}, {"rstrip": True}, {"lstrip": True, "rstrip": True},
                                   {"special": True, "lstrip": True}])
def test_added_token_flags(smol_spec, flags):
    _check(_add(smol_spec, "<MARK>", **flags))


def test_added_tokens_overlapping_longest_wins(smol_spec):
    spec = _add(_add(_add(smol_spec, "<MA"), "<MARK>"), "RK> <")
    _check(spec, PROBES + ["<MARK> <MARK>", "<MARK> <MA", "<MARK <MA<MARK>"])


def test_added_tokens_through_the_byte_level_decoder(smol_spec):
    """Added tokens go through the decoder too: one in the byte alphabet ("ü" = byte 0xFC) decodes
    to U+FFFD, one with a char outside it ("é ü") is taken as raw UTF-8 - both as tokenizers does."""
    spec = _add(_add(_add(smol_spec, "é ü"), "ü"), "Ġhi")
    _check(spec, PROBES + ["x é ü y", "ü", "aüb", "Ġhi there", "üé"])


def test_normalized_added_token(smol_spec):
    spec = _add(_add(smol_spec, "mark", normalized=True), "MaRk<", normalized=True)
    spec["normalizer"] = {"type": "Lowercase"}
    _check(spec, PROBES + ["MARK< x", "mark<", "Mark<MARK<"])
    spec["normalizer"] = None
    _check(spec, PROBES + ["MaRk< x", "mark<"])


@pytest.mark.parametrize("normalizer", [
    {"type": "NFC"}, {"type": "NFKC"}, {"type": "NFD"}, {"type": "NFKD"}, {"type": "Lowercase"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "_"},
    {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
    {"type": "Prepend", "prepend": "▁"},
    {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
])
def test_normalizers(smol_spec, normalizer):
    spec = copy.deepcopy(smol_spec)
    spec["normalizer"] = normalizer
    _check(spec)


@pytest.mark.parametrize("behavior", ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"])
@pytest.mark.parametrize("invert", [False, True])
def test_split_behaviours(smol_spec, behavior, invert):
    spec = copy.deepcopy(smol_spec)
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"\s+|\p{N}"}, "behavior": behavior, "invert": invert},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
    ]}
    _check(spec, PROBES + ["a  b   c", " lead", "trail ", "1 2  3", "x12y"])


@pytest.mark.parametrize("pre", [
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": False},
                                           {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                            "use_regex": True}]},
    {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": "o"}, "behavior": "Isolated",
                                            "invert": False},
                                           {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                            "use_regex": True}]},
])
def test_pre_tokenizers(smol_spec, pre):
    spec = copy.deepcopy(smol_spec)
    spec["pre_tokenizer"] = pre
    _check(spec, PROBES + ["12 345 6789x", "foo boo"])


def test_template_post_processor_and_no_decoder(smol_spec):
    spec = copy.deepcopy(smol_spec)
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]},
                           "<|im_end|>": {"id": "<|im_end|>", "ids": [2], "tokens": ["<|im_end|>"]}},
    }
    _check(spec)
    spec["decoder"] = None
    _check(spec)


def test_sequence_post_processor(smol_spec):
    spec = copy.deepcopy(smol_spec)
    spec["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}},
    ]}
    _check(spec)


def test_metaspace_and_strip_decoders(smol_spec):
    spec = copy.deepcopy(smol_spec)
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "Ġ"}, "content": "▁"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
    ]}
    _check(spec)
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "Ġ"}, "content": " "}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ]}
    _check(spec)


def test_unsupported_parts_refuse_to_load(smol_spec):
    for path, value in [(("model", "type"), "WordPiece"), (("pre_tokenizer",), {"type": "Whitespace"}),
                        (("normalizer",), {"type": "BertNormalizer"}), (("decoder",), {"type": "WordPiece"}),
                        (("post_processor",), {"type": "BertProcessing"}), (("model", "dropout"), 0.1)]:
        spec = copy.deepcopy(smol_spec)
        node = spec
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        with pytest.raises(TokenizerError):
            Tokenizer.from_json(spec)
    with pytest.raises(TokenizerError):
        Tokenizer.from_json("{not json")
    with pytest.raises(TokenizerError):
        Tokenizer.from_json({"model": {"type": "BPE"}})
    spec = copy.deepcopy(smol_spec)
    spec["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": r"\p{Greek}+"}, "behavior": "Isolated"}
    with pytest.raises(TokenizerError):
        Tokenizer.from_json(spec)


def test_fuzz_feature_mix(smol_spec):
    """Arbitrary text through lstrip/rstrip/normalized added tokens, NFKC+Lowercase, Split + ByteLevel."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    spec = _add(_add(_add(smol_spec, "<L>", lstrip=True), "<R>", rstrip=True, special=True), "ǅx", normalized=True)
    spec["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]}
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r" ?\p{L}+|\p{N}{1,3}|\s+(?!\S)|\s+"}, "behavior": "MergedWithNext",
         "invert": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False},
    ]}
    ref = HFTokenizer.from_str(json.dumps(spec))
    ours = Tokenizer.from_json(copy.deepcopy(spec))
    pieces = st.one_of(st.text(max_size=8), st.sampled_from(["<L>", "<R>", "ǅX", "ǆx", " ", "\t\n", "12345", "ﬁ"]))

    @settings(max_examples=300, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(pieces, max_size=8).map("".join))
    def check(s: str) -> None:
        import unicodedata

        if any(unicodedata.category(c) == "Cn" for c in s):  # NFKC/lower use this interpreter's tables
            return
        ids = ref.encode(s).ids
        assert ours.encode(s) == ids
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=False)

    check()
