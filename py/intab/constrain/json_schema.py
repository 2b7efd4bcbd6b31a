"""JSON Schema -> grammar (ir.py): the JSON texts the schema accepts, as the engine writes them.

What is enforced, exactly, is in docs/structured-output.md's table; anything else that asserts
something is refused up front with `UnsupportedSchema` naming the keyword (never half-enforced).
Annotations (title, description, default, examples, $comment, ...) and unknown keywords are
ignored, as JSON Schema says.

The syntax is JSON's, with these choices (as llguidance and OpenAI's structured outputs make
them), so a small model cannot wander:
- properties come in the order of `properties`, then required ones not listed there, then any
  additional ones (a JSON object's order carries no meaning);
- whitespace is bounded: at most one space, or a newline and up to 20 spaces of indent,
  between tokens (`whitespace="compact"`: none); none before or after the value;
- strings carry characters raw, except `"`, `\\` and control characters, which are escaped
  (`\\"`, `\\\\`, `\\n`, `\\u001f`, ...); numbers with bounds are plain decimals (no exponent);
- `format` is asserted for the formats listed in FORMATS; others are refused.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from .errors import UnsupportedSchema
from .ir import (EMPTY, NOTHING, Chars, Expr, Grammar, Intervals, Ref, Repeat, alt, chars_of, lit, negate,
                 norm, opt, seq, star, subtract, union)
from .regex import parse_regex

ANNOTATIONS = {
    "$schema", "$id", "$comment", "$anchor", "$vocabulary", "title", "description", "default", "examples",
    "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "$defs", "definitions",
    "x-guidance", "discriminator", "nullable_", "markdownDescription", "id",
}
# assertion keywords the engine does not enforce: refused
REFUSED = {
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "patternProperties",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems", "contains", "minContains", "maxContains",
    "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", "contentSchema", "additionalItems",
}
TYPES = ("null", "boolean", "object", "array", "string", "number", "integer")
DIGIT = norm([(0x30, 0x39)])
HEX = norm([(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)])
CONTROL = norm([(0, 0x1F)])
SPECIAL = union(CONTROL, chars_of('"\\\x7f'))   # DEL too, escaped as llguidance does
SHORT_ESCAPES = {'"': '"', "\\": "\\", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}

# format -> regex (ECMA syntax), each exact for its RFC's grammar as JSON-Schema-Test-Suite checks it
_YEAR = r"[0-9]{4}"
_LEAP = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)"
_DATE = (rf"({_YEAR}-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|{_YEAR}-(0[469]|11)-(0[1-9]|[12][0-9]|30)"
         rf"|{_YEAR}-02-(0[1-9]|1[0-9]|2[0-8])|{_LEAP}-02-29)")
_OFFSET = r"([zZ]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
_TIME = rf"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?{_OFFSET}"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
FORMATS = {
    "date": _DATE,
    "time": _TIME,
    "date-time": rf"{_DATE}[tT]{_TIME}",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "ipv4": rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}",
}


@dataclass
class Options:
    whitespace: str = "flexible"       # "flexible" (bounded) | "compact"
    max_indent: int = 20


def _ws(opts: Options) -> Expr:
    if opts.whitespace == "compact":
        return EMPTY
    return opt(alt(lit(" "), seq(lit("\n"), Repeat(Chars(chars_of(" ")), 0, opts.max_indent))))


@lru_cache(maxsize=512)
def json_units(iv: Intervals) -> Expr:
    """One character of `iv` as it appears inside a JSON string: raw, or escaped where it must be.

    Memoized (expressions are frozen): the same few classes come back for every string of a
    schema, and each build costs ~11 ms (CPython; 1.5 s of a 75-string schema's compile)."""
    raw = subtract(iv, SPECIAL)
    parts: list[Expr] = [Chars(raw)] if raw else []
    for lo, hi in iv:
        for c in [*range(lo, min(hi, 0x5C) + 1), *([0x7F] if lo <= 0x7F <= hi else [])]:
            ch = chr(c)
            if ch in SHORT_ESCAPES:
                parts.append(lit("\\" + SHORT_ESCAPES[ch]))
            if c < 0x20 or c == 0x7F:
                h = f"{c:04x}"
                parts.append(seq(lit("\\u00"), Chars(chars_of(h[2].lower() + h[2].upper())),
                                 Chars(chars_of(h[3].lower() + h[3].upper()))))
        if lo > 0x7F:
            break
    return alt(*parts) if parts else NOTHING


def _map_chars(e: Expr, f) -> Expr:
    """Rewrite every Chars node of a (Ref-free) expression."""
    if isinstance(e, Chars):
        return f(e.iv)
    if hasattr(e, "items"):
        items = tuple(_map_chars(x, f) for x in e.items)
        return seq(*items) if type(e).__name__ == "Seq" else alt(*items) if items else NOTHING
    if isinstance(e, Repeat):
        return Repeat(_map_chars(e.item, f), e.min, e.max)
    raise UnsupportedSchema("pattern: unexpected construct", keyword="pattern")  # pragma: no cover


def _length_range(e: Expr) -> tuple[int, float]:
    """(min, max) characters of the strings of a Ref-free expression."""
    if isinstance(e, Chars):
        return (1, 1) if e.iv else (0, -math.inf)
    if isinstance(e, Repeat):
        lo, hi = _length_range(e.item)
        return lo * e.min, (math.inf if e.max is None and hi > 0 else hi * (e.max or 0))
    if type(e).__name__ == "Seq":
        lo = hi = 0
        for x in e.items:
            a, b = _length_range(x)
            lo, hi = lo + a, hi + b
        return lo, hi
    rs = [_length_range(x) for x in e.items]
    return (min(r[0] for r in rs), max(r[1] for r in rs)) if rs else (0, 0)


def json_literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---- integer and decimal ranges as digit expressions -------------------------------------------

def _digits_between(a: str, b: str) -> Expr:
    """Digit strings of len(a) == len(b) characters between a and b (inclusive)."""
    n = len(a)
    if a == b:
        return lit(a)
    if a == "0" * n and b == "9" * n:
        return Repeat(Chars(DIGIT), n, n)
    if n == 1:
        return Chars(norm([(ord(a), ord(b))]))
    if a[0] == b[0]:
        return seq(lit(a[0]), _digits_between(a[1:], b[1:]))
    parts = [seq(lit(a[0]), _digits_between(a[1:], "9" * (n - 1)))]
    if int(a[0]) + 1 <= int(b[0]) - 1:
        parts.append(seq(Chars(norm([(ord(a[0]) + 1, ord(b[0]) - 1)])), Repeat(Chars(DIGIT), n - 1, n - 1)))
    parts.append(seq(lit(b[0]), _digits_between("0" * (n - 1), b[1:])))
    return alt(*parts)


def uint_range(lo: int, hi: int | None) -> Expr:
    """Decimal integers without sign or leading zeros, lo <= n <= hi (hi None: unbounded)."""
    if hi is not None and hi < lo:
        return NOTHING
    parts: list[Expr] = []
    top = len(str(hi)) if hi is not None else len(str(lo))
    for n in range(len(str(lo)), top + 1):
        a = str(lo) if n == len(str(lo)) else "1" + "0" * (n - 1)
        b = str(hi) if hi is not None and n == len(str(hi)) else "9" * n
        if int(a) <= int(b):
            parts.append(_digits_between(a, b))
    if hi is None:
        parts.append(seq(Chars(norm([(0x31, 0x39)])), Repeat(Chars(DIGIT), top, None)))
    return alt(*parts) if parts else NOTHING


def int_range(lo: int | None, hi: int | None) -> Expr:
    """Decimal integers (JSON syntax, no -0) in [lo, hi]."""
    parts = []
    if hi is None or hi >= 0:
        parts.append(uint_range(max(lo, 0) if lo is not None else 0, hi))
    if lo is None or lo < 0:
        neg_lo = max(-hi, 1) if hi is not None else 1
        parts.append(seq(lit("-"), uint_range(neg_lo, -lo if lo is not None else None)))
    return alt(*parts) if parts else NOTHING


_FRAC = opt(seq(lit("."), Repeat(Chars(DIGIT), 1, None)))
_ZFRAC = opt(seq(lit("."), Repeat(Chars(chars_of("0")), 1, None)))
_NZFRAC = seq(lit("."), star(Chars(DIGIT)), Chars(norm([(0x31, 0x39)])), star(Chars(DIGIT)))


def _nonneg_decimal(lo: int, lo_excl: bool, hi: int | None, hi_excl: bool) -> Expr:
    """Plain decimals x >= 0 (integer part, optional fraction) with lo <(=) x <(=) hi, integer bounds."""
    parts = []
    first = lo + 1 if lo_excl else lo                    # integer parts taking any fraction ...
    last = None if hi is None else hi - 1               # ... below hi
    if last is None or first <= last:
        parts.append(seq(uint_range(first, last), _FRAC))
    if lo_excl and (hi is None or lo < hi):
        parts.append(seq(uint_range(lo, lo), _NZFRAC))   # lo itself plus a nonzero fraction
    if hi is not None and not hi_excl and (hi > lo or (hi == lo and not lo_excl)):
        parts.append(seq(uint_range(hi, hi), _ZFRAC))
    return alt(*parts) if parts else NOTHING


def decimal_range(lo: float | None, lo_excl: bool, hi: float | None, hi_excl: bool) -> Expr:
    parts = []
    if hi is None or hi > 0 or (hi == 0 and not hi_excl):
        nl, ne = (0, False) if lo is None or lo < 0 else (int(lo), lo_excl)
        parts.append(_nonneg_decimal(nl, ne, None if hi is None else int(hi), hi_excl))
    if lo is None or lo < 0:
        # -v with v > 0: v <(=) -lo, v >(=) -hi when hi < 0
        vlo, vlo_excl = (0, True) if hi is None or hi >= 0 else (int(-hi), hi_excl)
        parts.append(seq(lit("-"), _nonneg_decimal(vlo, vlo_excl, None if lo is None else int(-lo), lo_excl)))
    return alt(*parts) if parts else NOTHING


# ---- the compiler ------------------------------------------------------------------------------

@dataclass
class _Ctx:
    root: Any
    opts: Options
    rules: dict[str, Expr] = field(default_factory=dict)
    ref_names: dict[str, str] = field(default_factory=dict)
    compiling: list[str] = field(default_factory=list)


class SchemaCompiler:
    def __init__(self, schema: Any, opts: Options | None = None, param: str = "response_format"):
        self.param = param
        self.ctx = _Ctx(schema, opts or Options())
        self.ws = _ws(self.ctx.opts)

    def refuse(self, keyword: str, why: str, path: str) -> UnsupportedSchema:
        return UnsupportedSchema(f"{self.param}: the JSON Schema keyword {keyword!r} at {path or '#'} {why}.",
                                 param=self.param, keyword=keyword)

    def count(self, s: dict, key: str, path: str, default: Any = None) -> Any:
        """A non-negative integer keyword (2.0 counts as 2, as JSON Schema says)."""
        v = s.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or not float(v).is_integer():
            raise self.refuse(key, "must be a non-negative integer", path)
        return int(v)

    def grammar(self) -> Grammar:
        root = self.schema(self.ctx.root, "#")
        self.ctx.rules["root"] = root
        return Grammar(self.ctx.rules, "root")

    # -- any value ---------------------------------------------------------------------------
    def any_value(self) -> Expr:
        if "json_value" not in self.ctx.rules:
            ws = self.ws
            self.ctx.rules["json_value"] = NOTHING   # placeholder while building (recursive)
            val = Ref("json_value")
            member = seq(self.string_expr(None), ws, lit(":"), ws, val)
            obj = seq(lit("{"), ws, opt(seq(member, star(seq(ws, lit(","), ws, member)), ws)), lit("}"))
            arr = seq(lit("["), ws, opt(seq(val, star(seq(ws, lit(","), ws, val)), ws)), lit("]"))
            self.ctx.rules["json_value"] = alt(obj, arr, self.string_expr(None), self.number_syntax(),
                                               lit("true"), lit("false"), lit("null"))
        return Ref("json_value")

    @staticmethod
    def number_syntax() -> Expr:
        exp = opt(seq(Chars(chars_of("eE")), opt(Chars(chars_of("+-"))), Repeat(Chars(DIGIT), 1, None)))
        return seq(opt(lit("-")), uint_range(0, None), _FRAC, exp)

    def string_expr(self, body: Expr | None) -> Expr:
        if body is None:
            if "json_string" not in self.ctx.rules:
                self.ctx.rules["json_string"] = seq(lit('"'), star(json_units(norm([(0, 0x10FFFF)]))), lit('"'))
            return Ref("json_string")
        return seq(lit('"'), body, lit('"'))

    # -- schemas -----------------------------------------------------------------------------
    def schema(self, s: Any, path: str) -> Expr:
        if s is True or s == {}:
            return self.any_value()
        if s is False:
            return NOTHING
        if not isinstance(s, dict):
            raise UnsupportedSchema(f"{self.param}: the schema at {path} is not an object or a boolean.",
                                    param=self.param, keyword="schema")
        for k in s:
            if k in REFUSED:
                raise self.refuse(k, "is not supported", path)
        if "$ref" in s:
            return self.ref(s, path)
        if "allOf" in s:
            merged = {k: v for k, v in s.items() if k != "allOf"}
            for i, sub in enumerate(s["allOf"]):
                merged = self.merge(merged, self.resolve_shallow(sub, f"{path}/allOf/{i}"), f"{path}/allOf/{i}")
            return self.schema(merged, path)
        for key in ("anyOf", "oneOf"):
            if key in s:
                branches = s[key]
                if not isinstance(branches, list) or not branches:
                    raise self.refuse(key, "must be a non-empty list", path)
                rest = {k: v for k, v in s.items() if k != key}
                subs = [self.merge(rest, self.resolve_shallow(b, f"{path}/{key}/{i}"), f"{path}/{key}/{i}")
                        for i, b in enumerate(branches)]
                if key == "oneOf" and not self.disjoint(subs):
                    raise self.refuse("oneOf", "has branches that may overlap (exactly-one cannot be enforced); "
                                      "use anyOf if overlapping values are fine", path)
                return alt(*[self.schema(b, f"{path}/{key}/{i}") for i, b in enumerate(subs)])
        if "const" in s:
            return self.const_expr(s, [s["const"]], path)
        if "enum" in s:
            if not isinstance(s["enum"], list):
                raise self.refuse("enum", "must be a list", path)
            return self.const_expr(s, s["enum"], path)
        types = s.get("type", list(TYPES[:-1]))
        if isinstance(types, str):
            types = [types]
        for t in types:
            if t not in TYPES:
                raise self.refuse("type", f"has the unknown type {t!r}", path)
        if "number" in types and "integer" in types:
            types = [t for t in types if t != "integer"]
        return alt(*[self.typed(t, s, path) for t in types]) if types else NOTHING

    def const_expr(self, s: dict, values: list, path: str) -> Expr:
        """const/enum: the listed values, each written as the engine writes JSON; sibling keywords
        are checked against each value here (a value they reject is dropped)."""
        others = {k: v for k, v in s.items() if k not in ANNOTATIONS and k not in ("const", "enum")}
        if "enum" in s and "const" in s:
            values = [v for v in values if any(_json_equal(v, e) for e in s["enum"])]
        keep = []
        check = self.matcher_of(others, path) if others else None
        for v in values:
            if check is not None and not check(v):
                continue
            if not any(_json_equal(v, k) for k in keep):
                keep.append(v)
        return alt(*[self.value_expr(v) for v in keep]) if keep else NOTHING

    def matcher_of(self, s: dict, path: str):
        """Whether a value satisfies keywords: they are compiled once (not once per enum value) and
        each value is matched against them."""
        from .automaton import Automaton
        sub = SchemaCompiler(self.ctx.root, Options("compact"), self.param)
        sub.ctx.rules["root"] = sub.schema(s, path)
        a = Automaton(Grammar(sub.ctx.rules, "root"))

        def check(v: Any) -> bool:
            st = a.step_bytes(a.start, json_literal(_canonical_number(v)).encode())
            return st >= 0 and a.accepting(st)
        return check

    def value_expr(self, v: Any) -> Expr:
        ws = self.ws
        if isinstance(v, dict):
            if not v:
                return seq(lit("{"), ws, lit("}"))  # noqa: one whitespace between empty braces
            members = [seq(lit(json_literal(k)), ws, lit(":"), ws, self.value_expr(x)) for k, x in v.items()]
            out = [members[0]]
            for m in members[1:]:
                out += [ws, lit(","), ws, m]
            return seq(lit("{"), ws, *out, ws, lit("}"))
        if isinstance(v, list):
            if not v:
                return seq(lit("["), ws, lit("]"))
            out = [self.value_expr(v[0])]
            for x in v[1:]:
                out += [ws, lit(","), ws, self.value_expr(x)]
            return seq(lit("["), ws, *out, ws, lit("]"))
        if isinstance(v, float) and v.is_integer():
            return alt(lit(str(int(v))), lit(repr(v)))
        if isinstance(v, int) and not isinstance(v, bool):
            return alt(lit(str(v)), lit(f"{v}.0"))
        return lit(json_literal(v))

    def typed(self, t: str, s: dict, path: str) -> Expr:
        if t == "null":
            return lit("null")
        if t == "boolean":
            return alt(lit("true"), lit("false"))
        if t == "string":
            return self.string_schema(s, path)
        if t in ("number", "integer"):
            return self.number_schema(t, s, path)
        if t == "object":
            return self.object_schema(s, path)
        return self.array_schema(s, path)

    # -- strings -------------------------------------------------------------------------------
    def string_schema(self, s: dict, path: str) -> Expr:
        lo = self.count(s, "minLength", path, 0)
        hi = self.count(s, "maxLength", path)
        body: Expr | None = None
        if "pattern" in s and "format" in s:
            raise self.refuse("format", "together with 'pattern' is not supported", path)
        if "pattern" in s:
            try:
                body = parse_regex(s["pattern"], param=f"{self.param} pattern at {path}", search=True, ecma=True)
            except UnsupportedSchema:
                raise
            except Exception as e:  # ConstraintError from the regex parser
                raise UnsupportedSchema(str(getattr(e, "message", e)), param=self.param, keyword="pattern") from None
            key = "pattern"
        elif "format" in s:
            fmt = s["format"]
            if fmt not in FORMATS:
                raise self.refuse("format", f"{fmt!r} is not one of the enforced formats ({', '.join(FORMATS)})", path)
            body = parse_regex(FORMATS[fmt], search=False, ecma=True)
            key = "format"
        if body is not None:
            if lo or hi is not None:
                a, b = _length_range(body)
                if a < lo or (hi is not None and b > hi):
                    raise self.refuse("maxLength" if hi is not None else "minLength",
                                      f"together with {key!r} is not supported unless the {key} implies it", path)
            return self.string_expr(_map_chars(body, json_units))
        if hi is not None and hi > 5000:
            raise self.refuse("maxLength", "above 5000 is not supported", path)
        if lo > 5000:
            raise self.refuse("minLength", "above 5000 is not supported", path)
        if lo == 0 and hi is None:
            return self.string_expr(None)
        return self.string_expr(Repeat(json_units(norm([(0, 0x10FFFF)])), lo, hi))

    # -- numbers -------------------------------------------------------------------------------
    def number_schema(self, t: str, s: dict, path: str) -> Expr:
        mult = s.get("multipleOf")
        if mult is not None:
            if not (t == "integer" and mult == 1) and not (isinstance(mult, (int, float)) and mult == 0.0):
                raise self.refuse("multipleOf", "is not supported (except multipleOf 1 on integers)", path)
        lo, lo_excl, lo_key = s.get("minimum"), False, "minimum"
        hi, hi_excl, hi_key = s.get("maximum"), False, "maximum"
        em, eM = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        if isinstance(em, bool):       # draft 4: a flag on minimum
            lo_excl = em and lo is not None
        elif em is not None:
            if lo is None or em >= lo:
                lo, lo_excl, lo_key = em, True, "exclusiveMinimum"
        if isinstance(eM, bool):
            hi_excl = eM and hi is not None
        elif eM is not None:
            if hi is None or eM <= hi:
                hi, hi_excl, hi_key = eM, True, "exclusiveMaximum"
        for k, v in ((lo_key, lo), (hi_key, hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise self.refuse(k, "must be a number", path)
        if t == "integer":
            ilo = None if lo is None else (math.floor(lo) + 1 if lo_excl and float(lo).is_integer() else math.ceil(lo))
            ihi = None if hi is None else (math.ceil(hi) - 1 if hi_excl and float(hi).is_integer() else math.floor(hi))
            return int_range(ilo, ihi)
        if lo is None and hi is None:
            return self.number_syntax()
        for k, v in ((lo_key, lo), (hi_key, hi)):
            if v is not None and not float(v).is_integer():
                raise self.refuse(k, "with a fractional bound on a number is not supported (integer bounds are)", path)
        return decimal_range(lo, lo_excl, hi, hi_excl)

    # -- objects -------------------------------------------------------------------------------
    def object_schema(self, s: dict, path: str) -> Expr:
        ws = self.ws
        props = s.get("properties", {})
        if not isinstance(props, dict):
            raise self.refuse("properties", "must be an object", path)
        required = list(dict.fromkeys(s.get("required", [])))
        addl = s.get("additionalProperties", True)
        names = list(props)
        for r in required:
            if r not in props:
                if addl is False:
                    return NOTHING
                names.append(r)
        if "minProperties" in s or "maxProperties" in s:
            if not (set(required) >= set(props) and addl is False):
                raise self.refuse("minProperties" if "minProperties" in s else "maxProperties",
                                  "is only supported when every property is required and additionalProperties is false",
                                  path)
            n = len(names)
            if n < self.count(s, "minProperties", path, 0) or n > self.count(s, "maxProperties", path, n):
                return NOTHING

        def member(name: str) -> Expr:
            sub = props.get(name, addl)
            value = self.schema(sub, f"{path}/properties/{name}")
            return seq(lit(json_literal(name)), ws, lit(":"), ws, value)

        items = [(member(n), n in required) for n in names]
        items = [(m, req) for m, req in items if m != NOTHING or req]
        extra: Expr | None = None
        if addl is not False:
            key_body = _exclude_keys(set(names), self._rule)
            value = self.schema(addl, f"{path}/additionalProperties")
            if value != NOTHING:
                extra = self._rule(seq(self.string_expr(key_body), ws, lit(":"), ws, value))
        sep = seq(ws, lit(","), ws)
        # after(i): members i.. when one was written already; first(i): when none was
        after: Expr = star(seq(sep, extra)) if extra is not None else EMPTY
        first: Expr = seq(extra, after) if extra is not None else NOTHING   # at least one member
        nullable = True
        for m, req in reversed(items):
            if m == NOTHING:
                return NOTHING   # a required property whose schema accepts nothing
            name = self._rule(seq(m, after))
            after = seq(sep, name) if req else seq(opt(seq(sep, m)), after)
            after = self._rule(after)
            first = name if req else alt(name, first)
            first = self._rule(first)
            nullable = nullable and not req
        # whitespace once between the braces of an empty object
        body = seq(first, ws) if first != NOTHING else NOTHING
        return seq(lit("{"), ws, opt(body) if nullable else body, lit("}"))

    def _rule(self, e: Expr) -> Expr:
        """A named rule for a piece shared by several alternatives (compiled once, called)."""
        if isinstance(e, Ref) or _small(e):
            return e
        name = f"r{len(self.ctx.rules)}"
        self.ctx.rules[name] = e
        return Ref(name)

    # -- arrays --------------------------------------------------------------------------------
    def array_schema(self, s: dict, path: str) -> Expr:
        ws = self.ws
        if s.get("uniqueItems") is True:
            raise self.refuse("uniqueItems", "(true) is not supported", path)
        lo, hi = self.count(s, "minItems", path, 0), self.count(s, "maxItems", path)
        prefix = s.get("prefixItems", [])
        items = s.get("items", True)
        if isinstance(items, list):    # draft 4-7 tuple form
            prefix, items = items, s.get("additionalItems", True)
        if hi is not None and hi > 1000:
            raise self.refuse("maxItems", "above 1000 is not supported", path)
        if lo > 1000:
            raise self.refuse("minItems", "above 1000 is not supported", path)
        sep = seq(ws, lit(","), ws)
        prefix_exprs = [self.schema(p, f"{path}/prefixItems/{i}") for i, p in enumerate(prefix)]
        item = self.schema(items, f"{path}/items")
        item = self._rule(item)
        # positions 0..: prefix schemas, then `item`; the count is in [lo, hi]
        total_max = hi
        def tail(k: int) -> Expr:
            """Items after the first k (k >= 1 written), each preceded by a comma."""
            need = max(lo - k, 0)
            if total_max is not None and k >= total_max:
                return EMPTY
            rest = None if total_max is None else total_max - k
            if k < len(prefix_exprs):
                nxt = seq(sep, prefix_exprs[k], tail(k + 1))
                return nxt if need > 0 else opt(nxt)
            if item == NOTHING:
                return NOTHING if need > 0 else EMPTY
            return Repeat(seq(sep, item), need, rest)
        if total_max == 0:
            body = EMPTY if lo == 0 else NOTHING
        else:
            firsts = prefix_exprs[0] if prefix_exprs else item
            body = seq(firsts, tail(1), ws)
            if lo == 0:
                body = opt(body)
        return seq(lit("["), ws, body, lit("]"))

    # -- references, merging -----------------------------------------------------------------
    def pointer(self, ref: str, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self.refuse("$ref", f"{ref!r} is not a local reference (#/...)", path)
        node = self.ctx.root
        for part in [p for p in ref[1:].split("/") if p != ""]:
            part = part.replace("~1", "/").replace("~0", "~")
            from urllib.parse import unquote
            part = unquote(part)
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.refuse("$ref", f"{ref!r} points nowhere", path)
        return node

    def ref(self, s: dict, path: str) -> Expr:
        target = s["$ref"]
        siblings = {k: v for k, v in s.items() if k != "$ref" and k not in ANNOTATIONS}
        node = self.pointer(target, path)
        if siblings:
            if target in self.ctx.compiling:
                raise self.refuse("$ref", "with sibling keywords on a recursive reference is not supported", path)
            return self.schema(self.merge(siblings, node, path), path)
        name = self.ctx.ref_names.get(target)
        if name is None:
            name = f"ref{len(self.ctx.ref_names)}"
            self.ctx.ref_names[target] = name
            self.ctx.compiling.append(target)
            self.ctx.rules[name] = NOTHING
            self.ctx.rules[name] = self.schema(node, target)
            self.ctx.compiling.pop()
        return Ref(name)

    def resolve_shallow(self, s: Any, path: str) -> Any:
        seen = 0
        while isinstance(s, dict) and "$ref" in s and set(s) - ANNOTATIONS == {"$ref"}:
            if s["$ref"] in self.ctx.compiling or seen > 32:
                return s
            s = self.pointer(s["$ref"], path)
            seen += 1
        return s

    def merge(self, a: Any, b: Any, path: str) -> Any:
        """The schema of values valid against both (for allOf and keywords beside anyOf/oneOf)."""
        if a is False or b is False:
            return False
        if a is True or a == {}:
            return b
        if b is True or b == {}:
            return a
        if not isinstance(a, dict) or not isinstance(b, dict):
            raise UnsupportedSchema(f"{self.param}: the schema at {path} is not an object or a boolean.",
                                    param=self.param, keyword="schema")
        out = dict(a)
        # additionalProperties / items only see their own schema's properties / prefixItems: a merge
        # that would widen what they look at changes their meaning
        for x, y in ((a, b), (b, a)):
            if "additionalProperties" in x and x["additionalProperties"] is not True and \
                    set(y.get("properties", {})) - set(x.get("properties", {})):
                raise self.refuse("additionalProperties", "combined (allOf, or beside anyOf/oneOf/$ref) with "
                                  "properties it does not list is not supported", path)
            if "items" in x and "prefixItems" in y and "prefixItems" not in x:
                raise self.refuse("items", "combined with prefixItems from another schema is not supported", path)
        for k, v in b.items():
            if k in ANNOTATIONS:
                continue
            if k not in out:
                out[k] = v
            elif k == "type":
                ta = {out[k]} if isinstance(out[k], str) else set(out[k])
                tb = {v} if isinstance(v, str) else set(v)
                both = (ta & tb) | ({"integer"} if ("number" in ta and "integer" in tb) or
                                    ("integer" in ta and "number" in tb) else set())
                out[k] = sorted(both)
            elif k == "properties":
                props = dict(out[k])
                for name, sub in v.items():
                    props[name] = self.merge(props[name], sub, f"{path}/properties/{name}") if name in props else sub
                out[k] = props
            elif k == "required":
                out[k] = list(dict.fromkeys(list(out[k]) + list(v)))
            elif k in ("minimum", "minLength", "minItems", "exclusiveMinimum") and not isinstance(v, bool):
                out[k] = max(out[k], v)
            elif k in ("maximum", "maxLength", "maxItems", "exclusiveMaximum") and not isinstance(v, bool):
                out[k] = min(out[k], v)
            elif out[k] != v:
                raise self.refuse(k, "appears in schemas that must both hold (allOf, or beside anyOf/oneOf/$ref) "
                                     "with different values, which is not supported", path)
        return out

    def disjoint(self, subs: list) -> bool:
        def types(s):
            if not isinstance(s, dict):
                return None
            if "const" in s:
                return {_json_type(s["const"])}
            if "enum" in s and isinstance(s["enum"], list):
                return {_json_type(v) for v in s["enum"]}
            t = s.get("type")
            if t is None:
                return None
            ts = {t} if isinstance(t, str) else set(t)
            return ts | ({"integer"} if "number" in ts else set())

        def consts(s, name):
            p = s.get("properties", {}).get(name) if isinstance(s, dict) else None
            if isinstance(p, dict) and name in s.get("required", []):
                if "const" in p:
                    return [p["const"]]
                if isinstance(p.get("enum"), list):
                    return p["enum"]
            return None

        for i in range(len(subs)):
            for j in range(i + 1, len(subs)):
                a, b = subs[i], subs[j]
                ta, tb = types(a), types(b)
                if ta is not None and tb is not None and not (ta & tb):
                    continue
                if isinstance(a, dict) and isinstance(b, dict):
                    shared = [n for n in a.get("properties", {}) if n in b.get("properties", {})]
                    if any((ca := consts(a, n)) is not None and (cb := consts(b, n)) is not None and
                           not any(_json_equal(x, y) for x in ca for y in cb) for n in shared):
                        continue
                if isinstance(a, dict) and isinstance(b, dict) and "const" in a and "const" in b and \
                        not _json_equal(a["const"], b["const"]):
                    continue
                return False
        return True


def _canonical_number(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, list):
        return [_canonical_number(x) for x in v]
    if isinstance(v, dict):
        return {k: _canonical_number(x) for k, x in v.items()}
    return v


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _small(e: Expr, budget: list | None = None) -> bool:
    budget = budget if budget is not None else [24]
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if hasattr(e, "items"):
        return all(_small(x, budget) for x in e.items)
    if isinstance(e, Repeat):
        return (e.max or e.min + 1) <= 4 and _small(e.item, budget)
    return True


def _exclude_keys(names: set[str], rule: Callable[[Expr], Expr]) -> Expr:
    """The body (between the quotes) of any JSON string other than the given keys.

    `rule` names the any-string tail, which every node of the keys' trie ends in: inlined, the 13
    optional keys of a JSONSchemaBench object made 141k automaton states and a 2 s compile."""
    anyc = rule(star(json_units(norm([(0, 0x10FFFF)]))))
    if not names:
        return anyc
    trie: dict = {}
    for n in names:
        node = trie
        for ch in n:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> Expr:
        kids = [c for c in node if c]
        parts: list[Expr] = [] if "" in node else [EMPTY]
        others = negate(chars_of("".join(kids))) if kids else norm([(0, 0x10FFFF)])
        parts.append(seq(json_units(others), anyc))
        for c in kids:
            parts.append(seq(json_units(chars_of(c)), build(node[c])))
        return alt(*parts)
    return build(trie)


def compile_schema(schema: Any, *, param: str = "response_format", whitespace: str = "flexible") -> Grammar:
    """The grammar of JSON texts valid against `schema`, or UnsupportedSchema naming the keyword."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise UnsupportedSchema(f"{param}: the schema is not valid JSON: {e}.", param=param, keyword="schema")
    if whitespace not in ("flexible", "compact"):
        raise UnsupportedSchema(f"{param}: whitespace must be 'flexible' or 'compact', not {whitespace!r}.",
                                param=param, keyword="whitespace")
    if schema is False:
        raise UnsupportedSchema(f"{param}: the schema `false` accepts nothing.", param=param, keyword="false")
    return SchemaCompiler(schema, Options(whitespace), param).grammar()
