// intab bridge: tensors in, tensors out (docs/contracts.md §3).
//
//   const bridge = await createBridge({ ort, modelBytes, config, backend: 'webgpu' | 'wasm' });
//   await bridge.forward(ids, startPos, numCandidates, head?) -> { logits, ids, logsumexp, allowedLogsumexp, lseT, lseKept, tail }
//   await bridge.truncate(n); bridge.release();
//
// The bridge owns the KV cache. Under WebGPU the present.* outputs stay in GPU buffers
// ('gpu-buffer') and are fed straight back as the next past_key_values.*; only the K
// candidates and the log-sum-exp come back to the CPU. Python never sees the KV cache.

const KINDS = ['key', 'value'];

/** Threads for the WASM backend: up to 4, and 1 when the page is not cross-origin isolated
 * (no SharedArrayBuffer, so no wasm threads). Must be set before the first session. */
export function wasmThreads() {
  const isolated = globalThis.crossOriginIsolated === true;
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  return isolated ? Math.max(1, Math.min(cores, 4)) : 1;
}

/**
 * What both bridges (this one and kernel_bridge.mjs) share, so that they check and count alike:
 * one call at a time and none after release(), forward's and truncate's arguments, and the
 * cumulative step timers (one-token calls, decode, apart from prefill) behind `bridge.stats`.
 */
export function bridgeCore(vocabSize) {
  let busy = false, released = false;
  const stats = { decode: { calls: 0, runMs: 0, forwardMs: 0 }, prefill: { calls: 0, tokens: 0, runMs: 0, forwardMs: 0 } };
  return {
    /** True the first time: the caller then frees what it holds. */
    release() {
      if (released) return false;
      released = true;
      return true;
    },
    async exclusive(fn) {
      if (released) throw new Error('the bridge was released');
      if (busy) throw new Error('bridge.forward/truncate called while another call is running');
      busy = true;
      try { return await fn(); } finally { busy = false; }
    },
    /** forward's arguments: ids (an array or a PyProxy list, at least one) at startPos, which must be
     * where the cache ends; K clamped to 1..vocab. */
    forwardArgs(ids, startPos, kvLength, numCandidates) {
      startPos = Number(startPos);
      if (startPos !== kvLength) throw new Error(`forward: startPos ${startPos} !== kvLength ${kvLength}`);
      if (ids && typeof ids.toJs === 'function') ids = ids.toJs(); // a PyProxy list
      if (!(ids.length >= 1)) throw new Error('forward: ids must hold at least one token');
      const k = Math.max(1, Math.min(Number(numCandidates) | 0, vocabSize || Infinity));
      return { ids, n: ids.length, startPos, k };
    },
    /** forward's optional `head` (docs/contracts.md §3): the sampling head's request, with defaults;
     * mask: ⌈vocab/32⌉ uint32 words (bit i = token i allowed) as a Uint32Array, or bytes of them. */
    headArgs(head) {
      const h = head && typeof head.toJs === 'function' ? head.toJs({ dict_converter: Object.fromEntries }) : (head || {});
      const num = (v, d) => (v === undefined || v === null ? d : Number(v));
      let mask = h.mask ?? null;
      if (mask && !(mask instanceof Uint32Array)) {
        const bytes = mask instanceof Uint8Array ? mask : new Uint8Array(mask.buffer ?? mask);
        mask = new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      }
      const words = Math.ceil((vocabSize || 0) / 32);
      if (mask && vocabSize && mask.length !== words) throw new Error(`forward: the mask has ${mask.length} words; the vocabulary needs ${words}`);
      return {
        mask, temperature: num(h.temperature, 1) || 1, topP: num(h.topP ?? h.top_p, 1), minP: num(h.minP ?? h.min_p, 0),
        topK: num(h.topK ?? h.top_k, 0), penalty: num(h.penalty, 1), draw: num(h.draw, -1),
        penalized: Int32Array.from(new Set(Array.from(h.penalized ?? [], Number))),
        skip: Boolean(h.skipDisallowed ?? h.skip_disallowed),
      };
    },
    truncateArg(n, kvLength) {
      n = Number(n);
      if (!Number.isInteger(n) || n < 0 || n > kvLength) throw new Error(`truncate(${n}): must be in 0..${kvLength}`);
      return n;
    },
    /** One forward call of n tokens: runMs in the model's run, since t0 in all. */
    record(n, runMs, t0) {
      const st = n === 1 ? stats.decode : stats.prefill;
      st.calls += 1;
      st.runMs += runMs;
      st.forwardMs += performance.now() - t0;
      if (n !== 1) st.tokens += n;
    },
    /** A copy of the timers: {decode: {calls, runMs, forwardMs}, prefill: {calls, tokens, runMs, forwardMs}}. */
    get stats() { return { decode: { ...stats.decode }, prefill: { ...stats.prefill } }; },
  };
}

