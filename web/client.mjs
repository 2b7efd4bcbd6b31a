// The public JS API: intab.create(options) -> an engine running in its own worker. This module
// is the only code that talks to the worker (web/protocol.mjs is the language both speak).
//
//   import * as intab from './intab.mjs';
//   const engine = await intab.create({ model, backend: 'auto', onProgress });
//   const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }] });
//
// The OpenAI-shaped surface is in openai.mjs, the Prompt API in language_model.mjs; both sit on
// Engine.generate(). Requests from anywhere on the page queue in the worker and all get answers;
// aborting one (interruptGenerate(), or its signal) ends it after the current step and the next
// starts at once.

import { IntabError, fail, fromWire } from './errors.mjs';
import { expect, message } from './protocol.mjs';
import { moduleWorker } from './module_worker.mjs';
import { chatCompletion, textCompletion } from './openai.mjs';

const HERE = new URL('./', import.meta.url);
let nextId = 1;

function abortError(signal) {
  const reason = signal && signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(typeof reason === 'string' ? reason : 'The request was aborted.', 'AbortError');
}

const LOAD_OPTIONS = ['model', 'keep', 'backend', 'kernel', 'threads', 'memory', 'adapter', 'signal', 'onProgress', 'profiling', 'ortOptions', 'python', 'snapshot', 'restartOnCrash'];
const MAX_RESTARTS = 2;

/** create()'s `model` as the worker takes it: a model id of models/index.json or 'kept:<name>'
 * as is; a GGUF as a Blob (a File is one; an ArrayBuffer or typed array is wrapped, a copy) or an
 * absolute URL (a string ending in .gguf, or with a '/', resolved against the page). */
