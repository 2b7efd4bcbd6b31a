"""A site for the fuzzer and the soak: static/ (linked) plus fuzz/ (tests/browser/fuzz/*.mjs and
fast-check from node_modules, its bare `pure-rand/...` imports rewritten to relative paths: the
page's CSP allows no inline import map) and a blank page. Used by tests/browser/test_fuzz.py,
test_soak.py and `build.py soak`."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FUZZ = Path(__file__).resolve().parent / "fuzz"


def fuzz_site(static_root: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for p in Path(static_root).iterdir():
        if not (out / p.name).exists():
            os.symlink(p.resolve(), out / p.name)
    site = out / "fuzz"
    if site.exists():
        shutil.rmtree(site)
    fcdir = site / "fast-check"
    src = REPO / "node_modules" / "fast-check" / "lib"
    if not (src / "fast-check.js").exists():
        raise FileNotFoundError(f"{src / 'fast-check.js'} is missing: run `npm ci`")
    fcdir.mkdir(parents=True)
    for js in src.glob("*.js"):
        text = js.read_text(encoding="utf-8")
        text = re.sub(r"""from\s*(['"])pure-rand/([\w/]+)\1""", lambda m: f'from "./pure-rand/{m.group(2)}.js"', text)
        (fcdir / js.name).write_text(text, encoding="utf-8")
    shutil.copytree(REPO / "node_modules" / "pure-rand" / "lib" / "esm", fcdir / "pure-rand")
    for m in FUZZ.glob("*.mjs"):
        shutil.copy(m, site / m.name)
    (out / "blank.html").write_text("<!doctype html><meta charset=utf-8><title>intab fuzz</title><body></body>\n")
    return out


def open_engine_page(page, url: str, **modules: str) -> None:
    """Open the site's blank page with intab's module as window.intab, each fuzz/<file>.mjs of
    `modules` as window.<name> (fuzzer="fuzz", soak="soak"), and an engine on WASM as
    window.engine."""
    page.goto(url + "blank.html")
    page.evaluate("""async (modules) => {
        window.intab = await import('/intab.mjs');
        for (const [name, file] of modules) window[name] = await import(`/fuzz/${file}.mjs`);
        window.engine = await window.intab.create({ backend: 'wasm' });
    }""", list(modules.items()))
