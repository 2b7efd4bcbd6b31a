# The Python of examples/pyscript.html (PyScript, main thread).
import time

import js
import pyodide_js
from pyscript import document
from pyscript.js_modules import intab_js

SITE = str(js.URL.new("../", js.location.href).href)
t_install = time.perf_counter()
# This site's Pyodide is the npm core, without micropip: load its wheel from the site first.
await pyodide_js.loadPackage(SITE + "py/micropip-0.11.1-py3-none-any.whl")  # noqa: F704
import micropip  # noqa: E402

await micropip.install("intab", index_urls=[SITE + "py/simple/{package_name}/"])  # noqa: F704
import intab  # noqa: E402

timings = {"install_ms": round((time.perf_counter() - t_install) * 1000)}
status = document.getElementById("status")
answer = document.getElementById("answer")


def on_progress(p):
    status.textContent = (f"{p['phase']}: {p['loaded'] / 1e6:.1f} of {p['total'] / 1e6:.1f} MB"
                          if p.get("total") else (p.get("message") or p["phase"]))


engine = await intab.load(on_progress=on_progress, js_module=intab_js)  # noqa: F704
timings["load_ms"] = round((time.perf_counter() - t_install) * 1000)


async def ask(event=None):
    button = document.getElementById("ask")
    button.disabled = True
    answer.textContent = ""
    t0 = time.perf_counter()
    first = None
    try:
        question = document.getElementById("question").value
        async for delta in engine.stream([{"role": "user", "content": question}], max_tokens=64, temperature=0):
            if first is None:
                first = time.perf_counter()
                timings.setdefault("install_to_first_token_ms", round((first - t_install) * 1000))
            js.document.body.dataset.timings = __import__("json").dumps(timings)
            answer.textContent += delta
        status.textContent = f"Done: first token after {1000 * (first - t0):.0f} ms"
    finally:
        button.disabled = False


status.textContent = f"Ready ({engine.info['backend']}, {engine.info.get('threads')} thread(s))"
document.getElementById("ask").disabled = False
document.body.dataset.state = "ready"