function modelOption(model) {
  if (model === undefined || model === null || (typeof Blob !== 'undefined' && model instanceof Blob)) return model;
  if (model instanceof ArrayBuffer || ArrayBuffer.isView(model)) return new Blob([model]);
  if (model instanceof URL) return model.href;
  if (typeof model === 'string') {
    const path = model.split(/[?#]/)[0];
    if (model.startsWith('kept:') || !(path.endsWith('.gguf') || model.includes('/'))) return model;
    return new URL(model, globalThis.document?.baseURI ?? globalThis.location?.href).href;
  }
  throw new IntabError(`model must be a model id, a .gguf File, Blob, ArrayBuffer or URL; got ${Object.prototype.toString.call(model)}`,
    { name: 'InvalidParameter', param: 'model', hint: 'See docs/api.md, "Your own GGUF".' });
}

/** One model, loaded in a worker. Events: 'progress' (detail: the progress), 'crash' (detail: the
 * EngineCrashed error), 'restart' (detail: {cause, info}: a new worker took over), 'privacy'. */
export class Engine extends EventTarget {
  #worker;
  #pending = new Map();     // id -> {resolve, reject, onDelta, kind}
  #running = [];            // generation ids in the order the worker runs them
  #state = 'loading';       // loading | ready | unloaded | crashed
  #onReady = null;
  #lastAnswer = null;
  #lastResult = null;
  #privacy = { requests: [], violations: [] };
  #crashesInARow = 0;       // crashes since the last answer: restarts stop at MAX_RESTARTS

  /** Use intab.create(options). */
  constructor(options = {}) {
    super();
    for (const k of Object.keys(options)) {
      if (!LOAD_OPTIONS.includes(k)) {
        throw new IntabError(`unknown option '${k}'`, { name: 'InvalidParameter', param: k, hint: `intab.create takes ${LOAD_OPTIONS.join(', ')}.` });
      }
    }
    if (options.keep !== undefined && typeof options.keep !== 'boolean' && !(typeof options.keep === 'string' && options.keep)) {
      throw new IntabError('keep must be true, false or a name to keep the model under', { name: 'InvalidParameter', param: 'keep', hint: 'See docs/api.md, "Your own GGUF".' });
    }
    this.options = { ...options, ...('model' in options ? { model: modelOption(options.model) } : {}) };
    this.info = null;
    this.chat = { completions: { create: (req) => chatCompletion(this, req) } };
    this.completions = { create: (req) => textCompletion(this, req) };
  }

  get state() { return this.#state; }

  /** The worker's requests and CSP violations so far ({requests, violations}, web/privacy.mjs);
   * the 'privacy' event brings each new batch. */
  get privacy() { return { requests: [...this.#privacy.requests], violations: [...this.#privacy.violations] }; }

  /** Start the worker and load the model; resolves with this engine once it is ready. */
  async load() {
    const { signal } = this.options;
    if (signal?.aborted) throw abortError(signal);
    const loaded = this.#start();
    const onAbort = () => { this.#onReady?.reject(abortError(signal)); this.#onReady = null; this.unload(); };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await loaded;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return this;
  }

  /** A new worker loading the model (a first load, or a restart after a crash); resolves once ready. */
  #start() {
    const { signal, onProgress, restartOnCrash, ...rest } = this.options;
    const w = moduleWorker(new URL('worker.mjs', HERE), 'intab-engine');
    this.#worker = w;
    this.#state = 'loading';
    const loaded = new Promise((resolve, reject) => { this.#onReady = { resolve, reject }; });
    w.onmessage = (ev) => this.#receive(ev.data, onProgress);
    w.onerror = (ev) => {
      ev.preventDefault?.();
      if (this.#worker === w) this.#crash(ev.message || 'the engine worker failed (is the page served from a built static/ folder?)');
    };
    w.onmessageerror = () => { if (this.#worker === w) this.#crash('a message from the engine worker could not be read'); };
    // The worker's lifeline (protocol.mjs, load): a Web Lock it holds while it lives. An
    // out-of-memory kill or a close() sends no message and fires no error event; the lock is freed.
    const lifeline = globalThis.navigator?.locks && globalThis.crypto?.randomUUID ? `intab-engine-${crypto.randomUUID()}` : null;
    w.postMessage(message('load', { options: rest, ...(lifeline ? { lifeline } : {}) }));
    if (lifeline) {
      loaded.then(() => navigator.locks.request(lifeline, () => {
        if (this.#worker === w) this.#crash('its worker ended (out of memory, or closed)');
      }), () => {}).catch(() => {});
    }
    return loaded;
  }

  #receive(data, onProgress) {
    let msg;
    try {
      msg = expect(data, 'worker');
    } catch (err) {
      console.error('intab:', err);
      return;
    }
    const p = msg.id != null ? this.#pending.get(msg.id) : null;
    switch (msg.type) {
      case 'progress':
        try { onProgress?.(msg); } catch (e) { console.error('intab: onProgress threw', e); }
        this.dispatchEvent(new CustomEvent('progress', { detail: msg }));
        break;
      case 'ready':
        this.info = Object.freeze(msg);
        this.#state = 'ready';
        this.#onReady?.resolve();
        this.#onReady = null;
        break;
      case 'queued':
        p?.onQueued?.(msg);
        break;
      case 'delta':
        p?.onDelta?.(msg);
        break;
      case 'done':
        if (!p) break;
        this.#crashesInARow = 0;
        this.#settle(msg.id);
        this.#lastResult = msg.result;
        if (p.kind === 'chat') this.#lastAnswer = msg.result.text;
        p.resolve(msg.result);
        break;
      case 'privacy':
        this.#privacy.requests.push(...msg.requests);
        this.#privacy.violations.push(...msg.violations);
        this.dispatchEvent(new CustomEvent('privacy', { detail: { requests: msg.requests, violations: msg.violations } }));
        break;
      case 'profiling':
        if (!p) break;
        this.#settle(msg.id);
        p.resolve(msg.events);
        break;
      case 'reply':
        if (!p) break;
        this.#settle(msg.id);
        p.resolve(msg.value);
        break;
      case 'error': {
        const err = fromWire(msg.error);
        if (msg.fatal) {
          this.#state = 'unloaded';
          this.#worker?.terminate();
          this.#onReady?.reject(err);
          this.#onReady = null;
          break;
        }
        if (p) { this.#settle(msg.id); p.reject(err); } else console.error('intab:', err);
        break;
      }
      default:
        break;
    }
  }

  #settle(id) {
    this.#pending.delete(id);
    const i = this.#running.indexOf(id);
    if (i >= 0) this.#running.splice(i, 1);
  }

  #crash(why) {
    if (this.#state === 'unloaded' || this.#state === 'crashed') return;
    const restarts = this.options.restartOnCrash !== false && this.#crashesInARow < MAX_RESTARTS;
    const duringLoad = this.#onReady !== null;   // the first load (create() rejects) or a restart
    const err = fail('EngineCrashed', `the engine stopped: ${why}`, restarts && !duringLoad
      ? { hint: 'The engine restarts by itself (the "restart" event); send the request again then: nothing of the conversation is lost.' } : {});
    this.#state = 'crashed';
    this.#worker?.terminate();
    this.#onReady?.reject(err);
    this.#onReady = null;
    for (const [id, p] of this.#pending) { this.#settle(id); p.reject(err); }
    this.dispatchEvent(new CustomEvent('crash', { detail: err }));
    if (restarts && !duringLoad) this.#restart(err);
  }

  /** A new worker with the same options, after a crash. The conversation is the caller's (every
   * request carries its messages), so nothing else is needed: its KV cache is rebuilt by the next
   * answer's prefill. Two crashes in a row with no answer between (a model that does not fit, say)
   * stop the restarts: the state stays 'crashed'. */
  #restart(cause) {
    this.#crashesInARow += 1;
    this.#start().then(() => {
      this.dispatchEvent(new CustomEvent('restart', { detail: { cause, info: this.info } }));
    }, () => {});   // a crash in the restart was dispatched by #crash; a load error left 'unloaded'
  }

  #usable() {
    if (this.#state === 'ready') return;
    if (this.#state === 'loading') {
      throw this.#crashesInARow ? fail('NotReady', 'the engine is restarting after a crash', { hint: 'Send the request again after its "restart" event.' })
        : fail('NotReady', 'the engine is still loading');
    }
    if (this.#state === 'crashed') throw fail('EngineCrashed', 'the engine stopped earlier');
    throw fail('Unloaded', 'this engine was unloaded');
  }

  #send(type, fields, extra = {}) {
    this.#usable();
    const id = nextId++;
    return {
      id,
      done: new Promise((resolve, reject) => {
        this.#pending.set(id, { resolve, reject, ...extra });
        this.#worker.postMessage(message(type, { id, ...fields }));
      }),
    };
  }

  /**
   * The engine's own generation call, under both API surfaces: kind 'chat' (payload: messages) or
   * 'complete' (payload: text); options: GenerationConfig fields (docs/api.md). onDelta(delta)
   * gets {text, token_ids, logprobs?} as the answer streams; onQueued({prompt_tokens}) once the
   * request is checked and waits its turn (a bad request rejects instead, at once). Resolves with the result (contracts.md
   * §4); an abort (signal, interruptGenerate) resolves with finish_reason 'abort' and the text so far.
   */
  generate(kind, payload, options = {}, { signal, onDelta, onQueued } = {}) {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    let req;
    try {
      req = this.#send('generate', { kind, payload, options }, { onDelta, onQueued, kind });
    } catch (err) {
      return Promise.reject(err);
    }
    this.#running.push(req.id);
    if (signal) {
      const onAbort = () => this.#abort(req.id);
      signal.addEventListener('abort', onAbort, { once: true });
      req.done.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
    }
    return req.done;
  }

  #abort(id) {
    if (this.#pending.has(id) && this.#state === 'ready') this.#worker.postMessage(message('abort', { id }));
  }

  /** End the running answer (finish_reason 'abort'); queued requests still run. */
  interruptGenerate() {
    if (this.#running.length) this.#abort(this.#running[0]);
  }

  #call(method, args) {
    try {
      return this.#send('call', { method, args }).done;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Token ids of `text` (intab's tokenizer: exactly HF tokenizers'). */
  tokenize(text, { addSpecialTokens = false } = {}) { return this.#call('tokenize', { text, addSpecialTokens }); }
  detokenize(ids, { skipSpecialTokens = true } = {}) { return this.#call('detokenize', { ids: Array.from(ids), skipSpecialTokens }); }
  /** Tokens of a conversation with the model's chat template applied (exact, not an estimate). */
  countTokens(messages, { addGenerationPrompt = true } = {}) { return this.#call('count_tokens', { messages, addGenerationPrompt }); }
  applyChatTemplate(messages, { addGenerationPrompt = true } = {}) { return this.#call('apply_chat_template', { messages, addGenerationPrompt }); }
  /** Forget every conversation's KV cache (after the running answer). */
  resetChat() { this.#lastAnswer = null; return this.#call('reset', {}); }

  /** WebLLM's getMessage(): the last chat answer's text. */
  async getMessage() { return this.#lastAnswer ?? ''; }
  /** WebLLM's runtimeStatsText(). */
  async runtimeStatsText() {
    const r = this.#lastResult;
    return r ? `prefill: ${(r.prefill_tok_s || 0).toFixed(1)} tokens/sec, decoding: ${(r.decode_tok_s || 0).toFixed(1)} tokens/sec` : 'no answer yet';
  }

  /** Stop the worker and free the model's memory. Pending requests reject with Unloaded. */
  async unload() {
    if (this.#state === 'unloaded') return;
    this.#state = 'unloaded';
    this.#worker?.terminate();
    const err = fail('Unloaded', 'the engine was unloaded');
    this.#onReady?.reject(err);   // a restart in progress
    this.#onReady = null;
    for (const [id, p] of this.#pending) { this.#settle(id); p.reject(err); }
  }

  /** With create({profiling: true}) (onnxruntime only): its per-node profile events so far
   * (tools/profile_step.py). */
  takeProfile() {
    try {
      return this.#send('end-profiling', {}).done;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The worker, for the bridge mode (openBridge) and tests. */
  _post(type, fields) { return this.#send(type, fields).done; }
}

/** Load a model in a worker: resolves with a ready Engine (engine.info says which backend runs, and why). */
export async function create(options = {}) {
  const engine = new Engine(options);
  return engine.load();
}

/** WebLLM's entry point, so a WebLLM snippet runs with its import and model id changed. */
export async function CreateMLCEngine(modelId, engineConfig = {}) {
  const { initProgressCallback, ...rest } = engineConfig || {};
  const t0 = performance.now();
  const onProgress = initProgressCallback ? (p) => {
    const progress = p.total ? p.loaded / p.total : p.phase === 'init' ? 1 : 0;
    initProgressCallback({ progress, timeElapsed: (performance.now() - t0) / 1000, text: p.message || `${p.phase}` });
  } : undefined;
  const known = Object.fromEntries(Object.entries(rest).filter(([k]) => LOAD_OPTIONS.includes(k)));
  return create({ ...known, model: modelId, onProgress });
}

/**
 * The model runtime alone, in a worker without Pyodide: for Python in the page's own Pyodide
 * (py/intab/tab.py), which runs the tokenizer, the template, the sampler and the loop itself.
 * {info, files, forward(ids, start, k), truncate(n), snapshot(), restore(snap), release()}.
 */
export async function openBridge(options = {}) {
  const engine = await create({ ...options, python: false });
  const call = (method, args = {}) => engine._post('bridge', { method, args });
  let kvLength = 0;
  const track = (v) => { kvLength = v.kvLength; return v; };
  return {
    info: engine.info,
    files: engine.info.files,
    backend: engine.info.backend,
    threads: engine.info.threads,
    get kvLength() { return kvLength; },
    async forward(ids, start, k, head) { return track(await call('forward', { ids: Array.from(ids), start, k, head })); },
    async truncate(n) { track(await call('truncate', { n })); },
    async snapshot() {
      const s = await call('snapshot');
      return { ...s, release: () => call('release_snapshot', { handle: s.handle }).catch(() => {}) };
    },
    async restore(snap) { track(await call('restore', { handle: snap.handle })); },
    release() { engine.unload(); },
  };
}
