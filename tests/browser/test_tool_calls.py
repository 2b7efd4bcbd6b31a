"""Tool calling through the JS client in Chromium on the real model (intab's kernel): OpenAI's
message.tool_calls and streamed delta.tool_calls, every call validates (jsonschema), the greedy
constrained call equals the CPython engine's (onnxruntime), `auto` calls after a shown call, and a
round trip (assistant tool_calls -> tool message -> the answer) works."""
from __future__ import annotations

import json

import jsonschema

from model_files import run_async
from test_client import api_page, api_site, api_url  # noqa: F401  (fixtures)
from test_constrain import cpython_engine  # noqa: F401  (fixture)
from tests.test_tools import FEW_SHOT, TOOLS, WEATHER   # the CPython test's tools and conversation

PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def test_tool_calls_in_chromium_validate_stream_and_equal_cpython(api_page, cpython_engine):  # noqa: F811
    reqs = [
        {"messages": [{"role": "user", "content": "What time is it in Tokyo?"}], "tools": TOOLS, "tool_choice": "required"},
        {"messages": [{"role": "user", "content": "Find me books about whales."}], "tools": TOOLS,
         "tool_choice": {"type": "function", "function": {"name": "lookup"}}},
        {"messages": FEW_SHOT, "tools": [WEATHER], "tool_choice": "auto"},
    ]
    got = api_page.evaluate("""async (reqs) => {
        const out = [];
        for (const r of reqs) {
            const req = { ...r, temperature: 0, max_tokens: 120 };
            const c = await engine.chat.completions.create(req);
            const chunks = [];
            for await (const ch of await engine.chat.completions.create({ ...req, stream: true })) chunks.push(ch);
            out.push({ message: c.choices[0].message, finish: c.choices[0].finish_reason, ids: c.intab.token_ids,
                       chunks: chunks.map((ch) => ch.choices[0] ? { delta: ch.choices[0].delta, finish: ch.choices[0].finish_reason } : null) });
        }
        // the round trip: the call's result as a tool message, then the answer
        const q = [{ role: 'user', content: 'What is the weather in Paris?' }];
        const call = await engine.chat.completions.create({ messages: q, tools: [reqs[2].tools[0]], tool_choice: 'required', temperature: 0, max_tokens: 60 });
        const msg = call.choices[0].message;
        const answer = await engine.chat.completions.create({ messages: [...q, msg,
            { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: JSON.stringify({ sky: 'sunny' }) }],
            tools: [reqs[2].tools[0]], tool_choice: 'none', temperature: 0, max_tokens: 40 });
        return { out, call: msg, answer: answer.choices[0].message };
    }""", reqs)
    for req, tab in zip(reqs, got["out"]):
        msg = tab["message"]
        assert tab["finish"] == "tool_calls" and msg["content"] is None and len(msg["tool_calls"]) == 1, msg
        call = msg["tool_calls"][0]
        assert call["type"] == "function" and call["id"].startswith("call_")
        jsonschema.validate(json.loads(call["function"]["arguments"]), PARAMS[call["function"]["name"]])
        if isinstance(req["tool_choice"], dict):
            assert call["function"]["name"] == req["tool_choice"]["function"]["name"]
        # streamed: the role first, the call whole in one delta with its index, then the finish
        deltas = [c["delta"] for c in tab["chunks"] if c]
        streamed = [tc for d in deltas for tc in d.get("tool_calls") or []]
        assert [(s["index"], s["function"]) for s in streamed] == [(0, call["function"])]
        assert "".join(d.get("content") or "" for d in deltas) == ""
        assert [c["finish"] for c in tab["chunks"] if c and c["finish"]] == ["tool_calls"]
        # greedy: the same tokens as the CPython engine (onnxruntime), the same call
        opts = {"temperature": 0, "max_tokens": 120, "tools": req["tools"], "tool_choice": req["tool_choice"]}
        ref = run_async(cpython_engine.generate(req["messages"], opts))
        assert tab["ids"] == ref.token_ids
        assert [c["function"] for c in ref.tool_calls] == [call["function"]]
    assert json.loads(got["call"]["tool_calls"][0]["function"]["arguments"])["city"] == "Paris"
    assert got["answer"].get("tool_calls") is None and "sunny" in got["answer"]["content"].lower()
