"""A GGUF file's header in pure Python: metadata and tensor table, no numpy, no weights read.

The tab (Pyodide) has the first bytes of a user's GGUF in memory; `read_header(buf)` turns them
into what intab.arch needs to build config.json, tokenizer.json and the weights layout (each
tensor's kind, shape and byte offset), so the blocks themselves can go to weights.bin unread.
A buffer that ends inside the header raises `Truncated` with the length to read instead.
The format: github.com/ggml-org/ggml docs/gguf.md (versions 2 and 3, little-endian).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .base import BLOCK_KINDS, KIND_BY_TYPE_ID, OTHER_TYPE_NAMES, ArchError

MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class Truncated(ArchError):
    """The buffer ends inside the header: read at least `needed` bytes and call again."""

    def __init__(self, needed: int):
        super().__init__(f"the GGUF header needs at least {needed} bytes", "Read more of the file and try again.")
        self.needed = needed


@dataclass(frozen=True)
class TensorInfo:
    name: str
    kind: str                 # block kind name (BLOCK_KINDS), or "type <id>" for one intab does not know
    shape: tuple[int, ...]    # GGUF order: shape[0] is the row length (values per row)
    offset: int               # byte offset of the data in the file
    nbytes: int               # 0 for a kind intab does not know

    @property
    def rows_cols(self) -> tuple[int, int]:
        """[out, in] as a matrix (a vector: 1 row)."""
        cols = self.shape[0]
        rows = 1
        for d in self.shape[1:]:
            rows *= d
        return rows, cols


@dataclass(frozen=True)
class Header:
    version: int
    meta: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data_offset: int          # where the tensor data starts (aligned)


class _Cursor:
    def __init__(self, buf) -> None:
        self.buf = memoryview(buf)
        self.at = 0

    def need(self, n: int) -> None:
        if self.at + n > len(self.buf):
            raise Truncated(max(self.at + n, 2 * len(self.buf)))

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        v = struct.unpack_from(fmt, self.buf, self.at)[0]
        self.at += size
        return v

    def string(self) -> str:
        n = self.unpack("<Q")
        self.need(n)
        s = bytes(self.buf[self.at:self.at + n]).decode("utf-8", errors="replace")
        self.at += n
        return s

    def strings(self, count: int) -> list[str]:
        """An array of strings (a vocabulary, merges: ~100,000 of them) in one loop with locals:
        SmolLM2's header reads in 76 ms instead of 133 ms (CPython; string() per item before)."""
        buf, at, end, out = self.buf, self.at, len(self.buf), []
        length = struct.Struct("<Q").unpack_from
        for _ in range(count):
            if at + 8 > end:
                raise Truncated(max(at + 8, 2 * end))
            n = length(buf, at)[0]
            at += 8
            if at + n > end:
                raise Truncated(max(at + n, 2 * end))
            out.append(str(buf[at:at + n], "utf-8", "replace"))
            at += n
        self.at = at
        return out

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.unpack("<I"), self.unpack("<Q")
            if itype in _SCALARS:   # one struct call for the whole array (token types, scores)
                fmt = _SCALARS[itype]
                size = struct.calcsize(fmt) * count
                self.need(size)
                out = list(struct.unpack_from(f"<{count}{fmt[1]}", self.buf, self.at))
                self.at += size
                return out
            if itype == _STRING:
                return self.strings(count)
            return [self.value(itype) for _ in range(count)]
        raise ArchError(f"GGUF metadata value of unknown type {vtype}", "The file is damaged or not a GGUF.")


def read_header(buf) -> Header:
    """Metadata and tensor table of a GGUF from its first bytes (bytes, bytearray or memoryview)."""
    c = _Cursor(buf)
    c.need(4)
    if bytes(c.buf[:4]) != MAGIC:
        raise ArchError("this file is not a GGUF (it does not start with 'GGUF')", "Choose a .gguf model file.")
    c.at = 4
    version = c.unpack("<I")
    if version not in (2, 3):
        raise ArchError(f"GGUF version {version} is not supported", "Convert the model with a recent llama.cpp (GGUF v3).")
    n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.unpack("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        dims = tuple(c.unpack("<Q") for _ in range(c.unpack("<I")))
        tid, offset = c.unpack("<I"), c.unpack("<Q")
        infos.append((name, dims, tid, offset))
    align = int(meta.get("general.alignment", 32))
    data = (c.at + align - 1) // align * align
    tensors = {}
    for name, dims, tid, offset in infos:
        kind = KIND_BY_TYPE_ID.get(tid) or OTHER_TYPE_NAMES.get(tid) or f"type {tid}"
        nbytes = 0
        if kind in BLOCK_KINDS:
            _, per, size = BLOCK_KINDS[kind]
            count = 1
            for d in dims:
                count *= d
            nbytes = count // per * size
        tensors[name] = TensorInfo(name, kind, dims, data + offset, nbytes)
    return Header(version, meta, tensors, data)
