// Loading, in the worker: the model's files (model_store.mjs), the runtime that computes it
// (intab's kernel or an onnxruntime-web session, behind the bridge contract of docs/contracts.md
// §3), and — unless the page runs Python itself — the engine session (worker_python.mjs).
//
// Load order: Pyodide's boot, the Python bundle, the WebGPU probe then the kernel's wasm (fetch +
// compile) or the ORT bundle, and the model download all start at once. Under the kernel
// model.onnx (4.3 MB) is never fetched. Under backend 'auto', a WebGPU session that fails to
// start falls back to WASM, and `ready.fallback` says why.

import { createBridge } from './bridge.mjs';
import { fail } from './errors.mjs';
import { kernelContext, kernelMisfit as modelMisfit } from './capabilities.mjs';
import { createKernelBridge, sharedMemory } from './kernel_bridge.mjs';
import { downloadModel, fetchChecked, url } from './model_store.mjs';
import { lazyWeights } from './weights.mjs';
import { ortBundle, planBackend, wasmPlan } from './worker_plan.mjs';
import { createTimeline } from './timeline.mjs';
import { bootPython, createSession, ggufDescriber, lateBridge } from './worker_python.mjs';
import { ggufSource, openGguf } from './gguf_model.mjs';

// A GGUF opened in the tab (web/gguf_model.mjs) has no model.onnx: intab's kernel runs it, on WASM.
const GGUF_REASON = "a GGUF opened in the tab runs on intab's WASM kernel (WebGPU runs prebuilt models, which carry model.onnx)";

export const TEXT_FILES = ['tokenizer.json', 'tokenizer_config.json', 'config.json', 'generation_config.json'];

async function importOrt(backend, threads) {
  const ort = await import(`./vendor/ort/${ortBundle(backend)}`);
  ort.env.wasm.wasmPaths = url('vendor/ort/');
  ort.env.wasm.numThreads = backend === 'wasm' ? threads : 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  return ort;
}

/** The kernel's wasm (threads where the page is cross-origin isolated), compiled; null when this
 * browser cannot run it (no SIMD128 / relaxed-SIMD) or it is missing. */
async function compileKernel() {
  const file = sharedMemory() ? 'kernel/decoder.wasm' : 'kernel/decoder-st.wasm';
  let bytes;
  try {
    bytes = await (await fetchChecked(file, 'the intab kernel')).arrayBuffer();
  } catch (err) {
    return { module: null, reason: err.message };
  }
  if (!WebAssembly.validate(bytes)) return { module: null, reason: 'this browser lacks WebAssembly relaxed-SIMD' };
  return { module: await WebAssembly.compile(bytes), reason: '' };
}

/** Why the kernel cannot run this model here ('' when it can): the browser's side (the module
 * compiled, relaxed-SIMD), then the model's (web/capabilities.mjs, the one table of what the
 * kernel computes). config null: the manifest's facts only (the download's skip rule). */
function kernelMisfit(compiled, manifest, config) {
  if (!compiled || !compiled.module) return compiled?.reason || 'the kernel did not load';
  return modelMisfit(manifest, config);
}

/**
 * Load the engine. Returns {bridge, session (null with python: false), ready (the message's
 * fields)}. progress(p) gets the progress messages' fields.
 */
