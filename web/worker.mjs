// intab worker: Pyodide (tokenizer, template, sampler, generation loop) and onnxruntime-web
// (the model) in one module worker, so the page never blocks.
//
// Messages, page -> worker
//   {type:'load', backend?: 'auto'|'wasm'|'webgpu', kernel?: 'auto'|'intab'|'ort', model?: id, threads?: n,
//          memory?: 'fast'|'low', profiling?: bool, ortOptions?: {}}
//                                           kernel (WASM): 'intab' = web/kernel (computes on the shipped Q4_1/Q8_0
//                                           blocks), 'ort' = onnxruntime-web; 'auto' picks intab where the model
//                                           and the browser allow it. threads: WASM only, default wasmThreads();
//                                           memory 'low' (onnxruntime): less RAM, slower; ortOptions: extra ORT session options
//   {type:'chat', id, messages:[{role, content}], options:{...}}
//   {type:'stop', id}                       -> session.abort(); the turn ends with finish_reason 'abort'
//   {type:'reset'}                          -> aborts a running turn, then session.reset() (forget the KV cache)
//   {type:'end-profiling'}                  -> after a load with profiling: true (tools/profile_step.py):
//                                              onnxruntime's per-node profile as {type:'profiling', events}
// Messages, worker -> page
//   {type:'progress', phase:'boot'|'download'|'init', message, loaded, total, files:[{name, loaded, total, cached}]}
//   {type:'ready', backend, backendReason, kernel, kernelReason, ortBundle, threads, crossOriginIsolated, adapterInfo, shaderF16, model, generationConfig,
//                  defaults:{temperature, top_p, top_k, max_tokens, ...}, loadMs, timings, fromCache:[file names]}
//   {type:'delta', id, text}
//   {type:'done', id, result}               result: contracts.md §4 (text, token_ids, finish_reason, ttft_ms, ...)
//   {type:'error', id?, name, message, fatal}   fatal: the engine could not load (no later chat will work)
//   {type:'reset-done'}

import { createBridge, wasmThreads } from './bridge.mjs';
import { downloadModel, fetchChecked, url } from './model_store.mjs';
import { lazyWeights } from './weights.mjs';
import { createKernelBridge, sharedMemory } from './kernel_bridge.mjs';

const TEXT_FILES = ['tokenizer.json', 'tokenizer_config.json', 'config.json', 'generation_config.json'];

let loading = null;   // promise of the engine, once 'load' was received
let engine = null;    // { pyodide, session, bridge }
let current = null;   // id of the chat being generated
const cancelled = new Set(); // ids stopped while still queued
const post = (msg, transfer) => self.postMessage(msg, transfer || []);

// ---------------------------------------------------------------- errors
function describeError(err) {
  if (err && err.constructor && err.constructor.name === 'PythonError') {
    // A Python exception that crossed as a PythonError: its message is the traceback.
    const type = err.type || 'PythonError';
    const lines = String(err.message || '').trim().split('\n');
    let last = lines[lines.length - 1] || type;
    // "intab.errors.InvalidParameter: message" -> "message"
    const m = /^([\w.]+):\s*(.*)$/.exec(last);
    if (m && m[1].split('.').pop() === type) last = m[2];
    return { name: type, message: last };
  }
  return { name: (err && err.name) || 'Error', message: (err && err.message) || String(err) };
}

/** A bridge that Python can hold before the ORT session exists (Python's set-up then overlaps
 * the model download and the session creation); calls wait for the real one. */
function lateBridge(backend, threads, bridgePromise) {
  let real = null;
  bridgePromise.then((b) => { real = b; }, () => {});
  const get = async () => real || bridgePromise;
  return {
    backend,
    threads,
    get kvLength() { return real ? real.kvLength : 0; },
    async forward(ids, startPos, k) { return (await get()).forward(ids, startPos, k); },
    async truncate(n) { return (await get()).truncate(n); },
    get stats() { return real ? real.stats : null; },
    release() { bridgePromise.then((b) => b.release(), () => {}); },
  };
}

