"""Tokens -> text deltas: the UTF-8-safe stream decoder, then the stop strings' hold-back.

Text that might be the start of a stop string is held back until it cannot be, so a stop string
is never shown, even in part; text after it is dropped.
"""
from __future__ import annotations

from typing import Any, Sequence


class StopStrings:
    """Holds back text that might be the start of a stop string, so none is ever shown."""

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(stops)
        self.text = ""
        self.emitted = 0

    def feed(self, delta: str) -> tuple[str, bool]:
        """Add text; return (text safe to show now, whether a stop string was hit)."""
        self.text += delta
        if not self.stops:
            return self._emit(len(self.text)), False
        hits = [i for i in (self.text.find(s, max(0, self.emitted - len(s) + 1)) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            return self._emit(len(self.text)), True
        hold = max((n for s in self.stops for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)
        return self._emit(len(self.text) - hold), False

    def finish(self) -> str:
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        out = self.text[self.emitted:upto] if upto > self.emitted else ""
        self.emitted = max(self.emitted, upto)
        return out


class TextStream:
    """One answer's text: `push(token)` -> (text safe to show now, stop string hit); `finish()`
    -> the rest (the detokenizer's tail), unless a stop string ended the answer."""

    def __init__(self, tokenizer: Any, stops: Sequence[str]):
        self._detok = tokenizer.stream_decoder(skip_special_tokens=True)
        self._stops = StopStrings(stops)
        self.stopped = False

    def push(self, token: int) -> tuple[str, bool]:
        shown, hit = self._stops.feed(self._detok.push(token))
        self.stopped = self.stopped or hit
        return shown, hit

    def finish(self) -> str:
        if self.stopped:   # text after a stop string is dropped, with the detokenizer's tail
            return ""
        shown, hit = self._stops.feed(self._detok.flush())
        self.stopped = hit
        return shown + ("" if hit else self._stops.finish())
