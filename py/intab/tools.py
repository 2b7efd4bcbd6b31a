"""Tool calling (OpenAI's `tools` / `tool_choice`): the request checked, the tools and the past
calls put into the prompt, the call's constraint, and the answer's calls parsed back out.

One call format, Hermes / Qwen2.5's, which Qwen's own templates write:

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

A chat template that writes this format itself (its source has `<tool_call>`, as Qwen2.5's and
Qwen3's do) gets `tools` and the messages as transformers passes them. Any other template (SmolLM2's
ChatML) gets the tools in the system message, worded as Qwen2.5's template words them
(`system_prompt`), past calls written into the assistant's text, and tool results as a user turn
"The tool get_weather returned: {...}. Answer my question with it." (SmolLM2-135M, given Qwen's
`<tool_response>` tags there instead, repeated the tags and the JSON back rather than answering;
given this sentence, it answered "The weather in Paris is indeed sunny."). docs/structured-output.md
shows the format.

The guarantee comes from the constraint engine: the call is a JSON value of
`{"anyOf": [{name: const, arguments: <the tool's parameters>}, ...]}` between the fixed texts
above. `required` and a named function constrain from the first token; `auto` lets the model
write freely until `<tool_call>` appears and constrains from there (a lazy grammar).
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameter

TRIGGER = "<tool_call>"
CALL_PREFIX = "<tool_call>\n"
CALL_SUFFIX = "\n</tool_call>"
CHOICES = ("auto", "required", "none")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # OpenAI's rule for a function's name
_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


class ToolError(InvalidParameter):
    """A tool definition or tool_choice the request cannot use; `param` names the field."""
    hint = "Tools are [{type: 'function', function: {name, description, parameters}}]; see docs/api.md."


@dataclass(frozen=True)
class ToolRequest:
    """A request's tools, checked: OpenAI-shaped dicts, and the choice: 'auto' | 'required' |
    'none' | a function's name."""
    tools: tuple[dict, ...]
    choice: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t["function"]["name"] for t in self.tools)

    @property
    def calls_allowed(self) -> bool:
        return self.choice != "none"

    @property
    def forced(self) -> bool:
        """A call from the first token (required, or a named function)."""
        return self.choice not in ("auto", "none")

    @classmethod
    def from_options(cls, tools: Any, choice: Any) -> "ToolRequest | None":
        if tools is None:
            if choice is not None and choice != "none":
                raise ToolError("tool_choice needs tools.", "Pass tools=[...], or leave tool_choice out.",
                                param="tool_choice")
            return None
        checked = check_tools(tools)
        if choice is None:
            choice = "auto"
        if isinstance(choice, str):
            if choice not in CHOICES:
                raise ToolError(f"tool_choice {choice!r} is invalid: it must be 'auto', 'required', 'none' or "
                                "{type: 'function', function: {name}}.", param="tool_choice")
            return cls(checked, choice)
        if not (isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict)
                and set(choice) <= {"type", "function"}):
            raise ToolError("tool_choice must be 'auto', 'required', 'none' or {type: 'function', function: {name}}.",
                            param="tool_choice")
        name = choice["function"].get("name")
        names = [t["function"]["name"] for t in checked]
        if name not in names:
            raise ToolError(f"tool_choice names the function {name!r}, which is not among the tools "
                            f"({', '.join(names)}).", "Name one of the tools.", param="tool_choice.function.name")
        return cls(checked, name)

    def schema(self) -> dict:
        """The JSON Schema of one call: {name, arguments} of one of the allowed tools."""
        tools = [t for t in self.tools if not self.forced or self.choice in ("required", t["function"]["name"])]
        options = [{"type": "object",
                    "properties": {"name": {"const": t["function"]["name"]},
                                   "arguments": t["function"].get("parameters", EMPTY_PARAMETERS)},
                    "required": ["name", "arguments"], "additionalProperties": False} for t in tools]
        return options[0] if len(options) == 1 else {"anyOf": options}

    def constraint(self):
        """The ConstraintSpec of the call (lazy for 'auto'), or None for 'none'."""
        if not self.calls_allowed:
            return None
        from .constrain import ConstraintSpec
        return ConstraintSpec("wrapped_json", {"prefix": CALL_PREFIX, "schema": self.schema(), "suffix": CALL_SUFFIX},
                              param="tools", trigger="" if self.forced else TRIGGER)