// ---------------------------------------------------------------- backend choice
async function probeWebGPU() {
  if (!self.navigator || !navigator.gpu) return null;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info || {};
    return {
      adapter,
      adapterInfo: {
        vendor: info.vendor || '', architecture: info.architecture || '', device: info.device || '',
        description: info.description || '', isFallbackAdapter: !!(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
      },
      shaderF16: adapter.features.has('shader-f16'),
    };
  } catch {
    return null;
  }
}

/** The onnxruntime-web bundle for a backend. Each backend imports only its own bundle (and
 * that bundle's wasm), so the WASM path never downloads the WebGPU build. WebGPU: the native
 * WebGPU EP, in its JSPI build where WebAssembly JSPI exists (17 MB wasm, faster), else asyncify (27 MB). */
export function ortBundle(backend) {
  if (backend !== 'webgpu') return 'ort.wasm.min.mjs';
  return typeof WebAssembly.Suspending === 'function' ? 'ort.jspi.min.mjs' : 'ort.webgpu.min.mjs';
}

async function importOrt(backend, threads) {
  const bundle = ortBundle(backend);
  const ort = await import(`./vendor/ort/${bundle}`);
  ort.env.wasm.wasmPaths = url('vendor/ort/');
  ort.env.wasm.numThreads = backend === 'wasm' ? threads : 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  return ort;
}

