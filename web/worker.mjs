// The engine's worker: receives protocol messages (web/protocol.mjs) and dispatches them. The
// heavy parts live in their own modules: worker_plan.mjs (backend and kernel choice),
// worker_load.mjs (model files, the runtime, fallback), worker_python.mjs (Pyodide and the engine
// session). Pyodide and the model's runtime share this one module worker, so the page never blocks.
//
// Generations run one at a time in arrival order (the engine holds one live KV cache, and
// snapshots of other conversations); `abort` acts at once, on the running one or a queued one.

import { toWire, fail } from './errors.mjs';
import { expect, message } from './protocol.mjs';
import { loadEngine } from './worker_load.mjs';
import { unwrap } from './worker_python.mjs';
import { watchRequests } from './privacy.mjs';

let loading = null;       // promise of the engine, once 'load' was received
let engine = null;        // {bridge, session, pyodide, ready}
let current = null;       // id of the generation running now
const cancelled = new Set();   // ids aborted while still queued
const snapshots = new Map();   // bridge mode: handle -> the bridge's snapshot
let nextHandle = 1;
const post = (type, fields, transfer) => self.postMessage(message(type, fields), transfer || []);

// The page's privacy line counts this worker's requests too (web/privacy.mjs): they are not in
// the page's own Resource Timing.
watchRequests((batch) => post('privacy', batch));

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

async function ready() {
  if (!engine) {
    try { await loading; } catch { /* reported by load */ }
    if (!engine) throw fail('NotReady', 'the model is not loaded');
  }
  return engine;
}

async function needSession() {
  const e = await ready();
  if (!e.session) throw fail('NotReady', 'this engine was loaded without Python (python: false): only bridge calls work');
  return e;
}

// ---------------------------------------------------------------- generation
/** Check a generation as it arrives (so a bad one fails at once), then run it in its turn. */
function intake(msg) {
  const { id, kind, payload, options } = msg;
  const checked = (async () => {
    const e = await needSession();
    const v = unwrap(e.session.check(id, kind, payload, options || {}));
    post('queued', { id, ...v });
    return e;
  })();
  checked.catch(answerError(id));
  queue = queue.then(async () => {
    let e;
    try { e = await checked; } catch { return; }   // already answered with its error
    await generate(e, id);
  }).catch(answerError(id));
}

async function generate(e, id) {
  if (cancelled.delete(id)) {
    // Aborted while queued: nothing was generated.
    e.session.forget(id);
    post('done', { id, result: { text: '', token_ids: [], prompt_tokens: 0, new_tokens: 0, finish_reason: 'abort', stop_reason: 'abort' } });
    return;
  }
  current = id;
  const onDelta = (o) => {   // already a JS object (pyodide_glue's to_js)
    post('delta', { id, text: o.text, token_ids: o.token_ids, ...(o.logprobs ? { logprobs: o.logprobs } : {}),
      ...(o.tool_calls ? { tool_calls: o.tool_calls } : {}) });
  };
  const before = e.bridge.stats;
  try {
    const result = unwrap(await e.session.generate(id, onDelta));
    result.profile = stepProfile(before, e.bridge.stats);
    post('done', { id, result });
  } finally {
    current = null;
    cancelled.delete(id);   // an abort that came after the answer was done
  }
}

/** Where a turn's time went, per model call, from the bridge's timers: `run` is onnxruntime's
 * session.run / the kernel's forward, `bridge` the tensor handling around it. */
function stepProfile(a, b) {
  const per = (k) => {
    const calls = b[k].calls - a[k].calls;
    const runMs = b[k].runMs - a[k].runMs, fwdMs = b[k].forwardMs - a[k].forwardMs;
    return calls ? { calls, run_ms: +(runMs / calls).toFixed(3), bridge_ms: +((fwdMs - runMs) / calls).toFixed(3) } : { calls: 0 };
  };
  return { decode: per('decode'), prefill: { ...per('prefill'), tokens: b.prefill.tokens - a.prefill.tokens } };
}

// ---------------------------------------------------------------- engine calls
const CALLS = {
  tokenize: (s, a) => s.tokenize(a.text, !!a.addSpecialTokens),
  detokenize: (s, a) => s.detokenize(a.ids, a.skipSpecialTokens !== false),
  count_tokens: (s, a) => s.count_tokens(a.messages, a.addGenerationPrompt !== false),
  apply_chat_template: (s, a) => s.apply_chat_template(a.messages, a.addGenerationPrompt !== false),
};

