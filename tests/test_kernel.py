"""intab's WASM kernel (web/kernel/decoder.c through web/kernel_bridge.mjs), run by Node on the
real model: its greedy tokens are the reference's (tests/golden, made by transformers through
models/reference/make_golden.py), its candidates agree with onnxruntime on the same weights,
threads change nothing, and bad calls fail clearly and leave it usable."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))
sys.path.insert(0, str(REPO))

from web.kernel.compile import compile_kernel, node_flags  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

# A Node module with a loaded kernel bridge `b` in scope (argv: model dir, wasm dir, threads).
PRELUDE = """
import { readFileSync } from 'node:fs';
import { nodeKernelBridge } from %(node_bridge)s;
const [dir, wasmDir, threadsArg] = process.argv.slice(2);
const b = await nodeKernelBridge(dir, wasmDir, Number(threadsArg));
const out = {};
""" % {"node_bridge": json.dumps((REPO / "web" / "kernel" / "node_bridge.mjs").as_uri())}
EPILOGUE = "\nb.release();\nconsole.log(JSON.stringify(out));\nprocess.exit(0);\n"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kernel")
    compile_kernel(out)
    return out


def run_kernel(tmp_path: Path, model_dir: Path, kernel_dir: Path, body: str, threads: int = 1) -> dict:
    script = tmp_path / "kernel_check.mjs"
    script.write_text(PRELUDE + body + EPILOGUE)
    r = subprocess.run(["node", *node_flags(), str(script), str(model_dir), str(kernel_dir), str(threads)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


GREEDY = """
const cases = JSON.parse(readFileSync(%(golden)s)).cases;
for (const c of cases) {
  await b.truncate(0);
  let r = await b.forward(c.prompt_ids, 0, 1);
  const ids = [];
  while (ids.length < c.output_ids.length) {
    ids.push(r.ids[0]);
    if (r.ids[0] === %(eos)d) break;
    r = await b.forward([r.ids[0]], b.kvLength, 1);
  }
  out[c.name] = ids;
}
"""


def test_greedy_tokens_are_the_reference_on_every_golden_case(built_model_dir, kernel_dir, golden, tmp_path):
    body = GREEDY % {"golden": json.dumps(str(REPO / "tests" / "golden" / "smollm2-135m-instruct.greedy.json")),
                     "eos": golden["eos_token_id"]}
    got = run_kernel(tmp_path, built_model_dir, kernel_dir, body)
    wrong = {c["name"]: (got[c["name"]], c["output_ids"]) for c in golden["cases"] if got[c["name"]] != c["output_ids"]}
    assert not wrong, wrong


def test_two_threads_compute_exactly_what_one_does(built_model_dir, kernel_dir, tmp_path):
    """Threads split the rows of each product; every row is summed the same way, so the bits match."""
    body = """
const prompt = Array.from({ length: 150 }, (_, i) => 17 + (i * 389) % 49000);  // 3 chunks, a tile remainder
let r = await b.forward(prompt, 0, 64);
out.steps = [];
for (let i = 0; i < 8; i++) {
  out.steps.push({ logits: Array.from(r.logits), ids: Array.from(r.ids), lse: r.logsumexp });
  r = await b.forward([r.ids[0]], b.kvLength, 64);
}
out.threads = b.threads;
"""
    one = run_kernel(tmp_path, built_model_dir, kernel_dir, body, threads=1)
    two = run_kernel(tmp_path, built_model_dir, kernel_dir, body, threads=2)
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["steps"] == two["steps"]


def test_candidates_agree_with_onnxruntime(built_model_dir, kernel_dir, tmp_path):
    """Same weights, same network: the kernel's K candidates and log-sum-exp against the ONNX graph
    on onnxruntime (CPU), after a long prefill and over decode steps. Only summation order differs."""
    from intab_host.ort_backend import OrtBackend
    prompt = [1] + [17 + (i * 389) % 49000 for i in range(149)]
    body = """
