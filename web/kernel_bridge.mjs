// The bridge (docs/contracts.md §3) over intab's own WASM kernel (web/kernel/decoder.c) instead of
// onnxruntime-web: the same forward/truncate/release, computed straight from weights.bin's GGUF
// blocks, every kind of KINDS (set_mat converts them at load). No onnxruntime, no float32 copy of
// the 4-bit weights, no graph to optimize. Tensors go to the kernel's slots by role
// (capabilities.mjs's roleTable); what the family adds (activation, embedding and query scales,
// per-layer rope tables and windows) comes from config.json through kernelRecipe, as
// py/intab/arch's recipes read it.
//
//   const bridge = await createKernelBridge({ wasm, weights, layout, config, threads, maxContext });
//
// wasm: the module's bytes or a compiled WebAssembly.Module (static/kernel/decoder.wasm, or
// decoder-st.wasm where shared memory is unavailable); weights: weights.bin (Uint8Array); layout:
// manifest.json's "weights". Threads beyond the first are workers (web/kernel_thread.mjs) that
// share the module's memory; `spawn(index, module, memory)` makes one (tests pass their own).

import { bridgeCore } from './bridge.mjs';
import { roleTable } from './capabilities.mjs';
import { moduleWorker } from './module_worker.mjs';

// decoder.c's slots for each role of a layer (capabilities.mjs's LAYER_PARTS): a matrix role is
// [set_mat slot, part] (q, k, v or gate, up of different kinds are row-stacked parts of one matrix);
// a vector role is a set_vec slot.
const MAT_SLOTS = { qkv: [0, 0], q: [0, 0], k: [0, 1], v: [0, 2], o: [1, 0], gate_up: [2, 0], gate: [2, 0], up: [2, 1],
                    down: [3, 0] };
const VEC_SLOTS = { attn_norm: 0, ffn_norm: 1, q_bias: 3, k_bias: 4, v_bias: 5, q_norm: 6, k_norm: 7,
                    post_attn_norm: 8, post_ffn_norm: 9 };
const ACT = { silu: 0, gelu_pytorch_tanh: 1 };   // decoder.c's ACT_*
// GGUF block kinds as ggml_type ids, what set_mat takes (decoder.c converts each into its layouts).
const KINDS = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 };
const PAGE = 65536;
const MAX_PAGES = 65535;       // 4 GiB less a page: the module is linked with --max-memory=4294901760 (wasm-ld takes no 4294967296)
const MAX_THREADS = 8;         // decoder.c's MAX_THREADS
const MAX_LAYERS = 64;         // decoder.c's MAX_LAYERS
const CHUNK = 128;             // tokens per pass through the layers (bounds the activations: ~4 MB)

export class KernelError extends Error {
  constructor(message) { super(message); this.name = 'LoadError'; }
}

/** Whether this engine runs the kernel: SIMD128 with relaxed-SIMD (its FMA), and for threads
 * shared memory. Checked by compiling, so a browser that lacks either falls back to onnxruntime. */
export function kernelSupport(wasmBytes) {
  try { return WebAssembly.validate(wasmBytes); } catch { return false; }
}

/** Rotary frequencies [hd/2] in float32 step by step as models/graph.py's inv_freq (transformers):
 * theta^-(2i/hd), then config's rope_scaling (linear, or llama3 as _compute_llama3_parameters),
 * then divided by llama.cpp's per-frequency factors (the rope_freqs weight of Llama 3 GGUFs). */
export function invFreq(hd, theta, scaling = null, factors = null) {
  const f = Math.fround, half = hd / 2, inv = new Float32Array(half), th = f(theta);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(th ** f((2 * i) / hd)));
  const kind = scaling ? (scaling.rope_type ?? scaling.type ?? 'default') : 'default';
  if (kind === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = f(inv[i] / f(scaling.factor));
  } else if (kind === 'llama3') {
    const factor = f(scaling.factor), lo = f(scaling.low_freq_factor), hi = f(scaling.high_freq_factor);
    const old = f(scaling.original_max_position_embeddings), loWave = f(old / lo), hiWave = f(old / hi);
    for (let i = 0; i < half; i++) {
      const wavelen = f(f(2 * Math.PI) / inv[i]);
      const llama = wavelen > loWave ? f(inv[i] / factor) : inv[i];
      const smooth = f(f(f(old / wavelen) - lo) / f(hi - lo));
      const smoothed = f(f(f(f(1 - smooth) * llama) / factor) + f(smooth * llama));
      inv[i] = !(wavelen < hiWave) && !(wavelen > loWave) ? smoothed : llama;
    }
  } else if (kind !== 'default') {
    throw new KernelError(`the kernel has no rope scaling of type '${kind}'`);
  }
  if (factors) for (let i = 0; i < half; i++) inv[i] = f(inv[i] / factors[i]);
  return inv;
}