async function call({ id, method, args }) {
  const e = await needSession();
  if (method === 'reset') {
    const r = e.session.reset();   // async in Python: a PyProxy awaitable
    await r;
    r.destroy?.();
    return post('reply', { id, value: null });
  }
  const fn = CALLS[method];
  if (!fn) throw fail('ProtocolError', `unknown engine call '${method}'`);
  post('reply', { id, value: unwrap(fn(e.session, args || {})) });
}

// ---------------------------------------------------------------- the bridge itself (python: false)
async function bridgeCall({ id, method, args = {} }) {
  const { bridge } = await ready();
  switch (method) {
    case 'forward': {
      const r = await bridge.forward(Int32Array.from(args.ids), args.start, args.k, args.head);
      return post('reply', { id, value: { ids: r.ids, logits: r.logits, logsumexp: r.logsumexp, allowedLogsumexp: r.allowedLogsumexp,
        lseT: r.lseT, lseKept: r.lseKept, tail: r.tail, kvLength: bridge.kvLength } },
        [r.ids.buffer, r.logits.buffer]);
    }
    case 'truncate':
      await bridge.truncate(args.n);
      return post('reply', { id, value: { kvLength: bridge.kvLength } });
    case 'snapshot': {
      const s = await bridge.snapshot();
      const handle = nextHandle++;
      snapshots.set(handle, s);
      return post('reply', { id, value: { handle, length: s.length, bytes: s.bytes } });
    }
    case 'restore': {
      const s = snapshots.get(args.handle);
      if (!s) throw fail('ProtocolError', `no snapshot ${args.handle} (released?)`);
      await bridge.restore(s);
      return post('reply', { id, value: { kvLength: bridge.kvLength } });
    }
    case 'release_snapshot':
      snapshots.get(args.handle)?.release();
      snapshots.delete(args.handle);
      return post('reply', { id, value: null });
    default:
      throw fail('ProtocolError', `unknown bridge call '${method}'`);
  }
}

// ---------------------------------------------------------------- lifeline
/** Take the page's Web Lock `name` and hold it until this worker ends: the lock manager frees a
 * context's locks when it goes, whatever ended it (an out-of-memory kill sends no message), and
 * the page, waiting for the same lock, learns of it at once (web/client.mjs). Resolves once held. */
let lifeline = null;
function holdLifeline(name) {
  if (!name || lifeline || !self.navigator?.locks) return Promise.resolve();
  lifeline = new Promise((held) => {
    self.navigator.locks.request(name, () => { held(); return new Promise(() => {}); }).catch(() => held());
  });
  return lifeline;
}

// ---------------------------------------------------------------- dispatch
// 'generate' and 'reset' run one at a time, in arrival order; the rest answer at once.
let queue = Promise.resolve();
const answerError = (id) => (err) => post('error', { id, fatal: false, error: toWire(err) });
function enqueue(msg, task) {
  queue = queue.then(task).catch(answerError(msg.id));
}

self.onmessage = (ev) => {
  let msg;
  try {
    msg = expect(ev.data, 'page');
  } catch (err) {
    post('error', { id: ev.data && ev.data.id, fatal: false, error: toWire(err) });
    return;
  }
  switch (msg.type) {
    case 'load':
      // A load that failed may be sent again (a Retry): it starts over.
      if (!loading) {
        loading = holdLifeline(msg.lifeline).then(() => loadEngine(msg.options || {}, (p) => post('progress', { message: '', loaded: 0, total: 0, files: [], ...p }), captureProfile))
          .then((e) => { engine = e; post('ready', e.ready); return e; });
        loading.catch((err) => {
          loading = null;
          post('error', { id: null, fatal: true, error: toWire(err) });
        });
      }
      break;
    case 'generate':
      intake(msg);
      break;
    case 'abort':
      if (msg.id !== current) cancelled.add(msg.id);
      else if (engine && engine.session) engine.session.abort();
      break;
    case 'call':
      if (msg.method === 'reset') enqueue(msg, () => call(msg));
      else call(msg).catch(answerError(msg.id));
      break;
    case 'bridge':
      bridgeCall(msg).catch(answerError(msg.id));
      break;
    case 'end-profiling':
      enqueue(msg, async () => {
        engine.bridge.endProfiling();
        post('profiling', { id: msg.id, events: profileEvents.splice(0) });
      });
      break;
    default:
      break;
  }
};
