// The Prompt API (webmachinelearning/prompt-api, as Chrome ships it) over intab's engine, so code
// written for the browser's built-in `LanguageModel` runs on intab with its import changed:
//
//   import { LanguageModel } from './intab.mjs';        // or intab.installPolyfill()
//   const session = await LanguageModel.create({ initialPrompts: [{ role: 'system', content: 'Be brief.' }] });
//   console.log(await session.prompt('Why is the sky blue?'));
//
// Every session is a conversation of its own on one shared engine per model (the engine keeps each
// conversation's KV cache, docs/api.md). Token counts are exact: intab's own tokenizer and the
// model's chat template. When a prompt does not fit, the oldest turns after the system prompt are
// dropped and `contextoverflow` fires; a prompt that cannot fit even alone rejects with
// QuotaExceededError. Errors carry the explainer's names (AbortError, InvalidStateError,
// QuotaExceededError, NotSupportedError) and, like all of intab's, a `hint`.

import { create } from './client.mjs';
import { CACHE_NAME } from './model_store.mjs';

const engines = new Map();   // model id ('' = the default) -> Promise<Engine>
const loading = new Set();
const MAX_TOP_K = 128;       // the head returns the candidates the sampler needs: topK up to this
const MAX_TEMPERATURE = 2;

function domError(name, message, hint = '', extra = {}) {
  return Object.assign(new DOMException(message, name), { hint, ...extra });
}

function abortError(signal) {
  const r = signal && signal.reason;
  return r instanceof Error ? r : domError('AbortError', typeof r === 'string' ? r : 'The operation was aborted.');
}

/** A Prompt API error from one of intab's (keeps name, message and hint; the original as cause). */
function translate(err) {
  if (err instanceof DOMException) return err;
  const name = err && err.name;
  if (name === 'PromptTooLong') return domError('QuotaExceededError', err.message, err.hint);
  if (['InvalidParameter', 'UnsupportedParameter', 'UnsupportedSchema', 'ConstraintError'].includes(name)) {
    return domError('NotSupportedError', err.message, err.hint);
  }
  if (name === 'Unloaded' || name === 'EngineCrashed') return domError('InvalidStateError', err.message, err.hint);
  return err;
}

function engineFor(options = {}, onProgress) {
  const key = options.model || '';
  if (!engines.has(key)) {
    loading.add(key);
    const p = create({ model: options.model, ...(options.backend ? { backend: options.backend } : {}), onProgress: (m) => onProgress?.(m) });
    p.finally(() => loading.delete(key)).catch(() => {});
    p.catch(() => engines.delete(key));
    engines.set(key, p);
    return p;
  }
  return engines.get(key);
}

const TEXT_ONLY = (list) => !list || list.every((x) => x && x.type === 'text' && (!x.languages || x.languages.every((l) => /^en\b/i.test(l))));

function checkExpected(options) {
  if (!TEXT_ONLY(options.expectedInputs) || !TEXT_ONLY(options.expectedOutputs)) {
    return 'intab runs text models, in English (expectedInputs/expectedOutputs: [{type: "text", languages: ["en"]}])';
  }
  return '';
}

/** Prompt API input -> [{role, content}] messages. */
function toMessages(input, allowSystem) {
  const list = typeof input === 'string' ? [{ role: 'user', content: input }] : input;
  if (!Array.isArray(list)) throw new TypeError('the input must be a string or a list of {role, content} messages');
  return list.map((m, i) => {
    if (!m || !['system', 'user', 'assistant'].includes(m.role)) throw new TypeError(`message ${i} needs a role of 'system', 'user' or 'assistant'`);
    if (m.role === 'system' && !(allowSystem && i === 0)) {
      throw domError('NotSupportedError', 'a system message can only come first, in initialPrompts', 'Put the system prompt in LanguageModel.create({initialPrompts}).');
    }
    if (m.prefix) throw domError('NotSupportedError', 'response prefixes (prefix: true) are not supported');
    let content = m.content;
    if (Array.isArray(content)) {
      content = content.map((part) => {
        if (part && part.type === 'text' && typeof part.value === 'string') return part.value;
        throw domError('NotSupportedError', `only text content is supported, not '${part && part.type}'`);
      }).join('');
    }
    if (typeof content !== 'string') throw new TypeError(`message ${i} needs text content`);
    return { role: m.role, content };
  });
}

