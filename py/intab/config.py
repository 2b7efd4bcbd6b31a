"""Generation options: one validated dataclass, built from user options over the model's defaults."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InvalidParameter

MAX_TOP_LOGPROBS = 20   # OpenAI's limit; the head returns at least this many candidates when asked
CONTEXT_OVERFLOW = ("error", "drop_oldest")


GREEDY_BELOW = 1e-5   # temperatures below this are greedy (GenerationConfig.greedy)


@dataclass(frozen=True)
class GenerationConfig:
    max_tokens: int = 512
    temperature: float = 1.0          # 0 = greedy
    top_k: int = 0                    # 0 = off
    top_p: float = 1.0                # 1 = off
    min_p: float = 0.0                # 0 = off
    repetition_penalty: float = 1.0   # 1 = off (transformers' definition)
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    ignore_eos: bool = False          # benchmarks: generate exactly max_tokens
    logprobs: bool = False            # per-token log-probabilities in the result
    top_logprobs: int = 0             # 0..20 alternatives per token (needs logprobs)
    # When the conversation does not fit the context: 'error' (PromptTooLong, nothing lost) or
    # 'drop_oldest' (the oldest turns after the system prompt are left out of this request).
    context_overflow: str = "error"
    # Constrained output (docs/structured-output.md), at most one: OpenAI's response_format
    # ({type: 'json_schema', json_schema: {name, schema, strict}} | {type: 'json_object'} | {type: 'text'}),
    # a regular expression, a GBNF grammar, or a list of choices.
    response_format: Any = None
    regex: str | None = None
    grammar: str | None = None
    choices: tuple[str, ...] | None = None
    # Tool calling (intab/tools.py): OpenAI's tools [{type: 'function', function: {name, description,
    # parameters}}] and tool_choice ('auto' | 'required' | 'none' | {type: 'function', function: {name}}).
    tools: Any = None
    tool_choice: Any = None

    @property
    def greedy(self) -> bool:
        # Below 1e-5 the sampled distribution is the argmax already (a logit gap of 1e-4 is a
        # ratio of e^10), and the scores s/T leave float range: temperature=2.7e-46 was an
        # OverflowError in the sampler (found by the fuzzer, tests/browser/fuzz). So: greedy.
        return self.temperature < GREEDY_BELOW

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> InvalidParameter:
            return InvalidParameter(f"{name}={getattr(self, name)!r} is invalid: it must be {rule}.", param=name)

        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 1):
            raise bad("max_tokens", "an integer >= 1")
        if not (self.temperature >= 0 and self.temperature <= 100):
            raise bad("temperature", "between 0 (greedy) and 100")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise bad("top_k", "an integer >= 0 (0 turns it off)")
        if not (0 < self.top_p <= 1):
            raise bad("top_p", "in (0, 1] (1 turns it off)")
        if not (0 <= self.min_p < 1):
            raise bad("min_p", "in [0, 1) (0 turns it off)")
        if not (self.repetition_penalty > 0 and self.repetition_penalty <= 10):
            raise bad("repetition_penalty", "in (0, 10] (1 turns it off)")
        if self.seed is not None and not isinstance(self.seed, int):
            raise bad("seed", "an integer or null")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise bad("stop", "a list of non-empty strings")
        if not isinstance(self.logprobs, bool):
            raise bad("logprobs", "true or false")
        if not (isinstance(self.top_logprobs, int) and 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS):
            raise bad("top_logprobs", f"an integer from 0 to {MAX_TOP_LOGPROBS}")
        if self.top_logprobs and not self.logprobs:
            raise InvalidParameter("top_logprobs needs logprobs=true.", "Set logprobs to true, or top_logprobs to 0.",
                                   param="top_logprobs")
        if self.context_overflow not in CONTEXT_OVERFLOW:
            raise bad("context_overflow", " or ".join(repr(v) for v in CONTEXT_OVERFLOW))
        self.constraint   # the constraint's shape is checked here; its content when compiled

    @property
    def tool_request(self):
        """The request's tools and tool_choice, checked (intab.tools.ToolRequest), or None."""
        from .tools import ToolRequest
        return ToolRequest.from_options(self.tools, self.tool_choice)

    @property
    def constraint(self):
        """The request's ConstraintSpec (intab.constrain), or None: a tool call's when calls are
        allowed, else the output constraint."""
        from .constrain import ConstraintSpec
        spec = ConstraintSpec.from_options({"response_format": self.response_format, "regex": self.regex,
                                            "grammar": self.grammar, "choices": self.choices})
        tools = self.tool_request
        if tools is None or not tools.calls_allowed:
            return spec
        if spec is not None:
            raise InvalidParameter(f"{spec.param} cannot be combined with tools (tool_choice {tools.choice!r}).",
                                   "Constrain the answer or let the model call a tool, not both; tool_choice='none' "
                                   "keeps the constraint.", param=spec.param)
        return tools.constraint()

    @classmethod
    def from_options(cls, options: dict[str, Any] | None, defaults: dict[str, Any] | None = None) -> "GenerationConfig":
        """Merge page/API options over model defaults (generation_config.json names accepted too)."""
        known = {f.name: f for f in fields(cls)}
        merged: dict[str, Any] = {}
        for source in (defaults or {}, options or {}):
            for key, value in source.items():
                key = {"max_new_tokens": "max_tokens"}.get(key, key)
                if key in known and value is not None:
                    merged[key] = value
                elif source is options and key not in known and value is not None:
                    raise InvalidParameter(f"unknown generation option {key!r}.",
                                           f"Valid options: {', '.join(sorted(known))}.", param=key)
        if isinstance(merged.get("stop"), str):
            merged["stop"] = (merged["stop"],)
        if "stop" in merged:
            if not isinstance(merged["stop"], (list, tuple)):
                raise InvalidParameter(f"stop={merged['stop']!r} is invalid: it must be a string or a list of strings.",
                                       param="stop")
            merged["stop"] = tuple(merged["stop"])
        if isinstance(merged.get("tools"), list):
            merged["tools"] = tuple(merged["tools"])
        if isinstance(merged.get("choices"), list):
            merged["choices"] = tuple(merged["choices"])
        for name in ("temperature", "top_p", "min_p", "repetition_penalty"):
            if name in merged:
                merged[name] = _number(name, merged[name], float)
        for name in ("max_tokens", "top_k", "seed", "top_logprobs"):
            if name in merged:
                merged[name] = _number(name, merged[name], int)
        return cls(**merged)


def _number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise InvalidParameter(f"{name}={value!r} is invalid: it must be a number.", param=name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{name}={value!r} is invalid: it must be a number.", param=name) from None
    if kind is int:
        if number != number or number in (float("inf"), float("-inf")) or number != int(number):
            raise InvalidParameter(f"{name}={value!r} is invalid: it must be an integer.", param=name)
        return int(number)
    if number != number:  # NaN
        raise InvalidParameter(f"{name}={value!r} is invalid: it must be a number.", param=name)
    return number