function toBigInt64(values) {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]);
  return out;
}

export async function createBridge({ ort, modelBytes, config, backend = 'wasm', sessionOptions = {} }) {
  if (backend !== 'wasm' && backend !== 'webgpu') throw new Error(`unknown backend '${backend}'`);
  const layers = config.num_hidden_layers;
  const kvHeads = config.num_key_value_heads ?? config.num_attention_heads;
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  if (!Number.isInteger(layers) || !Number.isInteger(kvHeads) || !Number.isInteger(headDim)) {
    throw new Error('config.json lacks num_hidden_layers / num_key_value_heads / head_dim');
  }
  const kvNames = [];
  for (let i = 0; i < layers; i++) for (const k of KINDS) kvNames.push([`past_key_values.${i}.${k}`, `present.${i}.${k}`]);

  let threads = 1;
  const options = { graphOptimizationLevel: 'all', logSeverityLevel: 3, ...sessionOptions };
  if (backend === 'wasm') {
    threads = ort.env.wasm.numThreads || wasmThreads();
    options.executionProviders = ['wasm'];

  } else {
    options.executionProviders = ['webgpu'];
    // Keep the KV cache on the GPU between steps; the candidates come back to the CPU.
    const loc = {};
    for (const [, present] of kvNames) loc[present] = 'gpu-buffer';
    options.preferredOutputLocation = loc;
  }

  const bytes = modelBytes instanceof Uint8Array ? modelBytes : new Uint8Array(modelBytes);
  const session = await ort.InferenceSession.create(bytes, options);
  for (const [past] of kvNames) {
    if (!session.inputNames.includes(past)) throw new Error(`model.onnx has no input '${past}' (config.json says ${layers} layers)`);
  }

  const emptyKV = () => new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
  let kv = kvNames.map(emptyKV); // one tensor per [past, present] pair, in kvNames order
  let kvLength = 0;
  const core = bridgeCore(config.vocab_size);

  // Tensors a snapshot holds are not disposed when the cache moves on; the snapshot's release()
  // disposes those the cache no longer uses.
  const pinned = new Map();   // tensor -> number of snapshots holding it
  const disposeAll = (tensors) => {
    for (const t of tensors) {
      if (pinned.has(t)) continue;
      try { if (t.location === 'gpu-buffer') t.dispose(); } catch { /* already gone */ }
    }
  };

  const hasHead = session.inputNames.includes('sampling');   // older graphs: the plain top-K
  const V = config.vocab_size;

  function headFeeds(h) {
    let bias;
    if (h.mask) {
      const row = new Float32Array(V);
      for (let i = 0; i < V; i++) if (!((h.mask[i >> 5] >>> (i & 31)) & 1)) row[i] = -Infinity;
      bias = new ort.Tensor('float32', row, [1, V]);
    } else {
      bias = new ort.Tensor('float32', new Float32Array(1), [1, 1]);
    }
    const pen = h.penalized.length ? h.penalized : Int32Array.of(0);
    return {
      logit_bias: bias,
      penalized_ids: new ort.Tensor('int64', toBigInt64(pen), [pen.length]),
      sampling: new ort.Tensor('float32', Float32Array.of(h.temperature, h.topP, h.minP, h.topK,
        h.penalized.length ? h.penalty : 1, h.draw), [6]),
    };
  }

  async function forward(ids, startPos = kvLength, numCandidates = 1, head = null) {
    const tF = performance.now();
    return core.exclusive(async () => {
      let n, k;
      ({ ids, n, startPos, k } = core.forwardArgs(ids, startPos, kvLength, numCandidates));
      const h = core.headArgs(head);
      const pos = new BigInt64Array(n);
      for (let i = 0; i < n; i++) pos[i] = BigInt(startPos + i);
      const feeds = {
        input_ids: new ort.Tensor('int64', toBigInt64(ids), [1, n]),
        position_ids: new ort.Tensor('int64', pos, [1, n]),
        num_candidates: new ort.Tensor('int64', BigInt64Array.of(BigInt(k)), [1]),
      };
      if (hasHead) Object.assign(feeds, headFeeds(h));
      kvNames.forEach(([past], i) => { feeds[past] = kv[i]; });
      const tR = performance.now();
      const out = await session.run(feeds);
      const runMs = performance.now() - tR;
      // Success: the presents become the cache, the old pasts go.
      const old = kv;
      kv = kvNames.map(([, present]) => out[present]);
      kvLength = startPos + n;
      disposeAll(old);
      const candLogits = out.cand_logits, candIds = out.cand_ids, lse = out.logsumexp, stats = out.head_stats;
      let logits = Float32Array.from(await candLogits.getData());
      let idsOut = Int32Array.from(await candIds.getData(), (v) => Number(v));
      const logsumexp = Number((await lse.getData())[0]);
      const st = stats ? Array.from(await stats.getData()) : [null, null, null, -1];
      disposeAll([candLogits, candIds, lse, ...(stats ? [stats] : [])]);
      let count = logits.length;
      while (count > 0 && logits[count - 1] === -Infinity) count--;   // fewer allowed tokens than asked
      if (count < logits.length) { logits = logits.slice(0, count); idsOut = idsOut.slice(0, count); }
      core.record(n, runMs, tF);
      return { logits, ids: idsOut, logsumexp, allowedLogsumexp: st[0], lseT: st[1], lseKept: st[2], tail: st[3] };
    });
  }

  // Keep the first n positions. Rare (a conversation edited in the middle): the cache goes
  // through the CPU, sliced along the sequence axis, and is re-uploaded on the next run.
  async function truncate(n) {
    return core.exclusive(async () => {
      n = core.truncateArg(n, kvLength);
      if (n === kvLength) return;
      const old = kv;
      if (n === 0) {
        kv = kvNames.map(emptyKV);
      } else {
        const P = kvLength;
        kv = await Promise.all(old.map(async (t) => {
          const data = await t.getData();
          const out = new Float32Array(kvHeads * n * headDim);
          for (let h = 0; h < kvHeads; h++) {
            out.set(data.subarray(h * P * headDim, (h * P + n) * headDim), h * n * headDim);
          }
          return new ort.Tensor('float32', out, [1, kvHeads, n, headDim]);
        }));
      }
      kvLength = n;
      disposeAll(old);
    });
  }

  // A snapshot keeps the cache's tensors themselves (they are never written again: every run
  // makes new presents), so taking one costs nothing and restoring one copies nothing.
  async function snapshot() {
    return core.exclusive(async () => {
      const tensors = kv.slice();
      for (const t of tensors) pinned.set(t, (pinned.get(t) || 0) + 1);
      let held = true;
      return {
        length: kvLength, tensors, bytes: kvLength * kvHeads * headDim * 4 * kvNames.length,
        release() {
          if (!held) return;
          held = false;
          const free = [];
          for (const t of tensors) {
            const c = pinned.get(t) - 1;
            if (c > 0) pinned.set(t, c); else { pinned.delete(t); if (!kv.includes(t)) free.push(t); }
          }
          disposeAll(free);
        },
      };
    });
  }

  async function restore(snap) {
    return core.exclusive(async () => {
      if (!snap || !Array.isArray(snap.tensors) || snap.tensors.length !== kvNames.length) {
        throw new Error('restore: not a snapshot of this bridge');
      }
      const old = kv;
      kv = snap.tensors.slice();
      kvLength = snap.length;
      disposeAll(old.filter((t) => !kv.includes(t)));
    });
  }

  function release() {
    if (!core.release()) return;
    pinned.clear();
    disposeAll(kv);
    kv = [];
    kvLength = 0;
    session.release?.();
  }

  return {
    backend,
    threads: backend === 'wasm' ? threads : 1,
    get kvLength() { return kvLength; },
    get stats() { return core.stats; },
    layers, kvHeads, headDim,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    forward, truncate, snapshot, restore, release,
    /** With sessionOptions.enableProfiling: ends onnxruntime's profile (WASM prints it to the console). */
    endProfiling() { session.endProfiling(); },
  };
}