/** cos/sin tables [maxT][hd/2] in float32 for frequencies `inv`: angle p * inv rounded once, as the graph. */
function ropeTables(inv, maxT) {
  const half = inv.length, cos = new Float32Array(maxT * half), sin = new Float32Array(maxT * half);
  for (let p = 0; p < maxT; p++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(p * inv[i]);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** What a layer computes beyond the llama block, from config.json as py/intab/arch's recipes read
 * it: activation, embedding scale, query scale, and per layer its rope ('full' or 'sliding') and
 * key window. Float32 constants rounded as models/graph.py rounds them. */
export function kernelRecipe(config) {
  const hd = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  const gemma = config.model_type === 'gemma3_text';
  const act = config.hidden_activation ?? config.hidden_act ?? 'silu';
  if (!(act in ACT)) throw new KernelError(`the kernel has no activation '${act}'`);
  const L = config.num_hidden_layers;
  const types = Array.from({ length: L }, (_, i) => (config.layer_types?.[i] === 'sliding_attention' ? 'sliding' : 'full'));
  return {
    act: ACT[act],
    embedScale: gemma ? Math.fround(Math.sqrt(config.hidden_size)) : 0,
    queryScale: Math.fround((gemma ? config.query_pre_attn_scalar : hd) ** -0.5),
    types,
    window: types.map((t) => (t === 'sliding' ? config.sliding_window : 0)),
    rope: {
      full: { theta: config.rope_theta ?? 10000, scaling: config.rope_scaling ?? null },
      sliding: { theta: config.rope_local_base_freq ?? 10000, scaling: null },
    },
  };
}

function defaultSpawn(index, module, memory) {
  return new Promise((resolve, reject) => {
    const w = moduleWorker(new URL('./kernel_thread.mjs', import.meta.url), `intab-kernel-${index}`);
    w.onmessage = (ev) => (ev.data && ev.data.type === 'parked' ? resolve(w) : reject(new KernelError(String(ev.data?.message))));
    w.onerror = (ev) => reject(new KernelError(`kernel thread ${index} failed to start: ${ev.message || 'error'}`));
    w.postMessage({ module, memory, index });
  });
}

/** Whether shared wasm memory (and so kernel threads) is available: cross-origin isolation. */
export function sharedMemory() {
  return typeof SharedArrayBuffer === 'function' && globalThis.crossOriginIsolated !== false;
}

export async function createKernelBridge({ wasm, weights, layout, config, threads = 1, maxContext, shared = sharedMemory(), spawn = defaultSpawn }) {
  const H = config.hidden_size, I = config.intermediate_size, L = config.num_hidden_layers;
  const nh = config.num_attention_heads, nkv = config.num_key_value_heads ?? nh;
  const hd = config.head_dim ?? H / nh, V = config.vocab_size;
  const maxT = Math.min(maxContext || config.max_position_embeddings || 2048, config.max_position_embeddings || Infinity);
  if (![H, I, L, nh, nkv, hd, V].every(Number.isInteger) || hd % 32 || H % 32 || I % 32 || nh % nkv || L > MAX_LAYERS) {
    throw new KernelError(`config.json does not describe a model this kernel runs (hidden and intermediate sizes multiples of 32, head_dim a multiple of 32, whole query heads per KV head, at most ${MAX_LAYERS} layers)`);
  }
  if (!layout || !Array.isArray(layout.tensors)) throw new KernelError('the model has no packed weights layout (manifest.json "weights")');
  const src = weights instanceof Uint8Array ? weights : new Uint8Array(weights);
  if (src.length < layout.src_bytes) throw new KernelError(`weights.bin has ${src.length} bytes; its layout needs ${layout.src_bytes}`);

  const module = wasm instanceof WebAssembly.Module ? wasm : await WebAssembly.compile(wasm);
  // decoder.wasm imports shared memory (threads), decoder-st.wasm a plain one: `shared` says which.
  const memory = new WebAssembly.Memory({ initial: Math.ceil((layout.src_bytes + (8 << 20)) / PAGE), maximum: MAX_PAGES, shared });
  // env.now: only the phase-timer build (tools/profile_kernel.py) imports it.
  const { exports: kern } = await WebAssembly.instantiate(module, { env: { memory, now: () => performance.now() } });
  const mem = () => memory.buffer;
  // Pointers come back as i32: above 2 GiB they read negative, so every one is taken unsigned.
  const need = (ptr, what) => {
    if (!ptr) throw new KernelError(`out of memory for ${what}: close other tabs or choose a shorter context`);
    return ptr >>> 0;
  };

  kern.set_config(H, I, nh, nkv, hd, L, V, maxT, config.rms_norm_eps ?? 1e-6, CHUNK);
  // weights.bin goes into the module's memory as is; set_mat then rewrites each matrix in place.
  const base = need(kern.alloc(layout.src_bytes), 'the weights');
  new Uint8Array(mem(), base, layout.src_bytes).set(src.subarray(0, layout.src_bytes));
  // Each tensor to its slot by role (capabilities.mjs's roleTable: the one place that reads roles).
  const table = roleTable(layout, config);
  const fail = (t, why = 'the kernel does not know') => {
    throw new KernelError(`weights layout: ${why} tensor ${t.name} (role '${t.role || ''}', ${t.kind})`);
  };
  if (table.unknown.length) fail(table.unknown[0]);
  if (table.missing.length) {
    throw new KernelError(`weights layout lacks ${table.missing.slice(0, 4).join(', ')}${table.missing.length > 4 ? '…' : ''} (an old manifest: rebuild the model)`);
  }
  const mat = (layer, [slot, part], t) => {
    if (!(t.kind in KINDS)) fail(t, 'the kernel cannot compute the blocks of');
    need(kern.set_mat(layer, slot, KINDS[t.kind], base + t.src, t.rows, t.cols, part), t.role);
  };
  const vec = (layer, slot, t, offset = 0) => {
    if (t.kind !== 'F32') fail(t, 'the kernel needs float32 for');
    kern.set_vec(layer, slot, base + t.src + offset * 4);
  };
  mat(0, [4, 0], table.embed);
  if (table.lm_head) mat(0, [5, 0], table.lm_head);
  vec(0, 2, table.final_norm);
  for (let i = 0; i < L; i++) {
    const parts = table.layers[i];
    const has = (p) => p in parts;
    const half = (a, b) => [a, b].filter(has).length === 1;
    if (has('qkv') ? ['q', 'k', 'v'].some(has) : !['q', 'k', 'v'].every(has)) throw new KernelError(`weights layout: layer ${i} needs l${i}_qkv or all of l${i}_q, l${i}_k, l${i}_v`);
    if (has('gate_up') ? ['gate', 'up'].some(has) : !['gate', 'up'].every(has)) throw new KernelError(`weights layout: layer ${i} needs l${i}_gate_up or both l${i}_gate, l${i}_up`);
    for (const part of Object.keys(MAT_SLOTS)) if (has(part)) mat(i, MAT_SLOTS[part], parts[part]);   // parts in row order
    for (const [part, t] of Object.entries(parts)) {
      if (part in MAT_SLOTS) continue;
      if (part in VEC_SLOTS) vec(i, VEC_SLOTS[part], t);
      else if (part === 'qkv_bias') { vec(i, 3, t); vec(i, 4, t, nh * hd); vec(i, 5, t, (nh + nkv) * hd); }
      else fail(t);
    }
    if (!has('qkv_bias') && (['q_bias', 'k_bias', 'v_bias'].some(has) && !['q_bias', 'k_bias', 'v_bias'].every(has))) {
      throw new KernelError(`weights layout: layer ${i} has some of the q, k, v biases, not all`);
    }
    if (half('q_norm', 'k_norm') || half('post_attn_norm', 'post_ffn_norm')) throw new KernelError(`weights layout: layer ${i} has one norm of a pair (q/k or post-attention/post-MLP)`);
  }

  // Rotary tables, one per kind of layer (gemma3: local base on sliding layers, global on the others).
  const recipe = kernelRecipe(config);
  kern.set_arch(recipe.act, recipe.embedScale, recipe.queryScale);
  let factors = null;
  if (table.rope_freqs) {
    const t = table.rope_freqs;
    if (t.kind !== 'F32') fail(t, 'the kernel needs float32 for');
    // A copy (Node's Buffer.slice is a view into a shared pool, whose .buffer starts elsewhere).
    factors = new Float32Array(new Uint8Array(src.subarray(t.src, t.src + (hd / 2) * 4)).buffer);
  }
  const tables = {};
  for (const type of new Set(recipe.types)) {
    const r = recipe.rope[type];
    const { cos, sin } = ropeTables(invFreq(hd, r.theta, r.scaling, type === 'full' ? factors : null), maxT);
    const pc = need(kern.alloc(cos.byteLength), 'rotary tables'), ps = need(kern.alloc(sin.byteLength), 'rotary tables');
    new Float32Array(mem(), pc, cos.length).set(cos);
    new Float32Array(mem(), ps, sin.length).set(sin);
    tables[type] = [pc, ps];
  }
  for (let i = 0; i < L; i++) kern.set_layer(i, ...tables[recipe.types[i]], recipe.window[i]);
  need(kern.init_runtime(), 'the KV cache');
  need(kern.head_init(), 'the sampling head');
  const idsPtr = need(kern.alloc(maxT * 4), 'the token buffer');

  // Threads: the others park in worker_loop before the first job, so none misses one.
  const wanted = shared && typeof kern.worker_loop === 'function' ? Math.max(1, Math.min(MAX_THREADS, threads | 0)) : 1;
  const workers = [];
  try {
    for (let i = 1; i < wanted; i++) workers.push(await spawn(i, module, memory));
  } catch (err) {
    for (const w of workers) w.terminate();
    throw err;
  }
  kern.set_threads(workers.length + 1);

  let kvLength = 0;
  const core = bridgeCore(V);   // shared with bridge.mjs: argument checks, one call at a time, timers

  const IO = { temp: 0, topP: 1, minP: 2, topK: 3, penalty: 4, draw: 5, hasMask: 6, skip: 7, nPen: 8,
               rawMax: 16, rawSum: 17, allowedMax: 18, allowedSum: 19, tMax: 20, tSum: 21, keptSum: 22, tail: 23, count: 24 };

  async function forward(ids, startPos = kvLength, numCandidates = 1, head = null) {
    const tF = performance.now();
    return core.exclusive(async () => {
      let n, k;
      ({ ids, n, startPos, k } = core.forwardArgs(ids, startPos, kvLength, numCandidates));
      const h = core.headArgs(head);
      if (startPos + n > maxT) throw new Error(`forward: ${startPos + n} tokens exceed the context of ${maxT}`);
      for (let i = 0; i < n; i++) {
        if (!(Number.isInteger(Number(ids[i])) && ids[i] >= 0 && ids[i] < V)) throw new Error(`forward: token id ${ids[i]} is outside 0..${V - 1}`);
      }
      new Int32Array(mem(), idsPtr, n).set(Array.from(ids, Number));
      const io = new Float32Array(mem(), (kern.head_io_ptr() >>> 0), 32);
      io[IO.temp] = h.temperature; io[IO.topP] = h.topP; io[IO.minP] = h.minP; io[IO.topK] = h.topK;
      io[IO.draw] = h.draw; io[IO.skip] = h.skip ? 1 : 0; io[IO.hasMask] = h.mask ? 1 : 0;
      if (h.mask) new Uint32Array(mem(), (kern.head_mask_ptr() >>> 0), h.mask.length).set(h.mask);
      const np = Math.min(h.penalized.length, maxT);
      io[IO.nPen] = np; io[IO.penalty] = np ? h.penalty : 1;
      if (np) new Int32Array(mem(), (kern.head_pen_ptr() >>> 0), np).set(h.penalized.subarray(0, np));
      const tR = performance.now();
      if (!kern.forward(idsPtr, n, startPos, k)) throw new Error('forward: the kernel refused its arguments');
      const runMs = performance.now() - tR;
      kvLength = startPos + n;
      const out = new Float32Array(mem(), (kern.head_io_ptr() >>> 0), 32);
      const count = out[IO.count];
      const logits = new Float32Array(mem(), (kern.cand_logits_ptr() >>> 0), count).slice();
      const idsOut = new Int32Array(mem(), (kern.cand_ids_ptr() >>> 0), count).slice();
      const lse = (mx, sum) => Math.fround(mx + Math.log(sum));
      core.record(n, runMs, tF);
      return {
        logits, ids: idsOut, logsumexp: lse(out[IO.rawMax], out[IO.rawSum]),
        allowedLogsumexp: lse(out[IO.allowedMax], out[IO.allowedSum]), lseT: lse(out[IO.tMax], out[IO.tSum]),
        lseKept: lse(out[IO.tMax], out[IO.keptSum]), tail: out[IO.tail],
      };
    });
  }

  // The cache is positional: keeping the first n positions is just forgetting the rest.
  async function truncate(n) {
    return core.exclusive(async () => { kvLength = core.truncateArg(n, kvLength); });
  }

  // A snapshot is the first kvLength rows of every layer's keys and values, copied out of the
  // module's memory into one JS buffer (46 KB a token for SmolLM2-135M), so that the engine can
  // switch conversations without prefilling them again; restore copies them back.
  const hdBytes = hd * 4, headStride = maxT * hdBytes;
  function copyKV(n, toSnapshot, buf) {
    const u8 = new Uint8Array(mem());
    let off = 0;
    for (let l = 0; l < L; l++) {
      for (let which = 0; which < 2; which++) {
        const base = kern.kv_ptr(l, which) >>> 0;
        for (let g = 0; g < nkv; g++) {
          const at = base + g * headStride, len = n * hdBytes;
          if (toSnapshot) buf.set(u8.subarray(at, at + len), off);
          else u8.set(buf.subarray(off, off + len), at);
          off += len;
        }
      }
    }
  }

  async function snapshot() {
    return core.exclusive(async () => {
      const n = kvLength, data = new Uint8Array(n * hdBytes * nkv * L * 2);
      copyKV(n, true, data);
      return { length: n, bytes: data.byteLength, data, release() { /* garbage-collected */ } };
    });
  }

  async function restore(snap) {
    return core.exclusive(async () => {
      if (!snap || !(snap.data instanceof Uint8Array) || !Number.isInteger(snap.length) || snap.length > maxT
          || snap.data.byteLength !== snap.length * hdBytes * nkv * L * 2) {
        throw new Error('restore: not a snapshot of this bridge');
      }
      copyKV(snap.length, false, snap.data);
      kvLength = snap.length;
    });
  }

  function release() {
    if (!core.release()) return;
    for (const w of workers) w.terminate();
    kvLength = 0;
  }

  return {
    backend: 'wasm',
    kernel: 'intab',
    threads: workers.length + 1,
    maxContext: maxT,
    get kvLength() { return kvLength; },
    get stats() { return core.stats; },
    layers: L, kvHeads: nkv, headDim: hd,
    /** Bytes of wasm memory reserved (weights, scales, activations, and the KV cache for maxContext,
     * whose pages take RAM only once written). */
    get memoryBytes() { return memory.buffer.byteLength; },
    forward, truncate, snapshot, restore, release,
    endProfiling() { /* onnxruntime's profiler only */ },
    /** Time per phase since the last call (ms), from a build with -DKERNEL_PROFILE; null otherwise. */
    takeProfile() {
      if (typeof kern.prof_take !== 'function') return null;
      const names = ['other', 'qkv', 'attention', 'o', 'gate_up', 'silu', 'down', 'head_matvec', 'head_topk'];
      return Object.fromEntries(names.map((n, i) => [n, kern.prof_take(i)]));
    },
  };
}
