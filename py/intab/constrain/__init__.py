"""Constrained decoding in pure Python (it runs in Pyodide): JSON Schema, regular expressions,
GBNF-like grammars and choice lists, each compiled to a byte automaton over the model's
vocabulary that gives, per step, the bitmask of allowed tokens.

    compiler = ConstraintCompiler(TokenIndex.for_tokenizer(tokenizer, eos_ids))
    spec = ConstraintSpec.from_options({"response_format": {"type": "json_schema", "json_schema": {...}}})
    m = compiler.compile(spec).matcher()      # per generation
    m.mask()  -> bytes (⌈vocab/32⌉ little-endian uint32 words);  m.accept(token);  m.reset()
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .automaton import Automaton
from .errors import ConstraintError, UnsupportedSchema
from .gbnf import parse_gbnf
from .ir import Grammar, Ref, alt, lit, seq
from .json_schema import compile_schema
from .matcher import CompiledConstraint, LazyMatcher, Matcher, allowed_ids, mask_from_ids
from .regex import parse_regex
from .vocab import TokenIndex

__all__ = ["ConstraintCompiler", "ConstraintSpec", "ConstraintError", "UnsupportedSchema", "TokenIndex",
           "CompiledConstraint", "LazyMatcher", "Matcher", "allowed_ids", "mask_from_ids", "grammar_of"]

KINDS = ("json_schema", "regex", "grammar", "choices", "wrapped_json")


@dataclass(frozen=True)
class ConstraintSpec:
    """What the output must match. `source`: a schema (dict/bool), a regex, a grammar's text, or a
    tuple of choices; for "wrapped_json" {prefix, schema, suffix}: a JSON value between two fixed
    texts (a tool call). `param`: the request option it came from (named in errors). `trigger`:
    a lazy constraint (llama.cpp's lazy grammars): the output is free until this text appears,
    and from where it begins, the output must match (the grammar starts with the trigger)."""
    kind: str
    source: Any
    whitespace: str = "flexible"
    param: str = ""
    trigger: str = ""

    @property
    def key(self) -> str:
        return json.dumps([self.kind, self.source, self.whitespace], sort_keys=True, default=list)

    @classmethod
    def from_options(cls, options: dict) -> "ConstraintSpec | None":
        """From request options: response_format (OpenAI's shape), regex, grammar, choices. At most one."""
        given = [k for k in ("response_format", "regex", "grammar", "choices") if options.get(k) is not None]
        rf = options.get("response_format")
        if rf is not None and isinstance(rf, dict) and rf.get("type") == "text":
            given.remove("response_format")
            rf = None
        if len(given) > 1:
            raise ConstraintError(f"only one of response_format, regex, grammar, choices may be given (got "
                                  f"{', '.join(given)}).", "Keep one constraint per request.", param=given[1])
        if not given:
            return None
        k = given[0]
        v = options[k]
        if k == "regex":
            if not isinstance(v, str):
                raise ConstraintError("regex must be a string.", "Pass the pattern as a string.", param="regex")
            return cls("regex", v, param="regex")
        if k == "grammar":
            if not isinstance(v, str):
                raise ConstraintError("grammar must be a string (GBNF).", "Pass the grammar's text.", param="grammar")
            return cls("grammar", v, param="grammar")
        if k == "choices":
            if not (isinstance(v, (list, tuple)) and v and all(isinstance(c, str) and c for c in v)):
                raise ConstraintError("choices must be a non-empty list of non-empty strings.",
                                      "Pass e.g. choices=['yes', 'no'].", param="choices")
            return cls("choices", tuple(v), param="choices")
        return cls.from_response_format(v)

    @classmethod
    def from_response_format(cls, rf: Any) -> "ConstraintSpec | None":
        p = "response_format"
        if not isinstance(rf, dict) or "type" not in rf:
            raise ConstraintError("response_format must be an object with a 'type'.",
                                  "Use {type: 'json_schema', json_schema: {name, schema}} or {type: 'json_object'}.",
                                  param=p)
        t = rf["type"]
        if t == "text":
            return None
        if t == "json_object":
            return cls("json_schema", {"type": "object"}, param=p)
        if t == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or "schema" not in js:
                raise ConstraintError("response_format.json_schema must be an object with a 'schema'.",
                                      "Use {type: 'json_schema', json_schema: {name: 'x', schema: {...}}}.", param=p)
            unknown = set(js) - {"name", "schema", "strict", "description"}
            if unknown:
                raise ConstraintError(f"response_format.json_schema has unknown field {sorted(unknown)[0]!r}.",
                                      "Its fields are name, description, schema, strict.", param=p)
            return cls("json_schema", js["schema"], param=p)
        raise ConstraintError(f"response_format type {t!r} is not supported.",
                              "Use 'json_schema', 'json_object' or 'text'.", param=p)


def grammar_of(spec: ConstraintSpec) -> Grammar:
    if spec.kind == "json_schema":
        return compile_schema(spec.source, param=spec.param or "response_format", whitespace=spec.whitespace)
    if spec.kind == "regex":
        return Grammar.single(parse_regex(spec.source, param=spec.param or "regex"))
    if spec.kind == "grammar":
        return parse_gbnf(spec.source)
    if spec.kind == "choices":
        return Grammar.single(alt(*[lit(c) for c in spec.source]))
    if spec.kind == "wrapped_json":
        inner = compile_schema(spec.source["schema"], param=spec.param or "tools", whitespace=spec.whitespace)
        name = "wrapped"
        while name in inner.rules:
            name += "_"
        rules = dict(inner.rules)
        rules[name] = seq(lit(spec.source["prefix"]), Ref(inner.root), lit(spec.source["suffix"]))
        return Grammar(rules, name)
    raise ConstraintError(f"unknown constraint kind {spec.kind!r}.", f"Use one of {', '.join(KINDS)}.")


class ConstraintCompiler:
    """Compiles specs for one vocabulary and keeps the last few (with their mask caches)."""

    def __init__(self, index: TokenIndex, keep: int = 16):
        self.index = index
        self.keep = keep
        self._cache: OrderedDict[str, CompiledConstraint] = OrderedDict()

    def compile(self, spec: ConstraintSpec) -> CompiledConstraint:
        key = spec.key
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        cc = CompiledConstraint(Automaton(grammar_of(spec)), self.index, spec.kind)
        if cc.automaton.step(cc.automaton.start, 0) < -1:   # pragma: no cover - never
            raise AssertionError
        self._cache[key] = cc
        while len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return cc
