"""`intab.load()` under CPython: find the model folder, then run it on onnxruntime.

A model is a folder as the site serves it (`static/models/<id>/`, docs/contracts.md §2): a local
path, or an id fetched from an intab site (`site=`, `$INTAB_SITE`, or the site the intab wheel
was installed from) into `~/.cache/intab/models/<id>/<version>/`, each file checked against the
manifest's size and sha256, as the tab's model store does.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.parse
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from intab.errors import BackendError, IntabError

TEXT_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "manifest.json")
BACKENDS = ("auto", "onnxruntime", "cpu")


class LoadError(IntabError):
    hint = "Check the model id or folder, and that the intab site (site=, $INTAB_SITE) is reachable."


def cache_dir() -> Path:
    return Path(os.environ.get("INTAB_CACHE") or Path.home() / ".cache" / "intab")


def installed_site() -> str | None:
    """The site the intab wheel was installed from (pip's direct_url.json, micropip's
    PYODIDE_URL): `<site>/py/intab-*.whl` -> `<site>/`."""
    try:
        dist = metadata.distribution("intab")
    except metadata.PackageNotFoundError:
        return None
    url = None
    raw = dist.read_text("direct_url.json")
    if raw:
        url = json.loads(raw).get("url")
    url = url or dist.read_text("PYODIDE_URL")
    if not url or not url.startswith(("http://", "https://")) or "/py/" not in url:
        return None
    return url[: url.rindex("/py/") + 1]


def find_site(site: str | None) -> str | None:
    site = site or os.environ.get("INTAB_SITE") or installed_site()
    return site if site is None or site.endswith("/") else site + "/"


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:   # noqa: S310 - the user's own intab site
            return r.read()
    except OSError as e:
        raise LoadError(f"could not fetch {url}: {e}") from None


def resolve_model(model: str | os.PathLike | None, site: str | None,
                  on_progress: Callable[[dict], Any] | None = None, only: tuple[str, ...] | None = None) -> Path:
    """The local folder of `model` (a path, or an id of the site; None: the site's default).
    `only`: fetch just these files (the tokenizer's and configs' for a TextModel)."""
    if model is not None and Path(model).is_dir():
        folder = Path(model)
        if not (folder / "manifest.json").exists():
            raise LoadError(f"{folder} has no manifest.json: it is not an intab model folder.")
        return folder
    base = find_site(site)
    if base is None:
        raise LoadError(f"no model folder {model!r} and no intab site to fetch it from.",
                        "Pass model='<folder>' (a static/models/<id> folder), or site='https://…/' "
                        "(or set $INTAB_SITE) with a model id.")
    index = json.loads(_get(base + "models/index.json"))
    ids = [m if isinstance(m, str) else m["id"] for m in (index.get("models", []) if isinstance(index, dict) else index)]
    model_id = str(model) if model is not None else (ids[0] if ids else None)
    if model_id not in ids:
        raise LoadError(f"unknown model {model_id!r}; {base}models/index.json lists {', '.join(ids) or 'none'}.")
    src = f"{base}models/{urllib.parse.quote(model_id)}/"
    manifest_bytes = _get(src + "manifest.json")
    manifest = json.loads(manifest_bytes)
    folder = cache_dir() / "models" / model_id / manifest["version"][:16]
    folder.mkdir(parents=True, exist_ok=True)
    files = [f for f in manifest["files"] if only is None or f["name"] in only]
    total = sum(int(f["size"]) for f in files)
    loaded = 0
    for f in files:
        path = folder / f["name"]
        if not (path.exists() and path.stat().st_size == int(f["size"]) and _sha256(path) == f["sha256"]):
            data = _get(src + urllib.parse.quote(f["name"]))
            if len(data) != int(f["size"]) or hashlib.sha256(data).hexdigest() != f["sha256"]:
                raise LoadError(f"{f['name']} from {src} does not match its manifest (size or sha256).")
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        loaded += int(f["size"])
        if on_progress is not None:
            on_progress({"phase": "download", "message": f["name"], "loaded": loaded, "total": total})
    (folder / "manifest.json").write_bytes(manifest_bytes)
    return folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_files(folder: Path) -> dict[str, str]:
    return {n: (folder / n).read_text(encoding="utf-8") for n in TEXT_FILES if (folder / n).exists()}


async def open_engine(model: Any = None, on_progress: Callable[[dict], Any] | None = None, backend: str = "auto",
                      *, site: str | None = None, threads: int | None = None, **unsupported: Any):
    """The CPython half of `intab.load()`: an IntabEngine on onnxruntime (CPU)."""
    from intab.api import IntabEngine
    from intab.engine import Engine

    from .ort_backend import OrtBackend

    if unsupported:
        name = next(iter(unsupported))
        raise IntabError(f"{name}= is for the tab (Pyodide) and has no meaning under CPython.", f"Remove {name}=.")
    if backend not in BACKENDS:
        raise BackendError(f"backend={backend!r} is not available under CPython.",
                           f"Use one of {', '.join(repr(b) for b in BACKENDS)} (onnxruntime on the CPU).")
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise BackendError(f"threads={threads!r} is invalid.", "Use an integer >= 1, or leave it out.")
    loop = asyncio.get_running_loop()
    folder = await loop.run_in_executor(None, resolve_model, model, site, on_progress)
    files = read_files(folder)
    config = json.loads(files["config.json"])
    if on_progress is not None:
        on_progress({"phase": "init", "message": "Starting the model on onnxruntime (CPU)…", "loaded": 0, "total": 0})
    # Expanding weights.bin and creating the session take seconds: off the event loop.
    ort = await loop.run_in_executor(None, lambda: OrtBackend(folder / "model.onnx", config, threads or 0))
    engine = Engine.from_files(files, ort)
    manifest = json.loads(files["manifest.json"])
    info = {"backend": "cpu", "backendReason": "CPython", "kernel": "onnxruntime", "threads": threads or os.cpu_count(),
            "model": {"id": manifest["model_id"], "version": manifest["version"], "folder": str(folder),
                      "contextWindow": engine.info.max_context, "vocabSize": engine.info.vocab_size}}
    return IntabEngine(engine, manifest["model_id"], info)


async def open_text_model(model: Any = None, *, site: str | None = None):
    from intab.api import TextModel

    folder = await asyncio.get_running_loop().run_in_executor(None, resolve_model, model, site, None, TEXT_FILES)
    files = read_files(folder)
    return TextModel.from_files(files, json.loads(files["manifest.json"])["model_id"])
