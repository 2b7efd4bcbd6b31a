"""Decoders of HF `tokenizers` (token strings -> text) and the streaming detokenizer.

The streaming decoder must give, concatenated, exactly `Tokenizer.decode(all_ids)` while never
emitting half a character. It keeps a small window of tokens since the last "cut point": a place
where decode(left) + decode(right) == decode(left + right) holds for any continuation. Each decoder
chain says where such cuts are (ByteLevel: the byte stream is not inside an unfinished UTF-8
sequence; ByteFallback: the last token is not a `<0x..>` byte token). Chains with context we
cannot cut (e.g. Metaspace stripping the first space) keep the whole history instead.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from intab.errors import TokenizerError
from intab.pretokenize import byte_to_unicode

if TYPE_CHECKING:  # pragma: no cover
    from intab.tokenizer import Tokenizer


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    return {c: b for b, c in enumerate(byte_to_unicode())}


def _byte_token(tok: str) -> int | None:
    """`<0xAB>` -> 0xAB, as tokenizers' ByteFallback reads it (6 chars, 2 hex digits)."""
    if len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
        h = tok[3:5]
        if h[0] in "+0123456789abcdefABCDEF" and h[1] in "0123456789abcdefABCDEF":
            return int(h, 16)
    return None


def _lossy(data: bytes) -> str:
    return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Step:
    """One decoder of a chain: `kind` and its parameters."""

    kind: str
    a: str = ""
    b: str = ""
    start: int = 0
    stop: int = 0


class DecoderChain:
    """A `decoder` section of tokenizer.json: `decode(tokens) -> str` as HF's `decode_chain` + join."""

    def __init__(self, steps: list[_Step]):
        self.steps = steps
        kinds = [s.kind for s in steps]
        self._only_byte_level = kinds == ["ByteLevel"]
        # Chains whose per-token output depends on no context but runs of byte tokens.
        self._byte_fallback_like = bool(steps) and all(k in ("Replace", "ByteFallback", "Fuse") for k in kinds)
        self._has_byte_fallback = "ByteFallback" in kinds

    @classmethod
    def from_json(cls, cfg: dict | None) -> "DecoderChain":
        return cls(list(_parse(cfg)))

    def token_bytes(self, tok: str) -> bytes:
        """ByteLevel decoding of one token (raw UTF-8 when a char is outside the byte alphabet)."""
        table = _unicode_to_byte()
        try:
            return bytes([table[c] for c in tok])
        except KeyError:
            return tok.encode("utf-8")

    def decode(self, tokens: list[str]) -> str:
        if not self.steps:  # no decoder: tokenizers joins the tokens with spaces
            return " ".join(tokens)
        if self._only_byte_level:
            return _lossy(b"".join([self.token_bytes(t) for t in tokens]))
        toks = list(tokens)
        for st in self.steps:
            toks = self._apply(st, toks)
        return "".join(toks)

    def _apply(self, st: _Step, toks: list[str]) -> list[str]:
        k = st.kind
        if k == "ByteLevel":
            return [_lossy(b"".join([self.token_bytes(t) for t in toks]))]
        if k == "Replace":
            return [t.replace(st.a, st.b) for t in toks]
        if k == "Fuse":
            return ["".join(toks)]
        if k == "ByteFallback":
            out: list[str] = []
            pend: list[int] = []
            for t in toks:
                b = _byte_token(t)
                if b is not None:
                    pend.append(b)
                    continue
                if pend:
                    out.extend(_fallback_bytes(pend))
                    pend = []
                out.append(t)
            if pend:
                out.extend(_fallback_bytes(pend))
            return out
        if k == "Strip":
            out = []
            for t in toks:
                s = t
                for _ in range(st.start):
                    if s.startswith(st.a):
                        s = s[len(st.a):]
                for _ in range(st.stop):
                    if s.endswith(st.a):
                        s = s[: len(s) - len(st.a)]
                out.append(s)
            return out
        if k == "Metaspace":  # the first token loses every replacement char unless prepend_scheme is never
            first = "" if st.b != "never" else " "
            return [t.replace(st.a, first if i == 0 else " ") for i, t in enumerate(toks)]
        raise TokenizerError(f"unsupported decoder {k!r}")  # pragma: no cover - filtered in _parse

    def cut_safe(self, tokens: list[str]) -> bool | None:
        """May decoding restart after `tokens`? None: this chain has no cut points (keep all)."""
        if not tokens:
            return True
        if not self.steps:
            return None
        if self._only_byte_level:
            dec = codecs.getincrementaldecoder("utf-8")("replace")
            tail = b"".join([self.token_bytes(t) for t in tokens[-4:]])
            dec.decode(tail[-4:], False)
            return not dec.getstate()[0]
        if self._byte_fallback_like:
            return not (self._has_byte_fallback and _byte_token(tokens[-1]) is not None)
        return None


def _fallback_bytes(pend: list[int]) -> list[str]:
    try:
        return [bytes(pend).decode("utf-8")]
    except UnicodeDecodeError:
        return ["\ufffd"] * len(pend)


def _parse(cfg: dict | None):
    if cfg is None:
        return
    k = cfg.get("type")
    if k == "Sequence":
        for sub in cfg["decoders"]:
            yield from _parse(sub)
    elif k == "ByteLevel":
        yield _Step("ByteLevel")
    elif k in ("ByteFallback", "Fuse"):
        yield _Step(k)
    elif k == "Replace":
        pat = cfg["pattern"]
        if "String" not in pat:
            raise TokenizerError("only String patterns are supported in the Replace decoder")
        yield _Step("Replace", pat["String"], cfg["content"])
    elif k == "Strip":
        yield _Step("Strip", cfg["content"], start=int(cfg.get("start", 0)), stop=int(cfg.get("stop", 0)))
    elif k == "Metaspace":
        scheme = cfg.get("prepend_scheme")
        if scheme is None:
            scheme = "always" if cfg.get("add_prefix_space", True) else "never"
        yield _Step("Metaspace", cfg.get("replacement", "\u2581"), scheme)
    else:
        raise TokenizerError(f"unsupported decoder {k!r}")


@dataclass
class StreamDecoder:
    """Incremental detokenizer: `push(id)` returns the newly completed text, `flush()` the rest."""

    tokenizer: "Tokenizer"
    skip_special_tokens: bool = False
    _window: list[str] = field(default_factory=list)
    _emitted: int = 0  # chars of decode(_window) already returned

    def push(self, token_id: int) -> str:
        tok = self.tokenizer._token_for_decode(token_id, self.skip_special_tokens)
        if tok is None:
            return ""
        self._window.append(tok)
        chain = self.tokenizer._decoder
        cut = chain.cut_safe(self._window)
        if cut:
            text = chain.decode(self._window)
            delta = text[self._emitted:]
            self._window = []
            self._emitted = 0
            return delta
        if cut is None:
            text = chain.decode(self._window)
            if len(text) > self._emitted and not text.endswith("\ufffd"):
                delta = text[self._emitted:]
                self._emitted = len(text)
                return delta
        return ""

    def flush(self) -> str:
        text = self.tokenizer._decoder.decode(self._window) if self._window else ""
        delta = text[self._emitted:]
        self._window = []
        self._emitted = 0
        return delta
