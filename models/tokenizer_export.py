"""Write tokenizer.json and tokenizer_config.json from GGUF tokenizer metadata.

The GGUF says `tokenizer.ggml.pre = "smollm"`: llama.cpp splits digits one by one before the
GPT-2 byte-level regex. transformers' own GGUF conversion drops that step (it disagrees with
llama.cpp on digits and tabs), so the pre-tokenizer is written out explicitly here.
"""
from __future__ import annotations

import json
from pathlib import Path

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


def tokenizer_files(meta: dict) -> tuple[dict, dict]:
    """Build (tokenizer.json, tokenizer_config.json) dicts from GGUF `tokenizer.*` fields."""
    if meta["tokenizer.ggml.model"] != "gpt2":
        raise ValueError(f"unsupported GGUF tokenizer model {meta['tokenizer.ggml.model']!r}")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in _PRE_TOKENIZERS:
        raise ValueError(f"no pre-tokenizer recipe for GGUF tokenizer.ggml.pre={pre!r}")
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta["tokenizer.ggml.token_type"]
    merges: list[str] = meta["tokenizer.ggml.merges"]

    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": types[i] == _CONTROL}
        for i, t in enumerate(tokens) if types[i] in (_CONTROL, _USER_DEFINED)
    ]
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

    def name(key: str) -> str | None:
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        return None if i is None else tokens[i]

    special = [a["content"] for a in added if a["special"]]
    config = {
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
            for a in added
        },
        "additional_special_tokens": [t for t in special if t in ("<|im_start|>", "<|im_end|>")],
        "bos_token": name("bos"),
        "eos_token": name("eos"),
        "pad_token": name("padding"),
        "unk_token": name("unknown"),
        "chat_template": meta["tokenizer.chat_template"],
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get("context_length", 8192)),
        "tokenizer_class": "PreTrainedTokenizerFast",  # loads tokenizer.json as is; GPT2Tokenizer drops the Digits step
        "vocab_size": len(tokens),
    }
    return tok_json, config


def write_tokenizer(meta: dict, out_dir: Path) -> list[Path]:
    tok_json, config = tokenizer_files(meta)
    paths = [out_dir / "tokenizer.json", out_dir / "tokenizer_config.json"]
    paths[0].write_text(json.dumps(tok_json, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    paths[1].write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return paths
