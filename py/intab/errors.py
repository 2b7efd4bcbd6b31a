"""Typed errors. Each carries a `hint`: what the user (or the embedding developer) can do about it."""
from __future__ import annotations


class IntabError(Exception):
    """Base class. `str(err)` is the message followed by the hint."""

    hint: str = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class InvalidParameter(IntabError, ValueError):
    hint = "Check the generation options (see GenerationConfig for valid ranges)."


class PromptTooLong(IntabError):
    hint = "Shorten the conversation (start a new chat or remove earlier messages) or lower max_tokens."


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
    """A user's logits processor or sampler raised (or returned the wrong type). `traceback` is
    its traceback as text; the original exception is `__cause__`."""
    hint = "Fix the function (its traceback is in .traceback); the engine is ready for the next request."

    def __init__(self, message: str, hint: str | None = None, traceback: str = ""):
        super().__init__(message, hint)
        self.traceback = traceback
