"""py/intab/arch/gguf_reader.py, the pure-Python GGUF header reader the tab will use on a user's
file (issue 13.5): the same metadata and tensor table as gguf-py's GGUFReader, and from it, with no
numpy, the same config.json and tokenizer files as the build (which reads through gguf-py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from intab import arch
from intab.arch.gguf_reader import Truncated, read_header
from intab.arch.tokenizer import tokenizer_files
from models.gguf_source import GGUFModel
from models.recipes import DEFAULT
from models.synthetic import TINY, write_gguf


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=0, abs_tol=0) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def check(path):
    ref = GGUFModel(path)
    h = read_header(path.read_bytes()[:64 << 20])
    assert set(h.meta) == set(ref.meta)
    for k, v in ref.meta.items():
        want = v.tolist() if isinstance(v, np.ndarray) else v
        assert same(h.meta[k], want), k
    assert list(h.tensors) == list(ref.tensors)
    for name, t in ref.tensors.items():
        mine = h.tensors[name]
        assert mine.kind == t.tensor_type.name and mine.shape == tuple(int(d) for d in t.shape), name
        assert mine.offset == t.data_offset and mine.nbytes == t.n_bytes, name
    a = arch.get(h.meta["general.architecture"])
    assert a.config(h.meta, h.tensors) == ref.config().to_hf()
    assert a.parts(h.meta, h.tensors) == ref.config().parts
    return h, ref


def test_real_gguf_smollm2(built_model_dir):
    from models.source import fetch_gguf
    from pathlib import Path

    path = fetch_gguf(DEFAULT, Path(built_model_dir).parents[1])
    h, ref = check(path)
    assert tokenizer_files(h.meta) == tokenizer_files(ref.meta)


def test_real_gguf_gemma3(gemma_dir):
    from models.recipes import GEMMA3_270M
    from models.source import fetch_gguf

    h, _ = check(fetch_gguf(GEMMA3_270M, gemma_dir.parents[1]))
    assert h.meta["tokenizer.ggml.model"] == "llama" and h.tensors["blk.0.ffn_down.weight"].kind == "Q6_K"


@pytest.mark.parametrize("name", sorted(TINY))
def test_synthetic(name, tmp_path):
    check(write_gguf(TINY[name], tmp_path / f"{name}.gguf"))


def test_truncated_header_asks_for_more_bytes(tmp_path):
    data = write_gguf(TINY["tiny-llama"], tmp_path / "t.gguf").read_bytes()
    size, asked = 1000, 0
    while True:   # as the tab reads: more bytes each time the reader asks
        try:
            h = read_header(data[:size])
            break
        except Truncated as e:
            assert e.needed > size and e.hint
            size, asked = e.needed, asked + 1
    assert asked >= 2 and h.tensors and size < len(data)


def test_not_a_gguf():
    with pytest.raises(arch.ArchError, match="not a GGUF"):
        read_header(b"PK\x03\x04" + bytes(100))
