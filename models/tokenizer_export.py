"""Write tokenizer.json and tokenizer_config.json for a model folder from GGUF tokenizer metadata.

The conversion itself is intab.arch.tokenizer (pure Python, so the tab can run it on a user's GGUF).
"""
from __future__ import annotations

import json
from pathlib import Path

from intab.arch.tokenizer import tokenizer_files

__all__ = ["tokenizer_files", "write_tokenizer"]


def write_tokenizer(meta: dict, out_dir: Path) -> list[Path]:
    tok_json, config = tokenizer_files(meta)
    paths = [out_dir / "tokenizer.json", out_dir / "tokenizer_config.json"]
    paths[0].write_text(json.dumps(tok_json, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    paths[1].write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return paths
