"""Shared by the constraint tests: the real vocabulary, and matching text through an automaton."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / ".cache" / "build" / "smollm2-135m-instruct"


def matches(grammar, text: str) -> bool:
    from intab.constrain.automaton import Automaton
    a = grammar if isinstance(grammar, Automaton) else Automaton(grammar)
    s = a.step_bytes(a.start, text.encode("utf-8", "surrogatepass"))
    return s >= 0 and a.accepting(s)


@lru_cache(maxsize=1)
def smollm_tokenizer():
    from intab.tokenizer import Tokenizer
    return Tokenizer.from_json((MODEL / "tokenizer.json").read_text(),
                               json.loads((MODEL / "tokenizer_config.json").read_text()))


@lru_cache(maxsize=1)
def smollm_index():
    from intab.constrain import TokenIndex
    return TokenIndex.for_tokenizer(smollm_tokenizer(), [2])
