"""Chat templates rendered as transformers' `apply_chat_template(..., tokenize=False)` does.

Same jinja2 setup as transformers (sandboxed, trim_blocks, lstrip_blocks, loopcontrols, the
`generation` tag, its `tojson`, `raise_exception`, `strftime_now`), same variables (the named
special tokens from tokenizer_config.json, `messages` with None-valued keys dropped, `tools`,
`documents`), so the prompt text and therefore the token ids match the reference.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from intab.errors import TemplateError

# Names a message's reasoning may come under; templates read the first (transformers aliases them).
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")

# The named special tokens transformers passes to every template (SPECIAL_TOKENS_ATTRIBUTES).
_NAMED_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body unchanged (transformers' AssistantTracker)."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller: Any) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    # Not jinja's tojson: that one HTML-escapes, transformers' does not.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _TemplateDict:
    """`dict(...)` for templates without exposing the dict type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _Namespace(jinja2.utils.Namespace):
    """jinja's namespace refusing underscore names (as transformers does)."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - jinja's signature trick
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"namespace attribute {name!r} may not start with '_'")


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _Namespace
    return env


def _token_text(value: Any) -> str | None:
    """A special token from tokenizer_config.json: a string or an AddedToken dict."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("content")
    return str(value)


def _select_template(raw: Any) -> tuple[str | None, dict[str, str]]:
    """The config's `chat_template`: one string, or named templates ("default", "tool_use", ...)."""
    if raw is None or isinstance(raw, str):
        return raw, {}
    if isinstance(raw, list):
        named = {t["name"]: t["template"] for t in raw}
    elif isinstance(raw, dict):
        named = dict(raw)
    else:
        raise TemplateError(f"chat_template has an unexpected type {type(raw).__name__}")
    return named.get("default"), named


@dataclass
class ChatTemplate:
    """A model's chat template plus the token variables it sees."""

    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)
    named_templates: dict[str, str] = field(default_factory=dict)
    _compiled: dict[str, jinja2.Template] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, tokenizer_config: dict) -> "ChatTemplate":
        """From parsed tokenizer_config.json (its `chat_template` and special tokens)."""
        source, named = _select_template(tokenizer_config.get("chat_template"))
        if source is None and not named:
            raise TemplateError("tokenizer_config.json has no chat_template",
                                "Use a model whose tokenizer_config.json includes a chat template.")
        tokens: dict[str, str] = {}
        for key in _NAMED_TOKENS:
            v = _token_text(tokenizer_config.get(key))
            if v is not None:
                tokens[key] = v
        extra = tokenizer_config.get("extra_special_tokens")
        if isinstance(extra, dict):  # model-specific named tokens (transformers 5 adds them to the map)
            for key, v in extra.items():
                t = _token_text(v)
                if t is not None:
                    tokens[key] = t
        return cls(source or "", tokens, named)

    def _template(self, source: str) -> jinja2.Template:
        t = self._compiled.get(source)
        if t is None:
            try:
                t = _environment().from_string(source)
            except jinja2.exceptions.TemplateSyntaxError as e:
                raise TemplateError(f"the chat template does not compile: {e.message} (line {e.lineno})",
                                    "The model's tokenizer_config.json carries a broken chat_template.") from e
            self._compiled[source] = t
        return t

    def render(self, messages: list[dict], add_generation_prompt: bool = True, tools: list[dict] | None = None,
               **extra: Any) -> str:
        """The prompt text for `messages` (= transformers' apply_chat_template(tokenize=False))."""
        if not isinstance(messages, (list, tuple)) or not messages:
            raise TemplateError("messages must be a non-empty list of {role, content} dicts")
        chat = []
        for m in messages:
            if not isinstance(m, dict):
                raise TemplateError(f"each message must be a dict, got {type(m).__name__}")
            msg = {k: v for k, v in m.items() if v is not None}
            reasoning = next((msg[k] for k in _REASONING_FIELDS if msg.get(k) is not None), None)
            if reasoning is not None:
                msg = {"thinking": reasoning, **msg, "reasoning_content": reasoning}
            chat.append(msg)
        source = self.source
        if tools is not None and "tool_use" in self.named_templates:
            source = self.named_templates["tool_use"]
        if not source:
            raise TemplateError("this model has no default chat template")
        documents = extra.pop("documents", None)
        variables = {**self.special_tokens, **extra}
        try:
            return self._template(source).render(messages=chat, tools=tools, documents=documents,
                                                 add_generation_prompt=add_generation_prompt, **variables)
        except jinja2.exceptions.TemplateError as e:
            raise TemplateError(f"the chat template rejected the conversation: {e}") from e
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            raise TemplateError(f"the chat template failed on this conversation: {type(e).__name__}: {e}") from e
