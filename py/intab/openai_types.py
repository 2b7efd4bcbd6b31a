"""Result objects shaped like the OpenAI Python client's (`openai.types.chat`), as dataclasses.

Attribute access as in `openai` (`completion.choices[0].message.content`, `chunk.choices[0].delta.content`,
`completion.usage.total_tokens`), plus `model_dump()`, `model_dump_json()`, `to_dict()` and
`to_json()`, which give the same JSON as the JS API's objects. No pydantic: it is not in
Pyodide's core and this is all that code written for the `openai` client reads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

FinishReason = Literal["stop", "length", "abort", "tool_calls"]


def _plain(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, _Model):
        return value.model_dump(exclude_none=exclude_none)
    if isinstance(value, (list, tuple)):
        return [_plain(v, exclude_none) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, exclude_none) for k, v in value.items() if not (exclude_none and v is None)}
    return value


class _Model:
    """What the `openai` client's pydantic models offer that user code calls."""

    def model_dump(self, exclude_none: bool = False) -> dict:
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if exclude_none and v is None:
                continue
            out[f.name] = _plain(v, exclude_none)
        return out

    def model_dump_json(self, exclude_none: bool = False, indent: int | None = None) -> str:
        return json.dumps(self.model_dump(exclude_none=exclude_none), ensure_ascii=False, indent=indent)

    def to_dict(self) -> dict:
        return self.model_dump(exclude_none=True)

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(exclude_none=True, indent=indent)


@dataclass
class TopLogprob(_Model):
    token: str
    logprob: float
    bytes: list[int] | None = None


@dataclass
class ChatCompletionTokenLogprob(_Model):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass
class ChoiceLogprobs(_Model):
    content: list[ChatCompletionTokenLogprob] | None = None
    refusal: list[ChatCompletionTokenLogprob] | None = None


@dataclass
class Function(_Model):
    name: str
    arguments: str    # the arguments as a JSON text, as OpenAI gives them


@dataclass
class ChatCompletionMessageToolCall(_Model):
    id: str
    function: Function
    type: Literal["function"] = "function"
    index: int | None = None   # in a stream's delta only (OpenAI's ChoiceDeltaToolCall.index)

    def model_dump(self, exclude_none: bool = False) -> dict:
        out = super().model_dump(exclude_none=exclude_none)
        if self.index is None:
            out.pop("index", None)   # a message's call has no index field
        return out


@dataclass
class ChatCompletionMessage(_Model):
    content: str | None
    role: Literal["assistant"] = "assistant"
    refusal: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None


@dataclass
class Choice(_Model):
    index: int
    message: ChatCompletionMessage
    finish_reason: FinishReason
    logprobs: ChoiceLogprobs | None = None


@dataclass
class CompletionUsage(_Model):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class ChatCompletion(_Model):
    id: str
    choices: list[Choice]
    created: int
    model: str
    object: Literal["chat.completion"] = "chat.completion"
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    intab: dict | None = None   # token_ids, ttft_ms, decode_tok_s, reused_tokens, confidence (as the JS API)


@dataclass
class ChoiceDelta(_Model):
    content: str | None = None
    role: Literal["assistant"] | None = None
    refusal: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None


@dataclass
class ChunkChoice(_Model):
    index: int
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


@dataclass
class ChatCompletionChunk(_Model):
    id: str
    choices: list[ChunkChoice]
    created: int
    model: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    intab: dict | None = None   # on the last chunk only


@dataclass
class CompletionChoice(_Model):
    index: int
    text: str
    finish_reason: FinishReason
    logprobs: dict | None = None   # the legacy completions shape: tokens, token_logprobs, top_logprobs


@dataclass
class Completion(_Model):
    id: str
    choices: list[CompletionChoice]
    created: int
    model: str
    object: Literal["text_completion"] = "text_completion"
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    intab: dict | None = None
