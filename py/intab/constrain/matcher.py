"""A compiled constraint following a generation: the allowed-token mask per step, and the
state after each token. The sampler interface of llama.cpp: `apply`, `accept`, `reset`.

Masks are ⌈vocab/32⌉ little-endian uint32 words (bit i of the mask = token i allowed), the layout
of llguidance and xgrammar, computed from the token trie and cached per automaton state: a state
seen before costs a dict lookup. EOS is allowed exactly where the text so far is complete.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..candidates import Candidates
from .automaton import DEAD, Automaton
from .errors import ConstraintError
from .vocab import TokenIndex

DENSE_MIN_ASCII = 16   # loop classes with at least this many ASCII characters take the dense path


def _ascii_count(iv) -> int:
    n = 0
    for lo, hi in iv:
        if lo > 127:
            break
        n += min(hi, 127) - lo + 1
    return n


class CompiledConstraint:
    """An automaton bound to a vocabulary, with its mask cache; shared by every generation that
    uses the same constraint (masks depend only on the automaton state)."""

    def __init__(self, automaton: Automaton, index: TokenIndex, description: str = ""):
        self.automaton = automaton
        self.index = index
        self.description = description
        self._masks: dict[int, bytes] = {}
        self.stats = {"hits": 0, "misses": 0, "dense": 0}

    def mask(self, state: int) -> bytes:
        m = self._masks.get(state)
        if m is not None:
            self.stats["hits"] += 1
            return m
        self.stats["misses"] += 1
        a, idx = self.automaton, self.index
        out = None
        pid, pending = a.parser_of(state)
        if not pending and _ascii_count(a.out_chars(pid)) >= DENSE_MIN_ASCII:
            loop = a.loop_chars(pid)
            if _ascii_count(loop) >= DENSE_MIN_ASCII:
                hit = idx.pure(loop)
                if hit is not None:
                    self.stats["dense"] += 1
                    pure, rest = hit
                    out = bytearray(pure.to_bytes(idx.words * 4, "little"))
                    rest.walk(state, a.step, out)
        if out is None:
            out = idx.empty()
            idx.trie.walk(state, a.step, out)
        if a.accepting(state):
            for t in idx.eos_ids:
                out[t >> 3] |= 1 << (t & 7)
        m = bytes(out)
        self._masks[state] = m
        return m

    def matcher(self) -> "Matcher":
        return Matcher(self)


@dataclass
class Matcher:
    """One generation's position in a compiled constraint."""

    compiled: CompiledConstraint
    state: int = -1
    finished: bool = False

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.state = self.compiled.automaton.start
        self.finished = False

    # -- the sampler interface -----------------------------------------------------------------
    def mask(self) -> bytes:
        """Allowed tokens now (only EOS once finished)."""
        if self.finished:
            idx = self.compiled.index
            out = idx.empty()
            for t in idx.eos_ids:
                out[t >> 3] |= 1 << (t & 7)
            return bytes(out)
        return self.compiled.mask(self.state)

    def allows(self, token: int) -> bool:
        m = self.mask()
        return 0 <= token < self.compiled.index.vocab_size and bool(m[token >> 3] >> (token & 7) & 1)

    def apply(self, c: Candidates) -> Candidates:
        """Keep the allowed candidates (for a head that was not given the mask)."""
        m = self.mask()
        keep = [i for i, t in enumerate(c.ids) if m[t >> 3] >> (t & 7) & 1]
        return Candidates(tuple(c.ids[i] for i in keep), tuple(c.logits[i] for i in keep), c.logsumexp)

    def accept(self, token: int) -> None:
        """Advance by a sampled token; EOS ends the match (allowed only where it is complete)."""
        idx, a = self.compiled.index, self.compiled.automaton
        if token in idx.eos_ids:
            if not a.accepting(self.state):
                raise ConstraintError(f"token {token} (end of text) is not allowed here: the output is incomplete.",
                                      "This is a bug: the mask should have excluded it.")
            self.finished = True
            return
        data = idx.token_bytes[token] if 0 <= token < idx.vocab_size else None
        nxt = a.step_bytes(self.state, data) if data else DEAD
        if nxt < 0:
            raise ConstraintError(f"token {token} ({data!r}) is not allowed by the constraint here.",
                                  "This is a bug: the mask should have excluded it.")
        self.state = nxt

    def accept_text(self, data: bytes) -> bool:
        """Advance by raw bytes (tests, forced text); False (state unchanged) when not allowed."""
        nxt = self.compiled.automaton.step_bytes(self.state, data)
        if nxt < 0:
            return False
        self.state = nxt
        return True

    @property
    def accepting(self) -> bool:
        """The text so far is a complete match."""
        return self.finished or self.compiled.automaton.accepting(self.state)

    @property
    def must_stop(self) -> bool:
        """Complete and nothing can follow: only EOS is left."""
        a = self.compiled.automaton
        return self.finished or (a.accepting(self.state) and not a.can_continue(self.state))


class LazyMatcher:
    """A lazy constraint (llama.cpp's lazy grammars): no mask until the trigger text appears in
    the output, then the compiled constraint (whose language starts with the trigger) from the
    trigger's first byte on. `mask()` is None while free. If the token that completed the trigger
    also carried bytes the constraint refuses, the constraint cannot apply (the token is already
    sampled): `failed` is set and the output stays free (the caller then finds no valid call)."""

    def __init__(self, compiled: CompiledConstraint, trigger: str):
        self.compiled = compiled
        self.trigger = trigger.encode("utf-8")
        self.inner: Matcher | None = None
        self.failed = False
        self._seen = bytearray()

    def reset(self) -> None:
        self.inner, self.failed = None, False
        self._seen.clear()

    @property
    def triggered(self) -> bool:
        return self.inner is not None

    def mask(self) -> bytes | None:
        return self.inner.mask() if self.inner is not None else None

    def accept(self, token: int) -> None:
        if self.inner is not None:
            self.inner.accept(token)
            return
        idx = self.compiled.index
        if self.failed or token in idx.eos_ids or not 0 <= token < idx.vocab_size:
            return
        start = max(0, len(self._seen) - len(self.trigger) + 1)   # only where the trigger can newly end
        self._seen += idx.token_bytes[token]
        at = self._seen.find(self.trigger, start)
        if at < 0:
            return
        m = self.compiled.matcher()
        if m.accept_text(bytes(self._seen[at:])):
            self.inner = m
        else:
            self.failed = True

    @property
    def accepting(self) -> bool:
        return self.inner is None or self.inner.accepting

    @property
    def must_stop(self) -> bool:
        return self.inner is not None and self.inner.must_stop


def allowed_ids(mask: bytes, vocab_size: int) -> list[int]:
    """Token ids set in a mask (tests and tools)."""
    out = []
    for w, byte in enumerate(mask):
        while byte:
            low = byte & -byte
            t = w * 8 + low.bit_length() - 1
            if t < vocab_size:
                out.append(t)
            byte ^= low
    return out


def mask_from_ids(ids: Sequence[int], vocab_size: int) -> bytes:
    out = bytearray(((vocab_size + 31) // 32) * 4)
    for t in ids:
        out[t >> 3] |= 1 << (t & 7)
    return bytes(out)
