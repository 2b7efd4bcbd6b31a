"""Where a step of intab's WASM kernel goes: phase timers (qkv, attention, o, gate_up, silu, down,
head) from a build with -DKERNEL_PROFILE, run by Node on the real model.

    .venv/bin/python tools/profile_kernel.py [--threads 1,2] [--steps 64] [--contexts 0,512,1024,2048]

Prints, per thread count, ms per decode step by phase (after a 207-token prefill, 64 greedy
steps) and ms per prefill of 207 and 1,024 tokens by phase. With --contexts: ms per decode step
by phase after a prefill of each of those lengths (the long golden prompt, repeated past its end),
which shows how attention's share grows with the context. Node's V8 is not Chromium's: read the
shares, and take absolute figures from `python3 build.py bench`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCRIPT = r"""
import { readFileSync } from 'node:fs';
import { nodeKernelBridge } from %(node_bridge)s;
const [dir, wasmDir, threadsArg, stepsArg, golden, contextsArg] = process.argv.slice(2);
const steps = Number(stepsArg);
const contexts = contextsArg ? contextsArg.split(',').map(Number) : [];
const b = await nodeKernelBridge(dir, wasmDir, Number(threadsArg), Math.max(2048, ...contexts) + steps + 32);
const long = JSON.parse(readFileSync(golden)).cases.find((c) => c.prompt_ids.length >= 1024).prompt_ids;
const out = { threads: b.threads };
const timed = async (f) => { b.takeProfile(); const t = performance.now(); await f(); const ms = performance.now() - t; return { ms, phases: b.takeProfile() }; };
if (contexts.length) {
  const ids = Array.from({ length: Math.max(...contexts) + 1 }, (_, i) => long[i %% long.length]);
  for (const c of contexts) {
    await b.truncate(0);
    let r = await b.forward(ids.slice(0, c + 1), 0, 1);
    for (let i = 0; i < 8; i++) r = await b.forward([r.ids[0]], b.kvLength, 1);   // warm-up
    const d = await timed(async () => { for (let i = 0; i < steps; i++) r = await b.forward([r.ids[0]], b.kvLength, 1); });
    d.ms /= steps;
    for (const k in d.phases) d.phases[k] /= steps;
    out[`decode_at_${c}`] = d;
  }
  b.release();
  console.log(JSON.stringify(out));
  process.exit(0);
}
for (const n of [207, 1024]) {
  await b.truncate(0); await b.forward(long.slice(0, n), 0, 64);      // warm-up (tier-up)
  await b.truncate(0);
  out[`prefill_${n}`] = await timed(() => b.forward(long.slice(0, n), 0, 64));
}
await b.truncate(0);
let r = await b.forward(long.slice(0, 207), 0, 64);
for (let i = 0; i < 16; i++) r = await b.forward([r.ids[0]], b.kvLength, 64);
out.decode = await timed(async () => { for (let i = 0; i < steps; i++) r = await b.forward([r.ids[0]], b.kvLength, 64); });
out.decode.ms /= steps;
for (const k in out.decode.phases) out.decode.phases[k] /= steps;
b.release();
console.log(JSON.stringify(out));
process.exit(0);
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--contexts", default="", help="e.g. 0,512,1024,2048: decode steps after prefills of these lengths")
    a = ap.parse_args()
    from models.prepare import prepare
    from models.recipes import DEFAULT
    from web.kernel.compile import compile_kernel, node_flags
    model_dir = prepare(DEFAULT, ROOT / ".cache")
    wasm_dir = ROOT / ".cache" / "kernel-profile"
    compile_kernel(wasm_dir, defines=("KERNEL_PROFILE",))
    golden = ROOT / "tests" / "golden" / "smollm2-135m-instruct.greedy.json"
    flags = node_flags()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "profile.mjs"
        script.write_text(SCRIPT % {"node_bridge": json.dumps((ROOT / "web" / "kernel" / "node_bridge.mjs").as_uri())})
        for t in a.threads.split(","):
            r = subprocess.run(["node", *flags, str(script), str(model_dir), str(wasm_dir), t, str(a.steps), str(golden), a.contexts],
                               capture_output=True, text=True, check=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"\n{res['threads']} thread(s)")
            keys = [k for k in res if k.startswith("decode_at_")] or ["decode", "prefill_207", "prefill_1024"]
            for key in keys:
                x = res[key]
                ph = x["phases"]
                dec = key.startswith("decode")
                shown = "  ".join(f"{k} {v:.2f}" if dec else f"{k} {v:.0f}" for k, v in ph.items())
                unit = f"ms/step ({1000 / x['ms']:.1f} tok/s)" if dec else "ms"
                print(f"  {key:13s} {x['ms']:8.2f} {unit}   {shown}")


if __name__ == "__main__":
    main()