// ---------------------------------------------------------------- load
/** onnxruntime-web prints its profile (chrome-trace JSON events) through console.log: collect them. */
const profileEvents = [];
function captureProfile() {
  const log = console.log.bind(console);
  console.log = (...args) => {
    const line = String(args[0] ?? '');
    if (/"cat"\s*:\s*"(Node|Session)"/.test(line)) {
      try { profileEvents.push(JSON.parse(line.trim().replace(/,$/, ''))); return; } catch { /* not an event */ }
    }
    log(...args);
  };
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

async function load({ backend: wanted = 'auto', kernel: wantedKernel = 'auto', model, threads: wantedThreads, memory = 'fast', profiling = false, ortOptions = {} } = {}) {
  if (profiling) captureProfile();
  const t0 = performance.now();
  const timings = {};
  const progress = (p) => post({ type: 'progress', message: '', loaded: 0, total: 0, files: [], ...p });
  progress({ phase: 'boot', message: 'Starting Python…' });

  // 1. Pyodide boot, in parallel with everything below.
  const pyodidePromise = (async () => {
    const { loadPyodide } = await import('./vendor/pyodide/pyodide.mjs');
    const py = await loadPyodide({ indexURL: url('vendor/pyodide/'), packages: [] });
    timings.pyodideMs = Math.round(performance.now() - t0);
    return py;
  })();
  pyodidePromise.catch(() => {});

  // 2. The Python bundle (intab + jinja2 + markupsafe).
  const bundlePromise = fetchChecked('py/intab-bundle.zip', 'the Python bundle').then((r) => r.arrayBuffer());
  bundlePromise.catch(() => {});

  // 3. Backend choice, then its ORT bundle (wasm compile overlaps the download).
  if (!['auto', 'wasm', 'webgpu'].includes(wanted)) {
    throw Object.assign(new Error(`unknown backend '${wanted}': use ?backend=wasm or ?backend=webgpu`), { name: 'BackendError' });
  }
  const probe = wanted === 'wasm' ? null : await probeWebGPU();
  let backend, backendReason;
  if (wanted === 'webgpu') {
    if (!probe) {
      throw Object.assign(new Error('WebGPU was requested but this browser gives no WebGPU adapter; use ?backend=wasm'), { name: 'BackendError' });
    }
    [backend, backendReason] = ['webgpu', 'requested'];
  } else if (wanted === 'wasm') {
    [backend, backendReason] = ['wasm', 'requested'];
  } else if (!probe) {
    [backend, backendReason] = ['wasm', 'no WebGPU adapter'];
  } else if (probe.adapterInfo.isFallbackAdapter) {
    // A software adapter (SwiftShader): far slower than WASM here (seconds per token).
    [backend, backendReason] = ['wasm', 'the WebGPU adapter is a software fallback'];
  } else {
    [backend, backendReason] = ['webgpu', 'WebGPU adapter found'];
  }
  if (wantedThreads !== undefined && wantedThreads !== null
      && !(Number.isInteger(wantedThreads) && wantedThreads >= 1 && wantedThreads <= 16)) {
    throw Object.assign(new Error(`threads=${wantedThreads} is invalid: use an integer from 1 to 16`), { name: 'BackendError' });
  }
  const threads = backend === 'wasm' ? (wantedThreads || wasmThreads()) : 1;
  if (!['fast', 'low'].includes(memory)) {
    throw Object.assign(new Error(`memory='${memory}' is invalid: use 'fast' or 'low'`), { name: 'BackendError' });
  }
  // memory 'low' (WASM): no MLAS pre-packing of the weight matrices, which otherwise keeps a second
  // copy of them in the wasm heap. Measured here (A/B, same machine): peak renderer RSS 1.29 ->
  // 1.04-1.12 GB, decode ~10% slower (57 -> 65 ms a step), prefill slower too.
  const memoryOptions = backend === 'wasm' && memory === 'low' ? { extra: { session: { disable_prepacking: '1' } } } : {};
  if (!['auto', 'intab', 'ort'].includes(wantedKernel)) {
    throw Object.assign(new Error(`kernel='${wantedKernel}' is invalid: use 'auto', 'intab' or 'ort'`), { name: 'BackendError' });
  }
  if (wantedKernel === 'intab' && backend !== 'wasm') {
    throw Object.assign(new Error(`kernel='intab' runs on WASM only; the backend is ${backend} (use ?backend=wasm)`), { name: 'BackendError' });
  }
  // The intab kernel (web/kernel) where it can run; onnxruntime-web otherwise. Both are
  // fetched only if they may be used.
  const kernelPromise = backend === 'wasm' && wantedKernel !== 'ort' && !profiling ? compileKernel() : Promise.resolve(null);
  kernelPromise.catch(() => {});
  let ortPromise = null;
  const ortFor = () => {
    ortPromise ??= importOrt(backend, threads);
    return ortPromise;
  };
  if (backend !== 'wasm' || wantedKernel === 'ort' || profiling) ortFor().catch(() => {});

  // 4. Model files.
  const index = await (await fetchChecked('models/index.json', 'the model list')).json();
  const ids = Array.isArray(index) ? index : (index.models || []).map((m) => (typeof m === 'string' ? m : m.id));
  const modelId = model || ids[0];
  if (!modelId) throw Object.assign(new Error('models/index.json lists no model'), { name: 'LoadError' });
  if (!ids.includes(modelId)) throw Object.assign(new Error(`unknown model '${modelId}'; models/index.json lists ${ids.join(', ')}`), { name: 'LoadError' });
  // Under intab's kernel model.onnx is never read: not downloaded either (4.3 MB). The kernel's
  // own fetch and compile (24 KB) are done by the time the index has arrived.
  const compiled = await kernelPromise;
  // Why the kernel cannot run this model ('' when it can): it knows Q4_1 / Q8_0 blocks and F32
  // vectors, each tensor named by its role (manifests from before the kernel have none).
  const kernelMisfit = (m) => {
    if (!compiled || !compiled.module) return compiled?.reason || '';
    if (!m.weights || !m.weights.tensors.every((t) => t.role)) return 'the model has no packed weights layout with roles';
    const odd = m.weights.tensors.find((t) => !['Q4_1', 'Q8_0', 'F32'].includes(t.kind));
    return odd ? `the kernel cannot compute ${odd.kind} blocks (${odd.name})` : '';
  };
  const kernelFits = (m) => !!(compiled && compiled.module) && !kernelMisfit(m);
  const tDl = performance.now();
  const dl = await downloadModel(modelId, progress, { skip: (m) => (kernelFits(m) ? ['model.onnx'] : []) });
  const manifest = dl.manifest;
  const packed = manifest.weights || null;  // transport blocks (models/packed.py)
  const kernelOk = kernelFits(manifest);
  for (const name of [...(kernelOk ? [] : ['model.onnx']), ...TEXT_FILES, ...(packed ? [packed.transport] : [])]) {
    if (!dl.files[name]) throw Object.assign(new Error(`the model manifest lists no ${name}`), { name: 'LoadError' });
  }
  const dec = new TextDecoder();
  const files = {};
  await Promise.all(TEXT_FILES.map(async (name) => { files[name] = dec.decode(await dl.files[name]); }));
  const config = JSON.parse(files['config.json']);
  const generationConfig = JSON.parse(files['generation_config.json']);

  // 5. The model session, once model.onnx (and the weights) are in and checked.
  let kernel = 'ort', kernelReason = backend === 'wasm' ? (wantedKernel === 'ort' ? 'requested' : profiling ? 'profiling needs onnxruntime' : '') : 'WebGPU runs onnxruntime-web';
  const bridgePromise = (async () => {
    if (wantedKernel === 'intab' && !kernelOk) {
      throw Object.assign(new Error(`kernel='intab' cannot run here: ${kernelMisfit(manifest) || 'unknown reason'}`), { name: 'BackendError' });
    }
    if (kernelOk) {
      const src = await dl.files[packed.transport];
      timings.downloadMs = Math.round(performance.now() - tDl);
      progress({ phase: 'init', message: 'Starting the model on WASM (intab kernel)…' });
      const tS = performance.now();
      const b = await createKernelBridge({ wasm: compiled.module, weights: src, layout: packed, config, threads, shared: sharedMemory() });
      timings.sessionMs = Math.round(performance.now() - tS);
      [kernel, kernelReason] = ['intab', wantedKernel === 'intab' ? 'requested' : 'packed weights and relaxed-SIMD'];
      return b;
    }
    if (backend === 'wasm' && !kernelReason) kernelReason = kernelMisfit(manifest);
    const modelBytes = await dl.files['model.onnx'];
    const src = packed ? await dl.files[packed.transport] : null;
    timings.downloadMs = Math.round(performance.now() - tDl);
    // Expanded tensor by tensor while onnxruntime creates the session (web/weights.mjs).
    const externalData = packed ? [{ path: packed.external, data: lazyWeights(packed, src) }] : null;
    progress({ phase: 'init', message: `Starting the model on ${backend === 'webgpu' ? 'WebGPU' : 'WASM'}…` });
    const ort = await ortFor();
    const tS = performance.now();
    // ortOptions: extra onnxruntime session options, for experiments (tools/profile_step.py, bench).
    const sessionOptions = { ...memoryOptions, ...ortOptions, ...(externalData ? { externalData } : {}), ...(profiling ? { enableProfiling: true } : {}) };
    const b = await createBridge({ ort, modelBytes, config, backend, sessionOptions });
    timings.sessionMs = Math.round(performance.now() - tS);
    return b;
  })();
  bridgePromise.catch(() => {});

  // 6. Meanwhile Python: unpack the bundle into site-packages, create the engine session
  //    (tokenizer, template) over a bridge that waits for the real one.
  const pyodide = await pyodidePromise;
  const bundle = await bundlePromise;
  const sitePackages = pyodide.runPython(
    "import sys\nnext(p for p in sys.path if p.endswith('site-packages'))");
  pyodide.unpackArchive(bundle, 'zip', { extractDir: sitePackages });
  const tP = performance.now();
  const glue = pyodide.pyimport('intab.pyodide_glue');
  const session = glue.create_session(lateBridge(backend, threads, bridgePromise), files);
  glue.destroy();
  // Sampling defaults as the engine resolves them (generation_config.json + engine defaults).
  let defaults = {};
  if (typeof session.defaults === 'function') defaults = toPlain(session.defaults());
  timings.pythonMs = Math.round(performance.now() - tP);

  let bridge;
  try {
    bridge = await bridgePromise;
  } catch (err) {
    session.destroy?.();
    throw err;
  }
  const fromCache = await dl.done;
  engine = { pyodide, session, bridge };
  const loadMs = Math.round(performance.now() - t0);
  post({
    type: 'ready', backend, backendReason, kernel, kernelReason, memory: kernel === 'ort' ? memory : null,
    ortBundle: kernel === 'ort' ? ortBundle(backend) : null, threads: bridge.threads, crossOriginIsolated: self.crossOriginIsolated === true,
    adapterInfo: probe ? probe.adapterInfo : null, shaderF16: probe ? probe.shaderF16 : false,
    model: { id: modelId, version: manifest.version, numCandidates: manifest.num_candidates, config },
    generationConfig, defaults, loadMs, timings, fromCache,
  });
  return engine;
}

// ---------------------------------------------------------------- chat
function toPlain(v) {
  if (v && typeof v.toJs === 'function') {
    const js = v.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
    v.destroy();
    return js;
  }
  return v;
}

async function chat({ id, messages, options }) {
  if (!engine) {
    try { await loading; } catch { /* reported by load */ }
    if (!engine) throw Object.assign(new Error('the model is not loaded'), { name: 'NotReady' });
  }
  if (cancelled.delete(id)) {
    // Stopped before it started (it was queued behind a reset): nothing was generated.
    post({ type: 'done', id, result: { text: '', token_ids: [], new_tokens: 0, finish_reason: 'abort' } });
    return;
  }
  current = id;
  const onDelta = (text) => { post({ type: 'delta', id, text: String(text) }); };
  let pending = null;
  const before = engine.bridge.stats;
  try {
    pending = engine.session.generate(messages, options || {}, onDelta);
    const result = toPlain(await pending);
    if (result && result.token_ids && !Array.isArray(result.token_ids)) result.token_ids = Array.from(result.token_ids);
    result.profile = stepProfile(before, engine.bridge.stats);
    post({ type: 'done', id, result });
  } finally {
    if (pending && typeof pending.destroy === 'function') { try { pending.destroy(); } catch { /* done */ } }
    current = null;
  }
}

/** Where a turn's time went, per model call, from the bridge's timers: `run` is onnxruntime's
 * session.run, `bridge` the tensor handling around it (feeds, reading the candidates). */
function stepProfile(a, b) {
  const per = (k) => {
    const calls = b[k].calls - a[k].calls;
    const runMs = b[k].runMs - a[k].runMs, fwdMs = b[k].forwardMs - a[k].forwardMs;
    return calls ? { calls, run_ms: +(runMs / calls).toFixed(3), bridge_ms: +((fwdMs - runMs) / calls).toFixed(3) } : { calls: 0 };
  };
  return { decode: per('decode'), prefill: { ...per('prefill'), tokens: b.prefill.tokens - a.prefill.tokens } };
}

async function resetSession() {
  if (engine) {
    const r = engine.session.reset(); // async in Python: a PyProxy awaitable
    if (r && typeof r.then === 'function') await r;
    if (r && typeof r.destroy === 'function') r.destroy();
  }
  post({ type: 'reset-done' });
}

// ---------------------------------------------------------------- dispatch
// 'chat' and 'reset' run one at a time, in arrival order (the engine owns one KV cache);
// 'stop' acts at once, on the running turn or on a queued one.
let queue = Promise.resolve();
function enqueue(msg, task) {
  queue = queue.then(task).catch((err) => post({ type: 'error', id: msg.id, fatal: false, ...describeError(err) }));
}

self.onmessage = (ev) => {
  const msg = ev.data || {};
  switch (msg.type) {
    case 'load':
      // A load that failed may be sent again (the page's Retry): it starts over.
      if (!loading) {
        loading = load(msg);
        loading.catch((err) => {
          loading = null;
          post({ type: 'error', fatal: true, ...describeError(err) });
        });
      }
      break;
    case 'chat':
      enqueue(msg, () => chat(msg));
      break;
    case 'stop':
      if (msg.id !== undefined && msg.id !== current) cancelled.add(msg.id);
      else if (engine && current !== null) engine.session.abort();
      break;
    case 'reset':
      if (engine && current !== null) engine.session.abort(); // a reset ends the running turn
      enqueue(msg, resetSession);
      break;
    case 'end-profiling':
      enqueue(msg, async () => {
        engine.bridge.endProfiling();
        post({ type: 'profiling', events: profileEvents.splice(0) });
      });
      break;
    default:
      post({ type: 'error', id: msg.id, fatal: false, name: 'ProtocolError', message: `unknown message type '${msg.type}'` });
  }
};
