// The kernel bridge under Node, for tests/test_kernel.py and tools/profile_kernel.py: Node has no
// web Worker, so the extra threads are worker_threads parked in worker_loop, as
// web/kernel_thread.mjs parks them in the tab. Not part of the site (web/assemble.py copies only
// web/'s top level).
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { createKernelBridge } from '../kernel_bridge.mjs';

function spawn(index, module, memory) {
  return new Promise((resolve, reject) => {
    const w = new Worker(`const { parentPort, workerData: d } = require('node:worker_threads');
      WebAssembly.instantiate(d.module, { env: { memory: d.memory, now: () => performance.now() } }).then(({ exports }) => {
        parentPort.postMessage('parked'); exports.worker_loop(d.index); });`,
    { eval: true, workerData: { module, memory, index } });
    w.once('message', () => resolve(w));
    w.once('error', reject);
  });
}

/** A kernel bridge on the model folder `dir` (manifest.json, config.json, weights.bin), with the
 * builds in `wasmDir`: decoder.wasm for threads > 1, decoder-st.wasm for one. */
export async function nodeKernelBridge(dir, wasmDir, threads, maxContext = 2048) {
  const manifest = JSON.parse(readFileSync(`${dir}/manifest.json`));
  const config = JSON.parse(readFileSync(`${dir}/config.json`));
  const shared = threads > 1;
  return createKernelBridge({
    wasm: readFileSync(`${wasmDir}/${shared ? 'decoder.wasm' : 'decoder-st.wasm'}`),
    weights: readFileSync(`${dir}/weights.bin`), layout: manifest.weights, config,
    threads, shared, maxContext, spawn,
  });
}