/** responseConstraint -> the engine's constraint option and the text that describes it to the
 * model. A JSON Schema object becomes response_format json_schema; a RegExp the regex option
 * (the whole answer matches it; no flags, since the engine's regex has none). */
function constraintOf(rc) {
  if (rc == null) return null;
  if (rc instanceof RegExp) {
    if (rc.flags) throw domError('NotSupportedError', `a responseConstraint RegExp with flags (/${rc.source}/${rc.flags}) is not supported`, 'Drop the flags; write the cases out ([Aa]) instead of /i.');
    const source = rc.source.replace(/^\^/, '').replace(/(?<!\\)\$$/, '');   // the whole answer matches anyway
    return { option: { regex: source }, describe: `Respond with text that matches this regular expression: /${rc.source}/` };
  }
  let text;
  try { text = JSON.stringify(rc); } catch { text = undefined; }
  if (typeof rc !== 'object' || text === undefined) {
    throw domError('NotSupportedError', 'responseConstraint must be a JSON Schema object or a RegExp', 'Pass e.g. {type: "object", properties: {...}}.');
  }
  return { option: { response_format: { type: 'json_schema', json_schema: { name: 'response', schema: rc } } },
    describe: `Respond in JSON that conforms to this JSON Schema:\n${text}` };
}

/** The messages sent: the constraint's description after the last message's text (unless omitted). */
function described(messages, constraint, omit) {
  if (!constraint || omit || !messages.length) return messages;
  const last = messages[messages.length - 1];
  return [...messages.slice(0, -1), { ...last, content: `${last.content}\n\n${constraint.describe}` }];
}

export class LanguageModel extends EventTarget {
  #engine; #history; #keep; #usage; #destroyed = false; #chain = Promise.resolve(); #controllers = new Set();
  oncontextoverflow = null;

  /** Use LanguageModel.create(). */
  constructor(engine, history, keep, usage, { temperature, topK }) {
    super();
    this.#engine = engine;
    this.#history = history;
    this.#keep = keep;          // leading messages never dropped (the system prompt)
    this.#usage = usage;
    this.temperature = temperature;
    this.topK = topK;
  }

  /** 'available' (the model is here), 'downloadable', 'downloading' or 'unavailable'. */
  static async availability(options = {}) {
    if (checkExpected(options) || typeof WebAssembly !== 'object' || typeof Worker !== 'function') return 'unavailable';
    const key = options.model || '';
    if (loading.has(key)) return 'downloading';
    if (engines.has(key)) return 'available';
    try {
      const base = new URL('./', import.meta.url);
      const index = await (await fetch(new URL('models/index.json', base))).json();
      const ids = (index.models || []).map((m) => (typeof m === 'string' ? m : m.id));
      const id = options.model || ids[0];
      if (!ids.includes(id)) return 'unavailable';
      const manifest = await (await fetch(new URL(`models/${id}/manifest.json`, base))).json();
      const cache = await caches.open(CACHE_NAME);
      const keys = new Set((await cache.keys()).map((r) => r.url));
      const stored = manifest.files.filter((f) => f.name !== 'model.onnx')
        .every((f) => keys.has(`${new URL(`models/${id}/${f.name}`, base).href}?sha256=${f.sha256}`));
      return stored ? 'available' : 'downloadable';
    } catch {
      return 'downloadable';
    }
  }

  /** The sampling parameters a session may ask for. */
  static async params(options = {}) {
    const engine = engines.has(options.model || '') ? await engines.get(options.model || '') : null;
    const d = engine ? engine.info.defaults : {};
    return { defaultTopK: d.top_k || 1, maxTopK: MAX_TOP_K, defaultTemperature: d.temperature ?? 0, maxTemperature: MAX_TEMPERATURE };
  }

