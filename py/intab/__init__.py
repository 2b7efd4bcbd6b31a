"""intab: a small language model whose whole decoding stack is Python, running in a browser tab.

    import intab
    engine = await intab.load()                  # in the tab: the site's model; CPython: see docs/python.md
    result = await engine.chat([{"role": "user", "content": "Hello!"}])
    print(result.text)

The same calls run in Pyodide (PyScript, JupyterLite, a page of your own) and under CPython
(`pip install --find-links dist "intab[cpu]"`: onnxruntime). docs/python.md is the guide.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

from .api import ChatResult, ChatSession, IntabEngine, SyncEngine, SyncUnavailable, TextModel, TextStream, \
    TokenLogprob, Usage, can_block, run_sync
from .candidates import Candidates
from .config import GenerationConfig
from .errors import BackendError, EngineBusy, IntabError, InvalidParameter, ProcessorError, PromptTooLong, \
    StopGeneration, TemplateError, TokenizerError

__version__ = "0.1.0"
IN_PYODIDE = sys.platform == "emscripten"


async def load(model: str | None = None, on_progress: Callable[[dict], Any] | None = None, backend: str = "auto",
               **options: Any) -> IntabEngine:
    """Load a model and return its engine.

    model: a model id of the site (None: its first, the default); under CPython also a local
        model folder (static/models/<id>).
    on_progress: called with {phase: 'boot'|'download'|'init', message, loaded, total, ...}.
    backend: 'auto' | 'wasm' | 'webgpu' in the tab; 'auto' | 'onnxruntime' under CPython.
    options: site= (the intab site's URL; default: where the wheel came from), threads=;
        in the tab also kernel=, js_module= (intab.mjs already imported), bridge= + files= (a
        bridge of your own, docs/contracts.md §3).
    """
    if IN_PYODIDE:
        from .tab import open_engine
        if "js_module" in options:
            options["js_module_"] = options.pop("js_module")
        return await open_engine(model, on_progress, backend, **options)
    try:
        from intab_host.loader import open_engine as host_open
    except ImportError as e:
        raise BackendError(f"intab's CPython backend is not installed ({e}).",
                           'pip install --find-links <intab>/dist "intab[cpu]" (python3 build.py build writes dist/).') from None
    return await host_open(model, on_progress, backend, **options)


async def load_tokenizer(model: str | None = None, *, site: str | None = None) -> TextModel:
    """The model's tokenizer, chat template and facts, without its runtime (no weights fetched)."""
    if IN_PYODIDE:
        from .tab import open_text_model
        return await open_text_model(model, site=site)
    try:
        from intab_host.loader import open_text_model as host_text
    except ImportError:
        host_text = None
    if host_text is None:
        raise BackendError("load_tokenizer needs a model folder under CPython.",
                           "Use TextModel.from_files({name: text}) or install intab[cpu].")
    return await host_text(model, site=site)


def load_sync(model: str | None = None, on_progress: Callable[[dict], Any] | None = None, backend: str = "auto",
              **options: Any) -> IntabEngine:
    """load(), blocking: only where can_block() (else SyncUnavailable says to use await)."""
    return run_sync(load(model, on_progress, backend, **options))


__all__ = [
    "BackendError", "Candidates", "ChatResult", "ChatSession", "EngineBusy", "GenerationConfig", "IntabEngine",
    "IntabError", "InvalidParameter", "ProcessorError", "PromptTooLong", "StopGeneration", "SyncEngine", "SyncUnavailable", "TemplateError", "TextModel",
    "TextStream", "TokenLogprob", "TokenizerError", "Usage", "can_block", "load", "load_sync", "load_tokenizer",
    "run_sync",
]