EMPTY_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}


def check_tools(tools: Any) -> tuple[dict, ...]:
    """Tool definitions checked field by field (typed errors naming the field); each parameters
    schema is compiled by the constraint engine later, which refuses by keyword."""
    if not isinstance(tools, (list, tuple)) or not tools:
        raise ToolError("tools must be a non-empty list of {type: 'function', function: {...}}.", param="tools")
    out, seen = [], set()
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(t, dict):
            raise ToolError(f"{where} must be an object {{type: 'function', function: {{...}}}}.", param=where)
        if t.get("type") != "function":
            raise ToolError(f"{where}.type must be 'function' (got {t.get('type')!r}).", param=f"{where}.type")
        if set(t) - {"type", "function"}:
            raise ToolError(f"{where} has unknown field {sorted(set(t) - {'type', 'function'})[0]!r}.",
                            param=where)
        f = t.get("function")
        if not isinstance(f, dict):
            raise ToolError(f"{where}.function must be an object {{name, description, parameters}}.",
                            param=f"{where}.function")
        unknown = set(f) - {"name", "description", "parameters", "strict"}
        if unknown:
            raise ToolError(f"{where}.function has unknown field {sorted(unknown)[0]!r}.",
                            "Its fields are name, description, parameters, strict.", param=f"{where}.function")
        name = f.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise ToolError(f"{where}.function.name must be 1-64 letters, digits, '_' or '-' (got {name!r}).",
                            param=f"{where}.function.name")
        if name in seen:
            raise ToolError(f"{where}.function.name {name!r} is given twice.", param=f"{where}.function.name")
        seen.add(name)
        if f.get("description") is not None and not isinstance(f["description"], str):
            raise ToolError(f"{where}.function.description must be a string.", param=f"{where}.function.description")
        params = f.get("parameters")
        if params is not None and not (isinstance(params, dict) and params.get("type", "object") == "object"):
            raise ToolError(f"{where}.function.parameters must be a JSON Schema of an object.",
                            "Use {type: 'object', properties: {...}, required: [...]}.",
                            param=f"{where}.function.parameters")
        if f.get("strict") is not None and not isinstance(f["strict"], bool):
            raise ToolError(f"{where}.function.strict must be true or false.", param=f"{where}.function.strict")
        out.append({"type": "function", "function": {k: v for k, v in f.items() if v is not None}})
    return tuple(out)


def check_schemas(request: ToolRequest, compile_spec: Any) -> None:
    """Compile each tool's parameters alone, so a refused keyword names the tool it is in."""
    from .constrain import ConstraintError, ConstraintSpec
    for i, t in enumerate(request.tools):
        params = t["function"].get("parameters", EMPTY_PARAMETERS)
        where = f"tools[{i}].function.parameters"
        try:
            compile_spec(ConstraintSpec("json_schema", params, param=where))
        except ConstraintError as e:
            e.param = where
            raise


# ---- the prompt --------------------------------------------------------------------------------
def system_prompt(tools: tuple[dict, ...]) -> str:
    """The tools described for a template that has no tools of its own (Qwen2.5's wording)."""
    listed = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            f"{listed}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def native(template_source: str) -> bool:
    """Whether the chat template writes tools and calls in this format itself."""
    return "tools" in template_source and TRIGGER in template_source


def _arguments(call: dict, where: str) -> tuple[str, Any]:
    f = call.get("function") if isinstance(call, dict) else None
    if not isinstance(f, dict) or not isinstance(f.get("name"), str):
        raise ToolError(f"{where} must be {{id, type: 'function', function: {{name, arguments}}}}.", param=where)
    args = f.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise ToolError(f"{where}.function.arguments is not valid JSON.",
                            "arguments is the JSON text the call came with.", param=f"{where}.function.arguments") from None
    return f["name"], args


