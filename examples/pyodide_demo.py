# The Python of examples/pyodide.html. SITE (this site's URL) and BOOT_MS are set by the page.
import time

import js
import micropip

t_install = time.perf_counter()
await micropip.install("intab", index_urls=[SITE + "py/simple/{package_name}/"])  # noqa: F704 - Pyodide top-level await
import intab  # noqa: E402

timings = {"boot_ms": round(BOOT_MS), "install_ms": round((time.perf_counter() - t_install) * 1000)}

status = js.document.getElementById("status")
answer = js.document.getElementById("answer")


def on_progress(p):
    if p.get("total"):
        status.textContent = f"{p['phase']}: {p['loaded'] / 1e6:.1f} of {p['total'] / 1e6:.1f} MB"
    else:
        status.textContent = p.get("message") or p["phase"]


engine = await intab.load(on_progress=on_progress)  # noqa: F704
timings["load_ms"] = round((time.perf_counter() - t_install) * 1000)   # from micropip.install on


async def ask(question):
    answer.textContent = ""
    t0 = time.perf_counter()
    first = None
    async for delta in engine.stream([{"role": "user", "content": question}], max_tokens=64, temperature=0):
        if first is None:
            first = time.perf_counter()
            timings.setdefault("install_to_first_token_ms", round((first - t_install) * 1000))
            js.document.body.dataset.timings = __import__("json").dumps(timings)
        answer.textContent += delta
    status.textContent = f"Done: {engine.info['backend']}, first token after {1000 * (first - t0):.0f} ms"


status.textContent = f"Ready ({engine.info['backend']}, {engine.info.get('threads')} thread(s))"