const prompt = %s;
let r = await b.forward(prompt, 0, 16);
out.steps = [];
for (let i = 0; i < 6; i++) {
  out.steps.push({ logits: Array.from(r.logits), ids: Array.from(r.ids), lse: r.logsumexp });
  r = await b.forward([r.ids[0]], b.kvLength, 16);
}
""" % json.dumps(prompt)
    got = run_kernel(tmp_path, built_model_dir, kernel_dir, body)["steps"]

    config = json.loads((built_model_dir / "config.json").read_text())
    ref = OrtBackend(built_model_dir / "model.onnx", config)

    async def reference():
        steps, c = [], await ref.forward(prompt, 0, 16)
        for _ in range(6):
            steps.append(c)
            c = await ref.forward([int(c.ids[0])], ref.kv_length, 16)
        return steps

    for k, r in zip(got, asyncio.run(reference())):
        assert k["ids"][0] == int(r.ids[0])
        assert np.allclose(k["logits"], np.asarray(r.logits, dtype=np.float32), atol=2e-3), (k["logits"], list(r.logits))
        assert abs(k["lse"] - float(r.logsumexp)) < 2e-3
        # The same candidates, up to swaps between logits closer than the tolerance.
        gap = np.diff(np.asarray(r.logits, dtype=np.float32))
        firm = [i for i in range(len(gap)) if -gap[i] > 4e-3 and (i == 0 or -gap[i - 1] > 4e-3)]
        assert [k["ids"][i] for i in firm] == [int(r.ids[i]) for i in firm]


def test_bad_calls_fail_clearly_and_the_kernel_stays_usable(built_model_dir, kernel_dir, tmp_path):
    body = """
const errors = [];
const tryIt = async (f) => { try { await f(); errors.push(null); } catch (e) { errors.push(e.message); } };
const first = await b.forward([1, 2, 3], 0, 4);
await tryIt(() => b.forward([5], 7, 4));                 // not where the cache ends
await tryIt(() => b.forward([49152], b.kvLength, 4));    // outside the vocabulary
await tryIt(() => b.forward([], b.kvLength, 4));
await tryIt(() => b.forward(new Array(2100).fill(5), b.kvLength, 4));  // past the context
await tryIt(() => b.truncate(99));
out.errors = errors;
out.kv = b.kvLength;
await b.truncate(0);
const again = await b.forward([1, 2, 3], 0, 4);
out.same = Array.from(again.ids).join() === Array.from(first.ids).join() && again.logsumexp === first.logsumexp;
"""
    got = run_kernel(tmp_path, built_model_dir, kernel_dir, body)
    e = got["errors"]
    assert "startPos 7 !== kvLength 3" in e[0]
    assert "token id 49152 is outside 0..49151" in e[1]
    assert "at least one token" in e[2]
    assert "exceed the context of 2048" in e[3]
    assert "truncate(99): must be in 0..3" in e[4]
    assert got["kv"] == 3 and got["same"] is True


def test_an_old_manifest_without_roles_is_refused_by_name(built_model_dir, kernel_dir, tmp_path):
    """A layout the kernel cannot map (no roles: built before the kernel) names what is missing."""
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((built_model_dir / "manifest.json").read_text())
    for t in manifest["weights"]["tensors"]:
        t.pop("role")
    (old / "manifest.json").write_text(json.dumps(manifest))
    for f in ("config.json", "weights.bin"):
        (old / f).symlink_to(built_model_dir / f)
    script = tmp_path / "old.mjs"
    script.write_text(PRELUDE + EPILOGUE)
    r = subprocess.run(["node", *node_flags(), str(script), str(old), str(kernel_dir), "1"], capture_output=True, text=True)
    assert r.returncode != 0
    assert "LoadError" in r.stderr and "the kernel does not know tensor embed" in r.stderr


def test_a_snapshot_restores_a_conversation_exactly(built_model_dir, kernel_dir, tmp_path):
    """snapshot() copies the cache out, restore() puts it back: after switching to another prompt
    and back, the next step is bit-identical to never having left."""
    body = """
const a = Array.from({ length: 40 }, (_, i) => 100 + i * 7), other = Array.from({ length: 70 }, (_, i) => 3000 + i);
let r = await b.forward(a, 0, 8);
const snap = await b.snapshot();
const straight = await b.forward([r.ids[0]], b.kvLength, 8);
await b.truncate(0);
await b.forward(other, 0, 8);
await b.restore(snap);
out.length = b.kvLength;
const again = await b.forward([r.ids[0]], b.kvLength, 8);
out.same = Array.from(straight.logits).join() === Array.from(again.logits).join() && straight.logsumexp === again.logsumexp;
out.bytes = snap.bytes;
try { await b.restore({ length: 3, data: new Uint8Array(5) }); out.bad = 'accepted'; } catch (e) { out.bad = e.message; }
out.after = (await b.forward([5], b.kvLength, 1)).ids.length;
"""
    got = run_kernel(tmp_path, built_model_dir, kernel_dir, body)
    assert got["length"] == 40 and got["same"], got
    cfg = json.loads((built_model_dir / "config.json").read_text())
    assert got["bytes"] == 40 * cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * cfg["head_dim"] * 4
    assert "not a snapshot" in got["bad"] and got["after"] == 1
