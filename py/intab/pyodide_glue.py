"""The only module that knows it runs in Pyodide: the JS bridge as a Backend, and the session
object the worker calls (docs/contracts.md §3, §4). Everything else is plain CPython-testable code.
"""
from __future__ import annotations

from typing import Any, Sequence

from .candidates import Candidates
from .engine import Engine
from .errors import BackendError


def _py(obj: Any) -> Any:
    """JS value -> Python value (dicts, lists, str...), passing Python values through."""
    return obj.to_py() if hasattr(obj, "to_py") else obj


class JsBackend:
    """Backend over web/bridge.mjs. Only ids go in and the top-K comes out; the KV cache stays in JS."""

    def __init__(self, bridge: Any):
        self._bridge = bridge
        self.name = str(bridge.backend)

    @property
    def kv_length(self) -> int:
        return int(self._bridge.kvLength)

    async def forward(self, ids: Sequence[int], start: int, num_candidates: int) -> Candidates:
        from js import Int32Array
        from pyodide.ffi import JsException, to_js

        try:
            res = await self._bridge.forward(Int32Array.new(to_js(list(ids))), start, num_candidates)
        except JsException as e:
            raise BackendError(f"the model runtime failed: {e}") from None
        return Candidates(tuple(res.ids.to_py().tolist()), tuple(res.logits.to_py().tolist()), float(res.logsumexp))

    async def truncate(self, length: int) -> None:
        await self._bridge.truncate(length)


class Session:
    """What the worker holds: one engine, one conversation's KV cache."""

    def __init__(self, engine: Engine):
        self.engine = engine

    async def generate(self, messages: Any, options: Any = None, on_delta: Any = None) -> Any:
        from js import Object
        from pyodide.ffi import to_js

        msgs = _py(messages)
        opts = _py(options) if options is not None else None
        result = await self.engine.generate(list(msgs), dict(opts) if opts else None,
                                            (lambda text: on_delta(text)) if on_delta is not None else None)
        return to_js(result.to_dict(), dict_converter=Object.fromEntries)

    def abort(self) -> None:
        self.engine.abort()

    async def reset(self) -> None:
        await self.engine.reset()

    def defaults(self) -> Any:
        """Model facts and sampling defaults for the page's settings panel."""
        from js import Object
        from pyodide.ffi import to_js

        cfg = self.engine.config()
        info = self.engine.info
        return to_js({"max_context": info.max_context, "temperature": cfg.temperature, "top_p": cfg.top_p,
                      "top_k": cfg.top_k, "min_p": cfg.min_p, "repetition_penalty": cfg.repetition_penalty,
                      "max_tokens": cfg.max_tokens, "backend": self.engine.backend.name},
                     dict_converter=Object.fromEntries)


def create_session(bridge: Any, files: Any) -> Session:
    """files: {filename: text} for tokenizer.json, tokenizer_config.json, config.json, generation_config.json."""
    return Session(Engine.from_files(dict(_py(files)), JsBackend(bridge)))
