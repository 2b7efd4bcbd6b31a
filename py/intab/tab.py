"""`intab.load()` in the user's own Pyodide (a PyScript page, a JupyterLite notebook, a page of
theirs): the pyodide.ffi glue, and the only module of the public API that knows it runs there.

The model runs in a worker behind the JS client's `openBridge()` (static/intab.mjs): Python here
sends token ids and gets the top-K candidates back per step (docs/contracts.md §3), so the user's
logits processors run per token in their own Python while the page stays responsive. The model's
bytes never leave the tab.

Finding intab's JS module, in this order: `js_module=` (e.g. PyScript's
`from pyscript.js_modules import intab`), a module the page registered as `intab_js`
(`pyodide.registerJsModule("intab_js", mod)`), `globalThis.intab`, and last a dynamic
`import("<site>/intab.mjs")`, which needs a page whose CSP allows eval (Pyodide has no other way
to run an import from Python).
"""
from __future__ import annotations

import json
from typing import Any, Callable

from .api import IntabEngine, TextModel
from .engine import Engine
from .errors import BackendError, IntabError
from .pyodide_glue import JsBackend

TEXT_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json")


class LoadError(IntabError):
    hint = "Check the model id and that the intab site is reachable from this page."


def site_url(site: str | None = None) -> str:
    """The intab site: `site=`, else where micropip installed the wheel from
    (`<site>/py/intab-*.whl`), else the page's own folder."""
    if site:
        return site if site.endswith("/") else site + "/"
    from importlib import metadata

    try:
        url = metadata.distribution("intab").read_text("PYODIDE_URL") or ""
    except metadata.PackageNotFoundError:
        url = ""
    for marker in ("/py/", "/jupyterlite/"):   # site/py/intab-*.whl; site/jupyterlite/ (build.py's JupyterLite)
        if marker in url:
            return url[: url.index(marker) + 1]
    import js  # type: ignore[import-not-found]

    href = str(js.location.href)
    return href[: href.rindex("/") + 1]


def _py(obj: Any) -> Any:
    return obj.to_py() if hasattr(obj, "to_py") else obj


async def js_module(module: Any = None, site: str | None = None) -> Any:
    """intab's JS client module (static/intab.mjs), found as the module docstring says."""
    if module is not None:
        return module
    try:
        import intab_js  # type: ignore[import-not-found]  # registered by the page
        return intab_js
    except ImportError:
        pass
    import js  # type: ignore[import-not-found]

    found = getattr(js.globalThis, "intab", None)
    if found is not None and hasattr(found, "openBridge"):
        return found
    url = site_url(site) + "intab.mjs"
    try:
        from pyodide.code import run_js  # type: ignore[import-not-found]

        importer = run_js("(url) => import(url)")
    except Exception as e:  # EvalError under a CSP without 'unsafe-eval'
        raise LoadError(f"cannot import {url} from Python here: {e}",
                        "Import intab.mjs in the page and pass it: intab.load(js_module=mod), or register it with "
                        "pyodide.registerJsModule('intab_js', mod) (PyScript: [js_modules.main] in the config).") from None
    try:
        return await importer(url)
    except Exception as e:
        raise LoadError(f"could not import {url}: {e}") from None


class BridgeBackend(JsBackend):
    """The worker's JsBackend (contracts.md §3: forward, truncate, kvLength, snapshot/restore) over
    openBridge()'s object or one the page made, plus release() for IntabEngine.unload()."""

    def __init__(self, bridge: Any, name: str | None = None):
        super().__init__(bridge)
        if name:
            self.name = name

    def release(self) -> None:
        release = getattr(self._bridge, "release", None)
        if release is not None:
            release()


async def open_engine(model: str | None = None, on_progress: Callable[[dict], Any] | None = None,
                      backend: str = "auto", *, site: str | None = None, threads: int | None = None,
                      kernel: str = "auto", js_module_: Any = None, bridge: Any = None,
                      files: dict | None = None) -> IntabEngine:
    """The tab's half of `intab.load()`."""
    from js import Object  # type: ignore[import-not-found]
    from pyodide.ffi import JsException, create_proxy, to_js  # type: ignore[import-not-found]

    progress_proxy = None
    if bridge is None:
        mod = await js_module(js_module_, site)
        options: dict = {"backend": backend, "kernel": kernel}
        if model is not None:
            options["model"] = model
        if threads is not None:
            options["threads"] = threads
        if on_progress is not None:
            progress_proxy = create_proxy(lambda ev: on_progress(_py(ev)))
            options["onProgress"] = progress_proxy
        try:
            bridge = await mod.openBridge(to_js(options, dict_converter=Object.fromEntries))
        except JsException as e:
            raise _js_error(e) from None
        finally:
            if progress_proxy is not None:
                progress_proxy.destroy()
        files = _py(bridge.files)
        info = _py(getattr(bridge, "info", None)) or {}
    else:
        if files is None:
            raise LoadError("bridge= needs files= (the model's tokenizer.json, tokenizer_config.json, config.json "
                            "and generation_config.json as {name: text}).")
        info = {}
    files = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in dict(files).items()}
    backend_obj = BridgeBackend(bridge, info.get("backend"))
    engine = Engine.from_files(files, backend_obj)
    model_id = (info.get("model") or {}).get("id") or model or ""
    return IntabEngine(engine, model_id, info, release=backend_obj.release)


def _js_error(e: Any) -> IntabError:
    """A JS IntabError (name, message, hint, param) as the Python error of the same name."""
    from . import errors

    js_err = getattr(e, "js_error", None)
    name = str(getattr(js_err, "name", "") or "BackendError")
    message = str(getattr(js_err, "message", "") or e)
    hint = getattr(js_err, "hint", None)
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, IntabError)):
        cls = LoadError if name == "LoadError" else BackendError
    err = cls(message, str(hint) if hint else None)
    param = getattr(js_err, "param", None)
    if param:
        err.param = str(param)
    return err


async def open_text_model(model: str | None = None, *, site: str | None = None) -> TextModel:
    """Tokenizer and template only: the model's JSON files fetched from the site, no runtime."""
    from pyodide.http import pyfetch  # type: ignore[import-not-found]

    base = site_url(site)
    if model is None:
        index = await (await pyfetch(base + "models/index.json")).json()
        ids = [m if isinstance(m, str) else m["id"] for m in (index.get("models", []) if isinstance(index, dict) else index)]
        if not ids:
            raise LoadError(f"{base}models/index.json lists no model.")
        model = ids[0]
    files = {}
    for name in TEXT_FILES:
        r = await pyfetch(f"{base}models/{model}/{name}")
        if not r.ok:
            raise LoadError(f"{base}models/{model}/{name}: HTTP {r.status}.")
        files[name] = await r.string()
    return TextModel.from_files(files, model)
