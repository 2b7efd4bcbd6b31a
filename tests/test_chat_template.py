"""Chat templates: our jinja2 rendering equals transformers' apply_chat_template (run live)."""
from __future__ import annotations

import copy
from functools import lru_cache

import pytest

from intab.chat_template import ChatTemplate
from intab.errors import TemplateError
from tests.tokenizer_fixtures import FAMILIES, family_dirs, load_texts  # noqa: F401

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                         "unit": {"type": "string", "enum": ["C", "F"]}},
                       "required": ["city"]},
    },
}

CHATS = {
    "single": [{"role": "user", "content": "What is the capital of France?"}],
    "system": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    "multi": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Tell me a joke about   spaces.  "},
    ],
    "multi_no_system": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "6"},
    ],
    "unicode": [{"role": "user", "content": "  日本語 👨‍👩‍👧 é\u0301 \"quoted\" <b>html</b> {{ not jinja }}\n\n\t"}],
    "thinking": [
        {"role": "user", "content": "Think first."},
        {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nDone."},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Sure.", "reasoning_content": "second thought"},
    ],
    "none_value": [{"role": "user", "content": "x", "name": None}],
    "gemma_parts": [{"role": "user", "content": [{"type": "text", "text": " parts "}, {"type": "text", "text": "two"}]}],
}

TOOL_CHAT = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}}]},
    {"role": "tool", "content": "{\"temp\": 21}"},
    {"role": "tool", "content": "{\"wind\": 3}"},
    {"role": "assistant", "content": "It is 21 °C.", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}}]},
]


@lru_cache(maxsize=None)
def _reference(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _both(folder: str, messages, **kw):
    """(ours, reference): rendered text, or the exception type when rendering fails."""
    ct = ChatTemplate.from_config(load_texts(folder)[1])
    try:
        mine = ct.render(copy.deepcopy(messages), **kw)
    except TemplateError as e:
        mine = TemplateError
        assert str(e)
    try:
        ref = _reference(folder).apply_chat_template(copy.deepcopy(messages), tokenize=False, **kw)
    except Exception:  # noqa: BLE001 - jinja's TemplateError, or what the template trips on
        ref = TemplateError
    return mine, ref


@pytest.mark.parametrize("name", FAMILIES)
def test_templates_match_transformers(name, family_dirs):
    folder = str(family_dirs[name])
    n = 0
    for chat_name, chat in CHATS.items():
        for gen in (True, False):
            mine, ref = _both(folder, chat, add_generation_prompt=gen)
            assert mine == ref, (name, chat_name, gen)
            n += 1
    assert n == 2 * len(CHATS)


@pytest.mark.parametrize("name", FAMILIES)
def test_tools_match_transformers(name, family_dirs):
    folder = str(family_dirs[name])
    for chat in (TOOL_CHAT, CHATS["single"], CHATS["multi"]):
        for gen in (True, False):
            mine, ref = _both(folder, chat, add_generation_prompt=gen, tools=[WEATHER_TOOL])
            assert mine == ref, (name, gen)
    mine, ref = _both(folder, TOOL_CHAT, add_generation_prompt=True)
    assert mine == ref


@pytest.mark.parametrize("name", FAMILIES)
def test_extra_kwargs_match_transformers(name, family_dirs):
    folder = str(family_dirs[name])
    mine, ref = _both(folder, CHATS["multi"], add_generation_prompt=True, enable_thinking=False)
    assert mine == ref


def test_role_rejected_by_template_is_template_error(family_dirs):
    folder = str(family_dirs["gemma3"])
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    ct = ChatTemplate.from_config(load_texts(folder)[1])
    with pytest.raises(TemplateError, match="alternate"):
        ct.render(bad)
    assert _both(folder, bad, add_generation_prompt=True) == (TemplateError, TemplateError)


def test_missing_content_is_template_error(family_dirs):
    ct = ChatTemplate.from_config(load_texts(str(family_dirs["smollm2"]))[1])
    with pytest.raises(TemplateError):
        ct.render([{"role": "user"}])
    with pytest.raises(TemplateError):
        ct.render([])
    with pytest.raises(TemplateError):
        ct.render(["not a dict"])  # type: ignore[list-item]


def test_broken_or_missing_template():
    with pytest.raises(TemplateError):
        ChatTemplate.from_config({})
    with pytest.raises(TemplateError, match="compile"):
        ChatTemplate.from_config({"chat_template": "{% for %}"}).render([{"role": "user", "content": "x"}])


def test_named_templates_and_raise_exception():
    cfg = {"chat_template": [{"name": "default", "template": "D{{ messages[0].content }}"},
                             {"name": "tool_use", "template": "T{{ tools|length }}"}],
           "bos_token": {"content": "<s>"}}
    ct = ChatTemplate.from_config(cfg)
    assert ct.render([{"role": "user", "content": "x"}]) == "Dx"
    assert ct.render([{"role": "user", "content": "x"}], tools=[{}]) == "T1"
    ct = ChatTemplate.from_config({"chat_template": "{{ bos_token }}{{ raise_exception('nope: ' + messages[0].role) }}"})
    with pytest.raises(TemplateError, match="nope: robot"):
        ct.render([{"role": "robot", "content": "x"}])


def test_tojson_and_helpers_as_transformers():
    src = ("{{ messages[0].content | tojson }}|{{ {'b': 1, 'a': [1, 'é<>']} | tojson(indent=2, sort_keys=True) }}|"
           "{% set ns = namespace(x=1) %}{% set ns.x = ns.x + 1 %}{{ ns.x }}|{{ dict(a=1) }}|"
           "{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}|"
           "{% generation %}gen{% endgeneration %}|{{ strftime_now('%Y') | length }}")
    out = ChatTemplate.from_config({"chat_template": src}).render([{"role": "user", "content": "<é>\"'"}])
    assert out == '"<é>\\"\'"|{\n  "a": [\n    1,\n    "é<>"\n  ],\n  "b": 1\n}|2|{\'a\': 1}|012|gen|4'


def test_sandbox_blocks_escapes():
    ct = ChatTemplate.from_config({"chat_template": "{{ messages.__class__.__mro__ }}"})
    with pytest.raises(TemplateError):
        ct.render([{"role": "user", "content": "x"}])
    ct = ChatTemplate.from_config({"chat_template": "{% set ns = namespace() %}{% set ns._x = 1 %}"})
    with pytest.raises(TemplateError):
        ct.render([{"role": "user", "content": "x"}])


@pytest.mark.parametrize("name", FAMILIES)
def test_prompt_ids_match_transformers_tokenized_chat(name, family_dirs):
    """Rendered prompt encoded with add_special_tokens=False = apply_chat_template(tokenize=True).

    (The template already writes BOS where the model wants one; encoding with special tokens
    would double Gemma's <bos>.)"""
    from tests.tokenizer_fixtures import ours

    folder = str(family_dirs[name])
    tok = ours(folder)
    ct = ChatTemplate.from_config(load_texts(folder)[1])
    hf = _reference(folder)
    for chat in (CHATS["single"], CHATS["multi"], CHATS["unicode"]):
        want = hf.apply_chat_template(copy.deepcopy(chat), tokenize=True, add_generation_prompt=True)
        if hasattr(want, "keys"):
            want = want["input_ids"]
        assert tok.encode(ct.render(chat), add_special_tokens=False) == list(want)