  /** A new session: {initialPrompts, monitor, signal, temperature, topK, expectedInputs, expectedOutputs, model}. */
  static async create(options = {}) {
    const { signal, monitor, initialPrompts = [], temperature, topK } = options;
    if (signal?.aborted) throw abortError(signal);
    const why = checkExpected(options);
    if (why) throw domError('NotSupportedError', why);
    if (temperature != null && !(typeof temperature === 'number' && temperature >= 0 && temperature <= MAX_TEMPERATURE)) {
      throw new RangeError(`temperature must be a number from 0 to ${MAX_TEMPERATURE}`);
    }
    if (topK != null && !(Number.isInteger(topK) && topK >= 1 && topK <= MAX_TOP_K)) throw new RangeError(`topK must be an integer from 1 to ${MAX_TOP_K}`);
    const history = toMessages(initialPrompts, true);
    const target = new EventTarget();
    let last = -1;
    const progress = (p) => {
      const frac = p.total ? p.loaded / p.total : p.phase === 'init' ? 1 : 0;
      if (p.phase === 'download' || frac === 1) {
        if (frac <= last) return;
        last = frac;
        target.dispatchEvent(new ProgressEvent('downloadprogress', { loaded: frac, total: 1, lengthComputable: true }));
      }
    };
    try { monitor?.(target); } catch (e) { console.error('intab: monitor threw', e); }
    const loaded = engineFor(options, progress);
    const engine = await (signal ? Promise.race([loaded, new Promise((_, rej) => signal.addEventListener('abort', () => rej(abortError(signal)), { once: true }))]) : loaded);
    if (last < 1) target.dispatchEvent(new ProgressEvent('downloadprogress', { loaded: 1, total: 1, lengthComputable: true }));
    const d = engine.info.defaults || {};
    const keep = history.length && history[0].role === 'system' ? 1 : 0;
    const usage = history.length ? await engine.countTokens(history, { addGenerationPrompt: false }).catch((e) => { throw translate(e); }) : 0;
    if (usage > engine.info.model.contextWindow) {
      throw domError('QuotaExceededError', `the initial prompts are ${usage} tokens; the context window holds ${engine.info.model.contextWindow}`,
        'Shorten the initial prompts.', { requested: usage, quota: engine.info.model.contextWindow });
    }
    return new LanguageModel(engine, history, keep, usage, { temperature: temperature ?? d.temperature ?? 0, topK: topK ?? (d.top_k || 1) });
  }

