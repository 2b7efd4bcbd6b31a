"""Masks equal llguidance's (PyPI llguidance, the reference engine; CPython only) on the states a
real answer passes through, for regexes, choices and JSON Schemas, with the same grammar settings
(llguidance's JSON whitespace set to intab's: one space, or a newline and up to 20 spaces)."""
from __future__ import annotations

import json

import pytest

llguidance = pytest.importorskip("llguidance")

from intab.constrain import ConstraintCompiler, ConstraintSpec  # noqa: E402

WS = {"whitespace_pattern": "( |\\n {0,20})"}
CASES = [
    ("regex", r"[0-9]{3}-[0-9]{4}", "555-1234"),
    ("regex", r"(yes|no|maybe)( because [a-z ]{1,40})?", "maybe because it rains"),
    ("regex", r"[A-Z][a-z]+ [A-Z][a-z]+, [0-9]{4}", "Marie Curie, 1867"),
    ("regex", r"https?://[a-z0-9.]+(/[a-z0-9_-]*)*", "https://example.org/a/b_c"),
    ("regex", r'"([^"\\]|\\.)*"', '"a \\"quoted\\" word"'),
    ("regex", r"[^\n]{0,30}é€😀", "any text, here é€😀"),
    ("choices", ["positive", "negative", "neutral"], "neutral"),
    ("json", {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}, {"name": "Alice \"A\" é", "age": 31}),
    ("json", {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                                               "ok": {"type": "boolean"}, "score": {"type": "number"}},
              "required": ["tags", "ok", "score"], "additionalProperties": False},
     {"tags": ["x", "yz"], "ok": True, "score": -12.5e3}),
    ("json", {"type": "object", "properties": {"kind": {"enum": ["a", "b"]}, "n": {"type": ["integer", "null"]}},
              "required": ["kind", "n"], "additionalProperties": False}, {"kind": "b", "n": None}),
    ("json", {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}},
                                         "required": ["id"], "additionalProperties": False}},
     [{"id": 1}, {"id": 22}]),
]


def forced_difference(mine: int, theirs: int, hf) -> bool:
    """llguidance allows only the canonical token where the text is forced (e.g. an object key):
    then its mask is one token, ours adds that token's prefixes (the same bytes, split)."""
    only = [i for i in range(49152) if (theirs >> i) & 1]
    if len(only) != 1 or theirs & ~mine:
        return False
    forced = hf.convert_ids_to_tokens(only[0])
    extra = [hf.convert_ids_to_tokens(i) for i in range(49152) if (mine >> i) & 1 and not (theirs >> i) & 1]
    return all(forced.startswith(t) for t in extra)


@pytest.fixture(scope="module")
def setup(built_model_dir):
    from transformers import PreTrainedTokenizerFast
    import llguidance.hf
    from intab.constrain import TokenIndex
    from intab.tokenizer import Tokenizer
    hf = PreTrainedTokenizerFast(tokenizer_file=str(built_model_dir / "tokenizer.json"))
    ll = llguidance.hf.from_tokenizer(hf, n_vocab=49152, eos_token=2)
    tok = Tokenizer.from_json((built_model_dir / "tokenizer.json").read_text(),
                              json.loads((built_model_dir / "tokenizer_config.json").read_text()))
    return hf, ll, ConstraintCompiler(TokenIndex.for_tokenizer(tok, [2]))


def grammars(kind, source):
    if kind == "regex":
        return ConstraintSpec("regex", source), llguidance.LLMatcher.grammar_from_regex(source)
    if kind == "choices":
        rx = "|".join(s for s in source)
        return ConstraintSpec("choices", tuple(source)), llguidance.LLMatcher.grammar_from_regex(rx)
    ll_schema = dict(source, **{"x-guidance": WS})
    return ConstraintSpec("json_schema", source), llguidance.LLMatcher.grammar_from_json_schema(json.dumps(ll_schema))


@pytest.mark.parametrize("kind,source,answer", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_masks_equal_llguidance(setup, kind, source, answer):
    hf, ll, compiler = setup
    spec, ll_grammar = grammars(kind, source)
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, separators=(",", ": "))
    ids = hf.encode(text, add_special_tokens=False) + [2]
    m = compiler.compile(spec).matcher()
    ref = llguidance.LLMatcher(ll, ll_grammar)
    assert not ref.is_error(), ref.get_error()
    for step, t in enumerate(ids):
        full = (1 << 49152) - 1   # llguidance's words may carry bits past the vocabulary
        a = int.from_bytes(m.mask(), "little") & full
        b = int.from_bytes(bytes(ref.compute_bitmask()), "little") & full
        if a != b and not forced_difference(a, b, hf):
            only_mine = [i for i in range(49152) if (a >> i) & 1 and not (b >> i) & 1][:8]
            only_theirs = [i for i in range(49152) if (b >> i) & 1 and not (a >> i) & 1][:8]
            pytest.fail(f"step {step} after {hf.decode(ids[:step])!r}: only intab allows "
                        f"{[hf.decode([i]) for i in only_mine]}, only llguidance {[hf.decode([i]) for i in only_theirs]}")
        m.accept(t)
        assert ref.consume_token(t), ref.get_error()
    assert m.accepting
