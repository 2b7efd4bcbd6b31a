"""The vocabulary as the constraint engine sees it: each token's bytes, in a token trie.

Built once per tokenizer and shared by every constraint on it (`TokenIndex.for_tokenizer`).
The trie is flat, in preorder (llguidance's layout): per node its byte, its depth and the index
just past its subtree, so a walk that finds a prefix dead skips the whole subtree with one jump.

Dense states (the inside of a JSON string allows ~47,900 of SmolLM2's 49,152 tokens) would make
every walk visit the whole trie (~100k nodes, tens of ms in Python). For them `pure_mask(chars)`
precomputes, per class of characters that loop a state back to itself, the tokens made only of
such characters; only the other tokens (a few hundred: quotes, escapes, partial UTF-8) are walked.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .ir import Intervals, contains


@dataclass
class Trie:
    """Flat preorder trie: node i has byte[i], depth[i] (0 = a child of the root), end[i] (index
    after its subtree) and tokens ending there (tok[i] >= 0, or -2 when several: see `more`)."""
    byte: array
    depth: array
    end: array
    tok: array
    more: dict[int, list[int]] = field(default_factory=dict)
    max_depth: int = 0

    @classmethod
    def build(cls, items: Iterable[tuple[bytes, int]]) -> "Trie":
        pairs = sorted((b, t) for b, t in items if b)
        byte, depth, end, tok = array("B"), array("H"), array("i"), array("i")
        more: dict[int, list[int]] = {}
        stack: list[int] = []        # node index per depth along the current path
        prev = b""
        for data, t in pairs:
            common = 0
            for x, y in zip(prev, data):
                if x != y:
                    break
                common += 1
            if common == len(data) and common == len(prev):   # the same bytes again
                node = stack[len(data) - 1]
                more.setdefault(node, [tok[node]]).append(t)
                tok[node] = -2
                continue
            for d in range(len(stack) - 1, common - 1, -1):    # close nodes below the shared prefix
                end[stack[d]] = len(byte)
            del stack[common:]
            for d in range(common, len(data)):
                stack.append(len(byte))
                byte.append(data[d])
                depth.append(d)
                end.append(0)
                tok.append(-1)
            tok[stack[-1]] = t
            prev = data
        for node in stack:
            end[node] = len(byte)
        return cls(byte, depth, end, tok, more, max(depth) + 1 if depth else 0)

    def walk(self, start: int, step: Callable[[int, int], int], out: bytearray) -> None:
        """Set bit t of `out` for every token t whose bytes `step` can take from `start`."""
        byte, depth, end, tok, more = self.byte, self.depth, self.end, self.tok, self.more
        states = [start] * (self.max_depth + 1)
        n, total = 0, len(byte)
        while n < total:
            s = step(states[depth[n]], byte[n])
            if s < 0:
                n = end[n]
                continue
            states[depth[n] + 1] = s
            t = tok[n]
            if t >= 0:
                out[t >> 3] |= 1 << (t & 7)
            elif t == -2:
                for u in more[n]:
                    out[u >> 3] |= 1 << (u & 7)
            n += 1


class TokenIndex:
    """Token bytes, the trie, and the per-character-class tables of one vocabulary."""

    def __init__(self, token_bytes: Sequence[bytes | None], eos_ids: Iterable[int]):
        self.vocab_size = len(token_bytes)
        self.words = (self.vocab_size + 31) // 32
        self.token_bytes = list(token_bytes)
        self.eos_ids = frozenset(eos_ids)
        self.trie = Trie.build((b, t) for t, b in enumerate(self.token_bytes) if b)
        # For pure(): per ASCII byte, the ASCII-only tokens that contain it (as bitmasks), so the
        # tokens free of a set of bytes are one AND-NOT of a few ORs; other tokens are decoded.
        words = self.words * 4
        per_byte = [bytearray(words) for _ in range(128)]
        ascii_all = bytearray(words)
        self._other: list[tuple[int, bytes]] = []
        for t, b in enumerate(self.token_bytes):
            if not b:
                continue
            if max(b) < 0x80:
                ascii_all[t >> 3] |= 1 << (t & 7)
                bit, at = 1 << (t & 7), t >> 3
                for x in set(b):
                    per_byte[x][at] |= bit
            else:
                self._other.append((t, b))
        self._ascii_all = int.from_bytes(ascii_all, "little")
        self._byte_tokens = [int.from_bytes(m, "little") for m in per_byte]
        self._pure: dict[Intervals, tuple[int, Trie] | None] = {}

    @classmethod
    def for_tokenizer(cls, tokenizer, eos_ids: Iterable[int]) -> "TokenIndex":
        """From an `intab.tokenizer.Tokenizer`: special tokens have no bytes (a constraint never
        allows them; EOS is allowed where the match is complete)."""
        special = tokenizer.special_ids
        return cls([None if i in special else tokenizer.token_bytes(i) or None for i in range(tokenizer.vocab_size)],
                   eos_ids)

    def empty(self) -> bytearray:
        return bytearray(self.words * 4)

    def pure(self, chars: Intervals) -> tuple[int, Trie] | None:
        """For a class of characters that loop a state back to itself: (bitmask of the tokens made
        only of them, whole characters only; a trie of every other token's bytes from its first
        character outside the class on). None when fewer than half the tokens are pure (a walk of
        the whole trie is then cheaper than building the other trie). Cached per class."""
        if chars in self._pure:
            return self._pure[chars]
        bad = 0
        for x in range(128):
            if not contains(chars, x):
                bad |= self._byte_tokens[x]
        pure = self._ascii_all & ~bad
        rest: list[tuple[bytes, int]] = []
        for t, b in self._other:
            k = _clean_prefix(b, chars)
            if k == len(b):
                pure |= 1 << t
            else:
                rest.append((b[k:], t))
        hit = None
        if pure.bit_count() * 2 >= self.vocab_size:
            data = (self._ascii_all & bad).to_bytes(self.words * 4, "little")
            for at, byte in enumerate(data):
                while byte:
                    low = byte & -byte
                    t = at * 8 + low.bit_length() - 1
                    byte ^= low
                    b = self.token_bytes[t]
                    k = next(i for i, x in enumerate(b) if not contains(chars, x))
                    rest.append((b[k:], t))
            hit = (pure, Trie.build(rest))
        self._pure[chars] = hit
        return hit


def _clean_prefix(b: bytes, chars: Intervals) -> int:
    """Bytes at the start of b that are whole UTF-8 characters, all in `chars`."""
    i = 0
    while i < len(b):
        x = b[i]
        n = 1 if x < 0x80 else 2 if 0xC2 <= x < 0xE0 else 3 if 0xE0 <= x < 0xF0 else 4 if 0xF0 <= x < 0xF5 else 0
        if n == 0 or i + n > len(b):
            return i
        try:
            c = b[i:i + n].decode("utf-8")
        except UnicodeDecodeError:
            return i
        if not contains(chars, ord(c)):
            return i
        i += n
    return i
