"""The only module that knows it runs in the worker's Pyodide: the JS bridge as a Backend, and the
session object the worker calls (docs/contracts.md §3, §4). Everything else is plain
CPython-testable code.

Every session call answers {ok: true, value} or {ok: false, error: {name, message, hint, param}}:
the error's fields cross as they are, so the JS side never parses a traceback.
"""
from __future__ import annotations

import traceback
from typing import Any, Callable, Sequence

from .backend import Head, as_head
from .candidates import Candidates
from .engine import Delta, Engine, Request
from .errors import BackendError, IntabError


def _py(obj: Any) -> Any:
    """JS value -> Python value (dicts, lists, str...), passing Python values through."""
    return obj.to_py() if hasattr(obj, "to_py") else obj


def _js(value: Any) -> Any:
    from js import Object
    from pyodide.ffi import to_js

    return to_js(value, dict_converter=Object.fromEntries)


class JsBackend:
    """Backend over a JS bridge (web/kernel_bridge.mjs, web/bridge.mjs). Only ids go in and the
    top-K comes out; the KV cache stays in JS."""

    def __init__(self, bridge: Any):
        self._bridge = bridge
        self.name = str(bridge.backend)

    @property
    def kv_length(self) -> int:
        return int(self._bridge.kvLength)

    async def forward(self, ids: Sequence[int], start: int, head: Head | int) -> Candidates:
        from js import Int32Array, Object
        from pyodide.ffi import JsException, to_js

        h = as_head(head)
        req = Object.new()
        req.temperature, req.topP, req.minP, req.topK = h.temperature, h.top_p, h.min_p, h.top_k
        req.penalty, req.draw, req.skipDisallowed = h.penalty, h.draw, h.skip_disallowed
        if h.penalized:
            req.penalized = Int32Array.new(to_js(list(h.penalized)))
        if h.mask is not None:
            req.mask = to_js(h.mask)   # bytes -> Uint8Array of the uint32 words
        try:
            res = await self._bridge.forward(Int32Array.new(to_js(list(ids))), start, h.k, req)
        except JsException as e:
            raise BackendError(f"the model runtime failed: {e}") from None

        def num(name: str) -> float | None:
            v = getattr(res, name, None)
            return None if v is None else float(v)
        tail = num("tail")
        return Candidates(tuple(res.ids.to_py().tolist()), tuple(res.logits.to_py().tolist()), float(res.logsumexp),
                          num("allowedLogsumexp"), num("lseT"), num("lseKept"), -1 if tail is None else int(tail),
                          h.draw if h.draw >= 0 else None, h.temperature)

    async def truncate(self, length: int) -> None:
        await self._bridge.truncate(length)

    async def snapshot(self) -> Any:
        """The bridge's snapshot object (JS): .bytes, .release(); kept alive by this proxy."""
        return await self._bridge.snapshot()

    async def restore(self, snap: Any) -> None:
        await self._bridge.restore(snap)


def _failure(e: BaseException) -> dict:
    if isinstance(e, IntabError):
        return {"ok": False, "error": e.to_dict()}
    # Not one of ours: a bug. Say what and where, and that the engine is still usable.
    return {"ok": False, "error": {"name": "InternalError", "message": f"{type(e).__name__}: {e}",
                                   "hint": "This is a bug in intab; the engine is still usable. Please report it.",
                                   "param": None, "traceback": traceback.format_exc()}}


def _answer(fn: Callable[[], Any]) -> Any:
    try:
        return _js({"ok": True, "value": fn()})
    except Exception as e:
        return _js(_failure(e))


class Session:
    """What the worker holds: one engine, many conversations (the engine keeps their KV)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._prepared: dict[int, Request] = {}   # request id -> checked and tokenized, waiting its turn

    def check(self, request_id: int, kind: str, payload: Any, options: Any = None) -> Any:
        """Check a request and tokenize its prompt when it arrives, before it waits in the queue,
        so that a bad request fails at once (as an HTTP API answers 400 before it streams)."""
        def prepare() -> dict:
            opts = _py(options) if options is not None else None
            opts = dict(opts) if opts else None
            if kind == "chat":
                req = self.engine.prepare_chat(list(_py(payload)), opts)
            elif kind == "complete":
                req = self.engine.prepare_completion(_py(payload), opts)
            else:
                raise IntabError(f"unknown request kind {kind!r}.", "Use 'chat' or 'complete'.")
            self._prepared[int(request_id)] = req
            return {"prompt_tokens": len(req.prompt), "dropped_messages": req.dropped}
        return _answer(prepare)

    def forget(self, request_id: int) -> None:
        self._prepared.pop(int(request_id), None)

    async def generate(self, request_id: int, on_delta: Any = None) -> Any:
        """Run a request that check() accepted."""
        def deliver(d: Delta) -> None:
            on_delta(_js({"text": d.text, "token_ids": d.token_ids, "logprobs": d.logprobs, "tool_calls": d.tool_calls}))

        req = self._prepared.pop(int(request_id), None)
        if req is None:
            return _js(_failure(IntabError(f"request {request_id} was not checked.", "Send check() first.")))
        try:
            result = await self.engine.run(req, deliver if on_delta is not None else None)
            return _js({"ok": True, "value": result.to_dict()})
        except Exception as e:
            return _js(_failure(e))

    def abort(self) -> None:
        self.engine.abort()

    async def reset(self) -> None:
        await self.engine.reset()

    def tokenize(self, text: Any, add_special_tokens: bool = False) -> Any:
        return _answer(lambda: self.engine.tokenizer.encode(_py(text), add_special_tokens=bool(add_special_tokens)))

    def detokenize(self, ids: Any, skip_special_tokens: bool = True) -> Any:
        return _answer(lambda: self.engine.tokenizer.decode([int(i) for i in _py(ids)],
                                                            skip_special_tokens=bool(skip_special_tokens)))

    def count_tokens(self, messages: Any, add_generation_prompt: bool = True) -> Any:
        return _answer(lambda: self.engine.count_tokens(list(_py(messages)), bool(add_generation_prompt)))

    def apply_chat_template(self, messages: Any, add_generation_prompt: bool = True) -> Any:
        return _answer(lambda: self.engine.apply_chat_template(list(_py(messages)), bool(add_generation_prompt)))

    def defaults(self) -> Any:
        """Model facts and sampling defaults for the client's `engine.info`."""
        cfg = self.engine.config()
        info = self.engine.info
        return _js({"max_context": info.max_context, "vocab_size": info.vocab_size,
                    "chat_template": self.engine.template is not None,
                    "temperature": cfg.temperature, "top_p": cfg.top_p,
                    "top_k": cfg.top_k, "min_p": cfg.min_p, "repetition_penalty": cfg.repetition_penalty,
                    "max_tokens": cfg.max_tokens, "backend": self.engine.backend.name})


def create_session(bridge: Any, files: Any) -> Session:
    """files: {filename: text} for tokenizer.json, tokenizer_config.json, config.json, generation_config.json."""
    return Session(Engine.from_files(dict(_py(files)), JsBackend(bridge)))
