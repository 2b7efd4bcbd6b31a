"""tokenizer.json and tokenizer_config.json from a GGUF's `tokenizer.*` metadata, as transformers'
GGUF loader builds them (integrations/gguf/gguf_tokenizer_mapping.py), so that the ids equal
the reference's. Pure Python: the tab will build them from a user's GGUF (issue 13.5).

Two tokenizer models:
- "gpt2" (byte-level BPE with merges: SmolLM2, Qwen, Llama 3). The pre-tokenizer comes from
  `tokenizer.ggml.pre`; for "smollm" the GGUF's llama.cpp splits digits one by one before the GPT-2
  regex, a step transformers' own conversion drops (it disagrees with llama.cpp on digits and
  tabs), so it is written out here.
- "llama" (sentencepiece BPE with scores, no merges: Gemma). Gemma's merges are rebuilt from the
  vocabulary, best-first by the order tokens appear in the file (its scores do not follow the
  merge order), and whitespace-only tokens stored with real spaces are respelled with U+2581,
  as transformers' gemma_tokenizer does.
"""
from __future__ import annotations

from typing import Any, Mapping

from .base import ArchError

# llama.cpp token types (gguf.TokenType)
_CONTROL = 3
_USER_DEFINED = 4

_PRE_TOKENIZERS = {
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    },
}


def tokenizer_files(meta: Mapping[str, Any]) -> tuple[dict, dict]:
    """(tokenizer.json, tokenizer_config.json) dicts from the GGUF's metadata."""
    model = meta.get("tokenizer.ggml.model")
    if model == "gpt2":
        return _byte_level(meta)
    if model == "llama" and meta.get("general.architecture") in ("gemma", "gemma2", "gemma3"):
        return _gemma(meta)
    raise ArchError(f"GGUF tokenizer model {model!r} is not supported here (architecture "
                    f"{meta.get('general.architecture')!r})",
                    "Supported: byte-level BPE (gpt2: SmolLM2, Qwen, Llama 3) and Gemma's sentencepiece BPE.")


def _added(tokens: list[str], types: list[int], keep=lambda i, t: True) -> list[dict]:
    return [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": types[i] == _CONTROL}
            for i, t in enumerate(tokens) if types[i] in (_CONTROL, _USER_DEFINED) and keep(i, t)]


def _name(meta: Mapping[str, Any], tokens: list[str], key: str) -> str | None:
    i = meta.get(f"tokenizer.ggml.{key}_token_id")
    return None if i is None else tokens[int(i)]


def _config(meta: Mapping[str, Any], tokens: list[str], added: list[dict], **fields: Any) -> dict:
    arch = meta.get("general.architecture", "llama")
    config = {
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
            for a in added
        },
        "additional_special_tokens": [],
        "bos_token": _name(meta, tokens, "bos"),
        "eos_token": _name(meta, tokens, "eos"),
        "pad_token": _name(meta, tokens, "padding"),
        "unk_token": _name(meta, tokens, "unknown"),
        "chat_template": meta.get("tokenizer.chat_template"),
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get(f"{arch}.context_length", 8192)),
        "tokenizer_class": "PreTrainedTokenizerFast",  # loads tokenizer.json as is; GPT2Tokenizer drops the Digits step
        "vocab_size": len(tokens),
    }
    config.update(fields)
    return config


def _byte_level(meta: Mapping[str, Any]) -> tuple[dict, dict]:
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in _PRE_TOKENIZERS:
        raise ArchError(f"no pre-tokenizer recipe for GGUF tokenizer.ggml.pre={pre!r}",
                        f"Supported: {', '.join(_PRE_TOKENIZERS)}.")
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta["tokenizer.ggml.token_type"]
    merges: list[str] = meta["tokenizer.ggml.merges"]
    added = _added(tokens, types)
    tok_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": _PRE_TOKENIZERS[pre],
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in merges],
        },
    }
    special = [a["content"] for a in added if a["special"]]
    config = _config(meta, tokens, added,
                     additional_special_tokens=[t for t in special if t in ("<|im_start|>", "<|im_end|>")])
    if config["chat_template"] is None:
        del config["chat_template"]
    return tok_json, config


def generate_merges(vocab: Mapping[str, int], scores: Mapping[str, float]) -> list[tuple[str, str]]:
    """transformers' generate_merges(vocab, vocab_scores): every split of a token into two
    vocabulary tokens, best score first (then shorter left, shorter right), ties in vocabulary order."""
    merges: list[tuple[str, str, float]] = []
    for token, score in scores.items():
        local = [(token[:i], token[i:], score) for i in range(1, len(token))
                 if token[:i] in vocab and token[i:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda v: (v[2], len(v[0]), len(v[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def _gemma(meta: Mapping[str, Any]) -> tuple[dict, dict]:
    raw: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta["tokenizer.ggml.token_type"]
    # A token of spaces only is stored with real spaces; GemmaTokenizer looks it up as U+2581s.
    tokens = ["\u2581" * len(t) if " " in t and not t.strip() else t for t in raw]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = generate_merges(vocab, {t: -i for i, t in enumerate(tokens)})
    unk = _name(meta, tokens, "unknown") or "<unk>"
    # transformers adds control tokens as special, and user-defined ones found in the vocabulary
    # (checked against the respelled spelling) as plain added tokens.
    added = _added(tokens, types, keep=lambda i, t: types[i] == _CONTROL or raw[i] in vocab)
    bos = _name(meta, tokens, "bos")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", True))
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    eos = _name(meta, tokens, "eos")
    def template(seq: str, type_id: int) -> list[dict]:   # transformers' update_post_processor
        return ([{"SpecialToken": {"id": bos, "type_id": type_id}}] if add_bos else []) + \
            [{"Sequence": {"id": seq, "type_id": type_id}}] + \
            ([{"SpecialToken": {"id": eos, "type_id": type_id}}] if add_eos else [])
    specials = {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in ([bos] if add_bos else []) + ([eos] if add_eos else [])}
    tok_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        "post_processor": {"type": "TemplateProcessing", "single": template("A", 0),
                           "pair": template("A", 0) + template("B", 1), "special_tokens": specials},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": vocab, "merges": [list(m) for m in merges],
        },
    }
    config = _config(meta, tokens, added, add_bos_token=add_bos, add_eos_token=add_eos)
    if config["chat_template"] is None:   # a base model: text completion only
        del config["chat_template"]
    return tok_json, config
