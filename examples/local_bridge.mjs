// openBridge() in the caller's own realm: intab's kernel on the model files of this site, for
// Python in a Pyodide of the page's (intab.tab.BridgeBackend speaks to it). Same shape as
// intab.mjs's openBridge ({info, files, forward, truncate, release}), which runs the model in a
// worker of its own; this stand-in runs it where it is imported: in a worker with shared memory
// it uses 2 threads, on a page's main thread 1 (decoder-st.wasm: the threaded kernel waits on
// atomics, which a main thread may not), so each step blocks that thread for its ~15-40 ms.
import { downloadModel, fetchChecked } from '../model_store.mjs';
import { createKernelBridge, sharedMemory } from '../kernel_bridge.mjs';

const TEXT_FILES = ['tokenizer.json', 'tokenizer_config.json', 'config.json', 'generation_config.json'];

export async function openBridge({ model, threads, onProgress } = {}) {
  const t0 = performance.now();
  const index = await (await fetchChecked('models/index.json', 'the model list')).json();
  const ids = (index.models || index).map((m) => (typeof m === 'string' ? m : m.id));
  const modelId = model || ids[0];
  if (!ids.includes(modelId)) throw Object.assign(new Error(`unknown model '${modelId}'; models/index.json lists ${ids.join(', ')}`), { name: 'LoadError' });
  const inWorker = typeof document === 'undefined';
  const shared = inWorker && sharedMemory();
  const wasmFile = shared ? 'kernel/decoder.wasm' : 'kernel/decoder-st.wasm';
  const wasmPromise = fetchChecked(wasmFile, 'the intab kernel').then((r) => r.arrayBuffer()).then((b) => WebAssembly.compile(b));
  const dl = await downloadModel(modelId, (p) => onProgress && onProgress(p), { skip: ['model.onnx'] });
  const dec = new TextDecoder();
  const files = {};
  await Promise.all(TEXT_FILES.map(async (n) => { files[n] = dec.decode(await dl.files[n]); }));
  const config = JSON.parse(files['config.json']);
  const layout = dl.manifest.weights;
  onProgress && onProgress({ phase: 'init', message: 'Starting the model on WASM (intab kernel)…', loaded: 0, total: 0, files: [] });
  const n = shared ? (threads || Math.min(2, navigator.hardwareConcurrency || 1)) : 1;
  const bridge = await createKernelBridge({ wasm: await wasmPromise, weights: await dl.files[layout.transport], layout, config, threads: n, shared });
  await dl.done;
  return {
    info: { backend: 'wasm', kernel: 'intab', threads: bridge.threads, crossOriginIsolated: globalThis.crossOriginIsolated === true,
            model: { id: modelId, version: dl.manifest.version, contextWindow: config.max_position_embeddings, vocabSize: config.vocab_size },
            loadMs: Math.round(performance.now() - t0) },
    files,
    backend: 'wasm',
    get kvLength() { return bridge.kvLength; },
    forward: (ids, start, k) => bridge.forward(ids, start, k),
    truncate: (n) => bridge.truncate(n),
    release: () => bridge.release(),
  };
}