export async function loadEngine(options, progress, captureProfile) {
  const { model, python = true, memory = 'fast', profiling = false, ortOptions = {}, snapshot = true, keep = false } = options;
  const gguf = ggufSource(model);
  if (gguf && (options.kernel === 'ort' || profiling)) {
    throw fail('BackendError', `${options.kernel === 'ort' ? "kernel='ort'" : 'profiling'} cannot run a GGUF opened in the tab: ${GGUF_REASON}`, { hint: "Leave kernel at 'auto' (or 'intab').", param: 'kernel' });
  }
  if (profiling) captureProfile();
  const t0 = performance.now();
  const timings = {};
  const tl = createTimeline();
  tl.set('worker', 0, t0);   // the worker's modules evaluated, the load message received
  progress({ phase: 'boot', message: python ? 'Starting Python…' : 'Starting the model runtime…' });

  // A GGUF needs Python for its header even when the page runs the engine's Python itself.
  const boot = python || gguf ? bootPython(timings, t0, tl, { snapshot }) : null;
  let plan = await tl.span('plan', planBackend(gguf ? { ...options, backend: 'wasm', kernel: 'intab' } : options));
  if (gguf) plan = { ...plan, wanted: options.backend || 'auto', backendReason: GGUF_REASON };

  // The kernel where it may be used; onnxruntime-web where it may be used. Both start now.
  const kernelOn = (p) => p.backend === 'wasm' && p.kernelWanted !== 'ort' && !p.profiling;
  const kernelPromise = kernelOn(plan) ? tl.span('kernel.compile', compileKernel()) : Promise.resolve(null);
  kernelPromise.catch(() => {});
  const orts = {};
  const ortFor = (p) => (orts[p.backend] ??= importOrt(p.backend, p.threads));
  if (!kernelOn(plan)) ortFor(plan).catch(() => {});

  let modelId, dl, compiled;
  const tDl = performance.now();
  if (gguf) {
    dl = await tl.span('model.gguf', openGguf(gguf, { describe: ggufDescriber(boot, tl), progress, keep, tl }));
    modelId = dl.manifest.model_id;
    compiled = await kernelPromise;
  } else {
    const index = await tl.span('model.index', async () => (await fetchChecked('models/index.json', 'the model list')).json());
    const ids = Array.isArray(index) ? index : (index.models || []).map((m) => (typeof m === 'string' ? m : m.id));
    modelId = model || ids[0];
    if (!modelId) throw fail('LoadError', 'models/index.json lists no model');
    if (!ids.includes(modelId)) {
      throw fail('LoadError', `unknown model '${modelId}'`, { hint: `models/index.json lists ${ids.join(', ')}.`, param: 'model' });
    }
    // The manifest's fetch overlaps the kernel's compile (until 12-02 it waited for it: the warm
    // start's timeline had the manifest begin when the compile ended, ~580 ms after the index);
    // which files to skip, and so every file's fetch, still waits for the compile.
    const kernelFits = async (m) => kernelOn(plan) && !kernelMisfit(await kernelPromise, m, null);
    tl.start('model.manifest');
    dl = await downloadModel(modelId, progress, { skip: async (m) => ((await kernelFits(m)) ? ['model.onnx'] : []) });
    tl.end('model.manifest');
    compiled = await kernelPromise;
  }
  const manifest = dl.manifest;
  const packed = manifest.weights || null;
  for (const name of [...TEXT_FILES, ...(packed ? [packed.transport] : [])]) {
    if (!dl.files[name]) throw fail('LoadError', `the model manifest lists no ${name}`, { hint: 'Rebuild the model files (python3 build.py build).' });
  }
  const dec = new TextDecoder();
  const files = {};
  await tl.span('model.text', Promise.all(TEXT_FILES.map(async (name) => { files[name] = dec.decode(await dl.files[name]); })));
  const config = JSON.parse(files['config.json']);
  const generationConfig = JSON.parse(files['generation_config.json']);

  // The runtime: the kernel, or an onnxruntime-web session; under 'auto', WebGPU falls back to WASM.
  let kernel = 'ort', kernelReason = '', fallback = null;
  const runtime = async (p) => {
    const misfit = kernelOn(p) ? kernelMisfit(compiled, manifest, config) : null;
    if (p.kernelWanted === 'intab' && misfit) {
      throw fail('BackendError', `kernel='intab' cannot run here: ${misfit}`, { hint: "Use kernel: 'auto' or 'ort'.", param: 'kernel' });
    }
    if (kernelOn(p) && !misfit) {
      const src = await tl.span('model.weights', dl.files[packed.transport]);
      timings.downloadMs = Math.round(performance.now() - tDl);
      progress({ phase: 'init', message: 'Starting the model on WASM (intab kernel)…' });
      const tS = performance.now();
      const b = await tl.span('kernel.bridge', () => createKernelBridge({ wasm: compiled.module, weights: src, layout: packed, config, threads: p.threads, shared: sharedMemory(), maxContext: dl.maxContext || kernelContext(packed, config) }));
      timings.sessionMs = Math.round(performance.now() - tS);
      [kernel, kernelReason] = ['intab', gguf ? GGUF_REASON : p.kernelWanted === 'intab' ? 'requested' : 'packed weights and relaxed-SIMD'];
      return b;
    }
    kernel = 'ort';
    kernelReason = p.backend !== 'wasm' ? 'WebGPU runs onnxruntime-web'
      : p.kernelWanted === 'ort' ? 'requested' : p.profiling ? 'profiling needs onnxruntime' : misfit;
    if (!dl.files['model.onnx']) throw fail('LoadError', 'the model manifest lists no model.onnx', { hint: 'Rebuild the model files (python3 build.py build).' });
    const modelBytes = await dl.files['model.onnx'];
    const src = packed ? await dl.files[packed.transport] : null;
    timings.downloadMs = Math.round(performance.now() - tDl);
    const externalData = packed ? [{ path: packed.external, data: lazyWeights(packed, src) }] : null;
    progress({ phase: 'init', message: `Starting the model on ${p.backend === 'webgpu' ? 'WebGPU' : 'WASM'}…` });
    const ort = await ortFor(p);
    const tS = performance.now();
    // memory 'low' (WASM): no MLAS pre-packing of the weight matrices, which otherwise keeps a
    // second copy of them in the wasm heap. Measured here (A/B, same machine): peak renderer RSS
    // 1.29 -> 1.04-1.12 GB, decode ~10% slower (57 -> 65 ms a step), prefill slower too.
    const memoryOptions = p.backend === 'wasm' && memory === 'low' ? { extra: { session: { disable_prepacking: '1' } } } : {};
    const sessionOptions = { ...memoryOptions, ...ortOptions, ...(externalData ? { externalData } : {}), ...(profiling ? { enableProfiling: true } : {}) };
    const b = await tl.span('ort.session', () => createBridge({ ort, modelBytes, config, backend: p.backend, sessionOptions }));
    timings.sessionMs = Math.round(performance.now() - tS);
    return b;
  };
  const bridgePromise = (async () => {
    try {
      return await runtime(plan);
    } catch (err) {
      if (!(plan.backend === 'webgpu' && plan.wanted === 'auto')) throw err;
      const reason = (err && err.message) || String(err);
      fallback = { from: 'webgpu', reason };
      plan = wasmPlan(plan, reason);
      progress({ phase: 'init', message: 'WebGPU failed; starting the model on WASM…' });
      if (kernelOn(plan) && !(compiled && compiled.module)) compiled = await compileKernel();
      return runtime(plan);
    }
  })();
  bridgePromise.catch(() => {});

  let session = null, defaults = null, pyodide = null;
  if (python) {
    ({ session, defaults, pyodide } = await createSession(boot, lateBridge(plan.backend, plan.threads, bridgePromise), files, timings, tl));
  }
  let bridge;
  try {
    bridge = await bridgePromise;
  } catch (err) {
    session?.destroy?.();
    throw err;
  }
  const fromCache = await dl.done;
  tl.set('ready', performance.now(), performance.now());
  const ready = {
    backend: plan.backend, backendReason: plan.backendReason, fallback, kernel, kernelReason,
    memory: kernel === 'ort' ? memory : null, ortBundle: kernel === 'ort' ? ortBundle(plan.backend) : null,
    threads: bridge.threads, crossOriginIsolated: self.crossOriginIsolated === true,
    adapterInfo: plan.probe ? plan.probe.adapterInfo : null, shaderF16: plan.probe ? plan.probe.shaderF16 : false,
    model: {
      id: modelId, version: manifest.version, numCandidates: manifest.num_candidates, config,
      contextWindow: bridge.maxContext || config.max_position_embeddings, vocabSize: config.vocab_size,
      chatTemplate: defaults ? defaults.chat_template : !!JSON.parse(files['tokenizer_config.json']).chat_template,
      // A GGUF opened in the tab: {kind: 'blob' | 'url' | 'kept', name, kept (the name it is kept under, or null)}
      source: gguf ? { kind: gguf.kind, name: gguf.name, kept: gguf.kind === 'kept' ? gguf.name : dl.kept } : null,
    },
    generationConfig, defaults, loadMs: Math.round(performance.now() - t0), timings, timeline: tl.toJSON(), fromCache,
    ...(python ? {} : { files }),
  };
  return { bridge, session, pyodide, ready };
}