  get contextWindow() { return this.#engine.info.model.contextWindow; }
  get contextUsage() { return this.#usage; }
  // Earlier names of the same (Chrome 13x)
  get inputQuota() { return this.contextWindow; }
  get inputUsage() { return this.contextUsage; }

  #alive() {
    if (this.#destroyed) throw domError('InvalidStateError', 'this session was destroyed', 'Create a new session with LanguageModel.create().');
  }

  /** Runs `fn` after this session's earlier calls: one conversation, in order. */
  #serial(fn) {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  #room() { return Math.min(512, Math.floor(this.contextWindow / 4)); }

  /** The messages to send for `added`, dropping the oldest turns if they do not fit (contextoverflow). */
  async #fit(added, reserve) {
    let msgs = [...this.#history, ...added];
    let n = await this.#engine.countTokens(msgs);
    let dropped = false;
    while (n + reserve > this.contextWindow && msgs.length - this.#keep > added.length) {
      msgs.splice(this.#keep, 1);
      while (msgs.length - this.#keep > added.length && msgs[this.#keep].role !== 'user') msgs.splice(this.#keep, 1);
      dropped = true;
      n = await this.#engine.countTokens(msgs);
    }
    if (n + (reserve ? 1 : 0) > this.contextWindow) {
      throw domError('QuotaExceededError', `the input needs ${n} tokens; the context window holds ${this.contextWindow}`,
        'Shorten the input, or split it over several prompts.', { requested: n, quota: this.contextWindow });
    }
    if (dropped) {
      this.#history = msgs.slice(0, msgs.length - added.length);
      const ev = new Event('contextoverflow');
      this.dispatchEvent(ev);
      try { this.oncontextoverflow?.(ev); } catch (e) { console.error(e); }
    }
    return msgs;
  }

  async #run(input, options, onDelta) {
    this.#alive();
    const { signal, responseConstraint, omitResponseConstraintInput } = options || {};
    const constraint = constraintOf(responseConstraint);
    if (signal?.aborted) throw abortError(signal);
    const added = described(toMessages(input, false), constraint, omitResponseConstraintInput);
    const ctrl = new AbortController();
    this.#controllers.add(ctrl);
    const onAbort = () => ctrl.abort(signal.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const msgs = await this.#fit(added, this.#room());
      if (ctrl.signal.aborted) throw abortError(ctrl.signal);
      const opts = { temperature: this.temperature, ...(this.temperature > 0 ? { top_k: this.topK } : {}), ...(constraint?.option || {}) };
      const r = await this.#engine.generate('chat', msgs, opts, { signal: ctrl.signal, onDelta });
      if (r.finish_reason === 'abort') throw abortError(ctrl.signal.aborted ? ctrl.signal : signal);
      this.#history = [...msgs, { role: 'assistant', content: r.text }];
      this.#usage = await this.#engine.countTokens(this.#history, { addGenerationPrompt: false });
      return r.text;
    } catch (err) {
      throw translate(err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#controllers.delete(ctrl);
    }
  }

  /** The model's answer to `input` (a string, or messages), as one string. */
  prompt(input, options = {}) {
    return this.#serial(() => this.#run(input, options));
  }

  /** The answer as a ReadableStream of text pieces (cancelling the stream stops the answer). */
  promptStreaming(input, options = {}) {
    const ctrl = new AbortController();
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) ctrl.abort(outer.reason);
      else outer.addEventListener('abort', () => ctrl.abort(outer.reason), { once: true });
    }
    let controller;
    const stream = new ReadableStream({
      start: (c) => { controller = c; },
      cancel: (reason) => ctrl.abort(reason),
    });
    this.#serial(() => this.#run(input, { ...options, signal: ctrl.signal }, (d) => { if (d.text) controller.enqueue(d.text); }))
      .then(() => controller.close(), (err) => { try { controller.error(err); } catch { /* cancelled */ } });
    return stream;
  }

  /** Add `input` to the conversation without an answer (it is prefilled with the next prompt). */
  append(input, options = {}) {
    return this.#serial(async () => {
      this.#alive();
      if (options.signal?.aborted) throw abortError(options.signal);
      const added = toMessages(input, false);
      try {
        const msgs = await this.#fit(added, 0);
        this.#history = msgs;
        this.#usage = await this.#engine.countTokens(msgs, { addGenerationPrompt: false });
      } catch (err) {
        throw translate(err);
      }
    });
  }

  /** Tokens `input` would add to this conversation (exact: the chat template applied). */
  async measureContextUsage(input, options = {}) {
    this.#alive();
    if (options.signal?.aborted) throw abortError(options.signal);
    const added = described(toMessages(input, false), constraintOf(options.responseConstraint), options.omitResponseConstraintInput);
    try {
      const withIt = await this.#engine.countTokens([...this.#history, ...added]);
      const without = this.#history.length ? await this.#engine.countTokens(this.#history, { addGenerationPrompt: false }) : 0;
      return withIt - without;
    } catch (err) {
      throw translate(err);
    }
  }
  measureInputUsage(input, options) { return this.measureContextUsage(input, options); }

  /** A session with this one's conversation so far, continuing on its own. */
  async clone(options = {}) {
    this.#alive();
    if (options.signal?.aborted) throw abortError(options.signal);
    await this.#chain;
    return new LanguageModel(this.#engine, this.#history.slice(), this.#keep, this.#usage, { temperature: this.temperature, topK: this.topK });
  }

  /** End the session: running calls reject with AbortError, later ones with InvalidStateError. */
  destroy() {
    this.#destroyed = true;
    for (const c of this.#controllers) c.abort(domError('AbortError', 'the session was destroyed'));
  }
}

/** Define globalThis.LanguageModel as intab's where the browser has none of its own. */
export function installPolyfill() {
  if (!('LanguageModel' in globalThis)) {
    Object.defineProperty(globalThis, 'LanguageModel', { value: LanguageModel, writable: true, configurable: true });
    return true;
  }
  return false;
}
