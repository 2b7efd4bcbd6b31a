// The bridge (docs/contracts.md §3) over intab's own WASM kernel (web/kernel/decoder.c) instead of
// onnxruntime-web: the same forward/truncate/release, computed straight from weights.bin's GGUF
// blocks, every kind of KINDS (set_mat converts them at load). No onnxruntime, no float32 copy of
// the 4-bit weights, no graph to optimize.
//
//   const bridge = await createKernelBridge({ wasm, weights, layout, config, threads, maxContext });
//
// wasm: the module's bytes or a compiled WebAssembly.Module (static/kernel/decoder.wasm, or
// decoder-st.wasm where shared memory is unavailable); weights: weights.bin (Uint8Array); layout:
// manifest.json's "weights". Threads beyond the first are workers (web/kernel_thread.mjs) that
// share the module's memory; `spawn(index, module, memory)` makes one (tests pass their own).

import { bridgeCore } from './bridge.mjs';
import { moduleWorker } from './module_worker.mjs';

const SLOTS = { qkv: 0, o: 1, gate_up: 2, down: 3, embed: 4, lm_head: 5 };
// A layer role -> [its matrix's slot, its part]; PART_COUNT: how many parts make the matrix.
const PARTS = { qkv: ['qkv', 0], q: ['qkv', 0], k: ['qkv', 1], v: ['qkv', 2], o: ['o', 0], gate_up: ['gate_up', 0],
  gate: ['gate_up', 0], up: ['gate_up', 1], down: ['down', 0] };
const PART_COUNT = { qkv: 1, q: 3, k: 3, v: 3, o: 1, gate_up: 1, gate: 2, up: 2, down: 1 };
const NORMS = { attn_norm: 0, ffn_norm: 1 };
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

/** cos/sin tables [maxT][hd/2] in float32, as models/graph.py's rope_tables (transformers). */
function ropeTables(config, maxT) {
  const hd = config.head_dim ?? config.hidden_size / config.num_attention_heads, half = hd / 2;
  const theta = Math.fround(config.rope_theta ?? 10000);
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / hd)));
  const cos = new Float32Array(maxT * half), sin = new Float32Array(maxT * half);
  for (let p = 0; p < maxT; p++) {
    for (let i = 0; i < half; i++) {
      const f = Math.fround(p * inv[i]);
      cos[p * half + i] = Math.cos(f);
      sin[p * half + i] = Math.sin(f);
    }
  }
  return { cos, sin };
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
  // Matrices by slot: a role names a whole matrix (qkv, gate_up) or one of its row-stacked parts
  // (q, k, v; gate, up: a Q4_K_M file gives them different kinds); set_mat takes parts in order.
  const seen = new Set(), parts = new Map();
  for (const t of layout.tensors) {
    const role = t.role || '';
    let m;
    if (role === 'embed' || role === 'lm_head') {
      parts.set(role, [[0, t]]);
    } else if (role === 'final_norm') {
      kern.set_vec(0, 2, base + t.src);
    } else if ((m = /^l(\d+)_(qkv|o|gate_up|down|q|k|v|gate|up)$/.exec(role)) && t.kind in KINDS) {
      const [slot, part] = PARTS[m[2]];
      const key = `l${m[1]}_${slot}`;
      if (!parts.has(key)) parts.set(key, []);
      parts.get(key).push([part, t]);
      if (parts.get(key).length === PART_COUNT[m[2]]) seen.add(key);
      continue;
    } else if ((m = /^l(\d+)_(attn_norm|ffn_norm)$/.exec(role)) && t.kind === 'F32') {
      kern.set_vec(+m[1], NORMS[m[2]], base + t.src);
    } else {
      throw new KernelError(`weights layout: the kernel does not know tensor ${t.name} (role '${role}', ${t.kind})`);
    }
    seen.add(role);
  }
  for (const [key, list] of parts) {
    const [, layer, slot] = /^(?:l(\d+)_)?(.*)$/.exec(key);
    list.sort((a, b) => a[0] - b[0]);
    for (const [part, t] of list) {
      if (!(t.kind in KINDS)) throw new KernelError(`the kernel cannot compute ${t.kind} blocks (${t.role})`);
      need(kern.set_mat(+(layer ?? 0), SLOTS[slot], KINDS[t.kind], base + t.src, t.rows, t.cols, part), t.role);
    }
  }
  const missing = ['embed', 'final_norm'];
  for (let i = 0; i < L; i++) for (const r of [...Object.keys(SLOTS).filter((s) => SLOTS[s] < 4), ...Object.keys(NORMS)]) missing.push(`l${i}_${r}`);
  const lacking = missing.filter((r) => !seen.has(r));
  if (lacking.length) throw new KernelError(`weights layout lacks ${lacking.slice(0, 4).join(', ')}${lacking.length > 4 ? '…' : ''} (an old manifest: rebuild the model)`);

  const { cos, sin } = ropeTables(config, maxT);
  const pc = need(kern.alloc(cos.byteLength), 'rotary tables'), ps = need(kern.alloc(sin.byteLength), 'rotary tables');
  new Float32Array(mem(), pc, cos.length).set(cos);
  new Float32Array(mem(), ps, sin.length).set(sin);
  kern.set_rope(pc, ps);
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