def messages_for(messages: list[dict], request: ToolRequest | None, template_source: str) -> tuple[list[dict], dict]:
    """(messages, template variables) for the chat template: tools and past calls as the
    template expects them (native), or written into the messages' text (any other template)."""
    shown = request.tools if request is not None and request.calls_allowed else None
    if native(template_source):
        out = []
        for i, m in enumerate(messages):
            if m.get("tool_calls"):
                calls = []
                for j, c in enumerate(m["tool_calls"]):
                    name, args = _arguments(c, f"messages[{i}].tool_calls[{j}]")
                    calls.append({**c, "function": {"name": name, "arguments": args}})
                # a call's content may be None (OpenAI); Qwen3's template reads it as text
                m = {**m, "content": m.get("content") or "", "tool_calls": calls}
            out.append(m)
        return out, ({"tools": list(shown)} if shown else {})
    out: list[dict] = []
    called: dict[str, str] = {}   # tool_call_id -> the function's name
    results: list[str] = []

    def flush() -> None:
        if results:
            ask = "Answer my question with it." if len(results) == 1 else "Answer my question with these results."
            out.append({"role": "user", "content": "\n".join(results) + " " + ask})
            results.clear()

    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "tool":
            name = called.get(str(m.get("tool_call_id")), "")
            results.append(f"The tool {name} returned: {_text(m.get('content'))}." if name else
                           f"The tool returned: {_text(m.get('content'))}.")
            continue
        flush()
        if role == "assistant" and m.get("tool_calls"):
            parts = [m["content"]] if m.get("content") else []
            for j, c in enumerate(m["tool_calls"]):
                name, args = _arguments(c, f"messages[{i}].tool_calls[{j}]")
                if isinstance(c, dict) and c.get("id") is not None:
                    called[str(c["id"])] = name
                parts.append(CALL_PREFIX + json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
                             + CALL_SUFFIX)
            out.append({"role": "assistant", "content": "\n".join(parts)})
        else:
            out.append({k: v for k, v in m.items() if k not in ("tool_calls", "tool_call_id")})
    flush()
    if shown:
        tools_text = system_prompt(shown)
        if out and out[0].get("role") == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{tools_text}"}
        else:
            out.insert(0, {"role": "system", "content": tools_text})
    return out, {}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):   # text parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return json.dumps(content, ensure_ascii=False)


# ---- the answer ----------------------------------------------------------------------------------
def parse_calls(text: str, request: ToolRequest) -> tuple[str, list[dict]] | None:
    """(content before the first call, calls in OpenAI's shape), or None when the text holds no
    complete call that parses and names one of the tools."""
    at = text.find(TRIGGER)
    if at < 0:
        return None
    calls = []
    for body in _CALL.findall(text[at:]):
        try:
            obj = json.loads(body)
        except ValueError:
            return None
        if not (isinstance(obj, dict) and obj.get("name") in request.names and isinstance(obj.get("arguments"), dict)):
            return None
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": obj["name"], "arguments": json.dumps(obj["arguments"], ensure_ascii=False)}})
    if not calls:
        return None
    return text[:at], calls


class ContentSplitter:
    """The answer's text as content deltas: text from the trigger on is held back (it becomes
    tool_calls), and so is a tail that could be the trigger's beginning."""

    def __init__(self, trigger: str = TRIGGER):
        self.trigger = trigger
        self.text = ""
        self.shown = 0
        self.cut = -1    # where the trigger starts, once seen

    def push(self, piece: str) -> str:
        self.text += piece
        if self.cut < 0:
            self.cut = self.text.find(self.trigger, max(0, self.shown - len(self.trigger)))
        end = self.cut if self.cut >= 0 else len(self.text)
        if self.cut < 0:
            for n in range(min(len(self.trigger) - 1, len(self.text) - self.shown), 0, -1):
                if self.text.endswith(self.trigger[:n]):
                    end -= n
                    break
        out = self.text[self.shown:end]
        self.shown = max(self.shown, end)
        return out

    def rest(self) -> str:
        """What was held back (when it held no call after all)."""
        out = self.text[self.shown:]
        self.shown = len(self.text)
        return out
