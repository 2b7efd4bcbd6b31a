"""Typed errors. Each carries a `hint`: what the user (or the embedding developer) can do about it.

Across the worker boundary an error travels as `to_dict()`: {name, message, hint, param}, fields
kept apart, so no layer has to parse one back out of a traceback or a joined string.
"""
from __future__ import annotations

from typing import Any


class IntabError(Exception):
    """Base class. `str(err)` is the message followed by the hint, for people reading logs."""

    hint: str = ""

    def __init__(self, message: str, hint: str | None = None, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {"name": type(self).__name__, "message": self.message, "hint": self.hint, "param": self.param}


class InvalidParameter(IntabError, ValueError):
    hint = "Check the generation options (see GenerationConfig for valid ranges)."


class PromptTooLong(IntabError):
    hint = ("Start a new chat, remove earlier messages, or let the oldest turns drop "
            "(context_overflow='drop_oldest'); a lower max_tokens leaves more room for the prompt.")


class TemplateError(IntabError):
    hint = "Check the message roles and order the model's chat template accepts."


class TokenizerError(IntabError):
    hint = "The tokenizer.json is not supported or is corrupted; rebuild the model files."


class BackendError(IntabError):
    hint = "The model runtime failed; reload the page. If it persists, try the WASM backend (?backend=wasm)."


class Aborted(IntabError):
    hint = ""


class EngineBusy(IntabError):
    hint = "Wait for the current answer to finish, or stop it first."


class ProcessorError(IntabError):
    """A user-supplied logits processor or sampler raised: the request ends, the engine stays usable."""

    hint = "Fix the logits processor or sampler named in the traceback; the engine is still usable."

    def __init__(self, message: str, hint: str | None = None, *, traceback: str = "", param: str | None = None):
        super().__init__(message, hint, param=param)
        self.traceback = traceback

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "traceback": self.traceback}


class StopGeneration(Exception):
    """Raised by a logits processor to end the answer here (finish_reason 'stop', stop_reason
    'processor'): e.g. when the model's confidence drops below a threshold."""
