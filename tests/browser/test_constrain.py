"""Constrained output in Chromium on the real model (intab's kernel, its head masking before the
top-K): every answer parses and validates against its schema (jsonschema), and the greedy
constrained answer equals the CPython engine's (onnxruntime on the graph, same constraint)."""
from __future__ import annotations

import json

import jsonschema
import pytest

from model_files import model_files, run_async
from test_client import api_page, api_site, api_url  # noqa: F401  (fixtures)

SCHEMAS = [
    ("Describe a person named Alice who is 31 and lives in Paris.",
     {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                       "age": {"type": "integer", "minimum": 0, "maximum": 130},
                                       "city": {"type": "string"}},
      "required": ["name", "age", "city"], "additionalProperties": False}),
    ("Is the review 'I loved this film' positive or negative? Answer with a label and a confidence.",
     {"type": "object", "properties": {"label": {"enum": ["positive", "negative"]},
                                       "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
      "required": ["label", "confidence"], "additionalProperties": False}),
    ("List three fruits with their colours.",
     {"type": "array", "minItems": 1, "maxItems": 3,
      "items": {"type": "object", "properties": {"fruit": {"type": "string"}, "colour": {"type": "string"}},
                "required": ["fruit", "colour"], "additionalProperties": False}}),
]


@pytest.fixture(scope="module")
def cpython_engine(built_model_dir):
    from intab.engine import Engine
    from intab_host.ort_backend import OrtBackend
    cfg = json.loads((built_model_dir / "config.json").read_text())
    return Engine.from_files(model_files(built_model_dir), OrtBackend(built_model_dir / "model.onnx", cfg))


def test_constrained_answers_validate_and_equal_cpython(api_page, cpython_engine):  # noqa: F811
    reqs = [{"messages": [{"role": "user", "content": q}], "temperature": 0, "max_tokens": 80,
             "response_format": {"type": "json_schema", "json_schema": {"name": f"s{i}", "schema": s}}}
            for i, (q, s) in enumerate(SCHEMAS)]
    got = api_page.evaluate("""async (reqs) => {
        const out = [];
        for (const r of reqs) {
            const c = await engine.chat.completions.create(r);
            out.push({ text: c.choices[0].message.content, finish: c.choices[0].finish_reason, ids: c.intab.token_ids });
        }
        return out;
    }""", reqs)
    for (q, schema), tab, req in zip(SCHEMAS, got, reqs):
        value = json.loads(tab["text"])
        jsonschema.validate(value, schema)
        assert tab["finish"] == "stop"
        opts = {k: v for k, v in req.items() if k != "messages"}
        ref = run_async(cpython_engine.generate(req["messages"], opts))
        assert tab["text"] == ref.text, (q, tab["text"], ref.text)


def test_sampled_constrained_answers_always_validate(api_page):  # noqa: F811
    schema = SCHEMAS[0][1]
    got = api_page.evaluate("""async (schema) => {
        const out = [];
        for (let seed = 1; seed <= 4; seed++) {
            const c = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Invent a person.' }],
                temperature: 1.0, top_p: 0.95, seed, max_tokens: 80,
                response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } });
            out.push([c.choices[0].message.content, c.choices[0].finish_reason]);
        }
        return out;
    }""", schema)
    for text, finish in got:
        if finish == "stop":
            jsonschema.validate(json.loads(text), schema)


def test_unsupported_schema_is_refused_by_keyword_and_the_engine_stays_usable(api_page):  # noqa: F811
    got = api_page.evaluate("""async () => {
        let err = null;
        try {
            await engine.chat.completions.create({ messages: [{ role: 'user', content: 'x' }],
                response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'ipv9' } } } });
        } catch (e) { err = { name: e.name, param: e.param, message: e.message, hint: e.hint }; }
        const after = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Yes or no?' }], temperature: 0,
            max_tokens: 4, response_format: { type: 'json_schema', json_schema: { name: 'y', schema: { enum: ['yes', 'no'] } } } });
        return { err, after: after.choices[0].message.content };
    }""")
    assert got["err"]["name"] == "UnsupportedSchema" and got["err"]["param"] == "response_format"
    assert "format" in got["err"]["message"] and got["err"]["hint"]
    assert got["after"] in ('"yes"', '"no"')
