// <intab-chat>: a chat with a model running in this tab, as a custom element over intab's client
// (client.mjs: intab.create, engine.chat.completions.create). docs/embedding.md shows it in use.
//
//   <intab-chat system="Answer briefly." max-tokens="256"></intab-chat>
//
// Attributes (all optional; generation ones are read at each send):
//   model, backend ('auto'|'wasm'|'webgpu'), threads, kernel ('auto'|'intab'|'ort'): the engine the
//       element creates for itself (changing one later loads that engine; the conversation stays)
//   shared-engine: create none; wait for the `engine` property (several elements, one engine)
//   persist: keep the conversation in this browser (IndexedDB, web/conversation_store.mjs) under
//       the attribute's value ('' = 'default'; one key per element of a page), restored on load
//   system, placeholder, temperature, top-p, top-k, min-p, repetition-penalty, max-tokens, seed,
//   context-overflow ('error': a conversation too long for the model is refused, with what to do;
//   'drop_oldest': its oldest turns are left out, and the answer says so)
// Properties: engine (an engine from intab.create, or a promise of one), engineOptions (more
//   options for intab.create, e.g. {memory: 'low'}), messages (the conversation: [{role, content}];
//   a leading system message given to it becomes `system`), state ('idle'|'loading'|'ready'|
//   'generating'|'error'), info (engine.info), ready (a promise of the engine).
// Methods: send(text) -> {message, finish_reason, usage, intab}, stop(), clear(), focus().
// Events (bubble, composed): intab-progress {progress}, intab-ready {info}, intab-state {state},
//   intab-restored {messages} (persist: the stored conversation is back),
//   intab-message {message, finish_reason?, usage?, intab?}, once per message added,
//   intab-error {name, message, hint, param, fatal}.
// The element creates its engine one task after it is connected, so a script that configures it
// (engine, engineOptions, attributes) in the same task as it creates or defines it is in time.
//
// Test hooks (tests/browser/app_driver.py): ids inside the open shadow root (#status with
// data-backend / data-threads / data-kernel, #load-*, #notices, #error, #retry, #log, #prompt,
// #send, #stop, #new-chat, and with a conversation too long for the model #overflow-new-chat and
// #overflow-drop-oldest in #error); each finished answer (.msg.assistant) has data-finish-reason,
// data-token-ids (JSON), data-tok-s and data-ttft-ms.

import { MarkdownView } from './markdown.mjs';
import { elementSheet } from './element_style.mjs';
import { loadConversation, saveConversation } from './conversation_store.mjs';

// Where intab.create comes from when the element makes its own engine: imported only then, so a
// page that hands every element an engine never loads it twice.
const CLIENT_URL = new URL('./intab.mjs', import.meta.url).href;

const GENERATION_ATTRS = {
  temperature: ['temperature', Number],
  'top-p': ['top_p', Number],
  'top-k': ['top_k', Number],
  'min-p': ['min_p', Number],
  'repetition-penalty': ['repetition_penalty', Number],
  'max-tokens': ['max_tokens', Number],
  seed: ['seed', Number],
  'context-overflow': ['context_overflow', String],
};
const ENGINE_ATTRS = ['model', 'backend', 'threads', 'kernel'];
const DEFAULT_PLACEHOLDER = 'Type a message — Enter sends, Shift+Enter adds a line';

/** An error of the element itself, shaped as intab's errors are: name, message, hint, param. */
export class ChatError extends Error {
  constructor(name, message, { hint = '', param = undefined } = {}) {
    super(message);
    this.name = name;
    this.hint = hint;
    if (param !== undefined) this.param = param;
  }
}

/** {name, message, hint, param} of any rejection (intab's typed errors carry all four). */
function describe(err) {
  if (err && typeof err === 'object') {
    return {
      name: String(err.name || 'Error'), message: String(err.message ?? err),
      hint: err.hint ? String(err.hint) : '', param: err.param,
    };
  }
  return { name: 'Error', message: String(err), hint: '', param: undefined };
}

const size = (b) => (b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(1)} kB`);
function timeLeft(s) {
  if (s < 1) return 'less than a second left';
  if (s < 90) return `about ${Math.ceil(s)} s left`;
  return `about ${Math.round(s / 60)} min left`;
}

/** A small element builder for the shadow tree (no HTML strings: a Trusted Types host is fine). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...children);
  return el;
}

export class IntabChat extends HTMLElement {
  static observedAttributes = [...ENGINE_ATTRS, 'placeholder', 'shared-engine'];

  #els = null;
  #state = 'idle';
  #engine = null;          // the engine in use, once ready
  #own = false;            // whether this element created it (and so unloads it)
  #loadToken = 0;          // bumped by every load / engine change: late results of an old one are dropped
  #loadAbort = null;
  #ready = null;           // {promise, resolve, reject} of the current engine
  #messages = [];          // the conversation (system prompt excluded: that is `system`)
  #turn = null;            // the answer being written
  #lastSpeed = '';
  #autoloadTimer = 0;
  #crashed = null;         // shows the crash once the answer it broke has failed
  #restarting = null;      // an own engine that crashed and is restarting (unloaded if dropped)
  #restored = null;        // persist: the promise of the stored conversation's restore
  #internals = null;
  engineOptions = {};

  constructor() {
    super();
    this.#internals = this.attachInternals?.() ?? null;
    this.#newReady();
  }

  // ---------------------------------------------------------------- lifecycle
  connectedCallback() {
    if (!this.#els) this.#build();
    if (this.hasAttribute('persist') && !this.#restored) this.#restored = this.#restore();
    if (!this.#engine && !this.#loadAbort && !this.hasAttribute('shared-engine')) {
      clearTimeout(this.#autoloadTimer);
      this.#autoloadTimer = setTimeout(() => {
        if (this.isConnected && !this.#engine && !this.#loadAbort && !this.hasAttribute('shared-engine')) this.#load();
      }, 0);
    }
  }

  disconnectedCallback() {
    // Moving the element (disconnect + connect in one task) keeps its engine; removing it frees it.
    setTimeout(() => {
      if (this.isConnected) return;
      clearTimeout(this.#autoloadTimer);
      if (this.#own) this.#dropEngine();
    }, 0);
  }

  attributeChangedCallback(name, old, value) {
    if (!this.#els || old === value) return;
    if (name === 'placeholder') this.#els.prompt.placeholder = value ?? DEFAULT_PLACEHOLDER;
    else if (ENGINE_ATTRS.includes(name) && (this.#own || this.#loadAbort)) {
      // Another model or backend: load it (the conversation stays; the next answer re-reads it).
      clearTimeout(this.#autoloadTimer);
      this.#autoloadTimer = setTimeout(() => this.isConnected && this.#reload(), 0);
    } else if (name === 'shared-engine' && value === null) this.connectedCallback();
  }

  // ---------------------------------------------------------------- public API
  get state() { return this.#state; }
  get info() { return this.#engine?.info ?? null; }
  get ready() { return this.#ready.promise; }

  get engine() { return this.#engine; }
  set engine(value) {
    clearTimeout(this.#autoloadTimer);
    if (value === this.#engine) return;
    if (this.#own) this.#dropEngine();
    this.#loadAbort?.abort();
    this.#loadAbort = null;
    const token = ++this.#loadToken;
    this.#engine = null;
    this.#own = false;
    if (!value) { this.#newReady(); this.#setState('idle'); this.#status('No engine'); return; }
    if (typeof value.then === 'function') {
      if (this.#els) this.#showLoading('Waiting for the engine…');
      Promise.resolve(value).then((engine) => token === this.#loadToken && this.#useEngine(engine, false),
        (err) => token === this.#loadToken && this.#fatal(err, false));
    } else {
      this.#useEngine(value, false);
    }
  }

  get system() { return this.getAttribute('system') ?? ''; }
  set system(v) { if (v) this.setAttribute('system', v); else this.removeAttribute('system'); }

  /** The conversation so far (user and assistant messages; the system prompt is `system`). */
  get messages() { return structuredClone(this.#messages); }
  set messages(list) {
    if (this.#turn) throw new ChatError('InvalidStateError', 'cannot replace the conversation while an answer is being written',
      { hint: 'call stop() first, or wait for the answer' });
    const items = Array.from(list ?? [], (m) => ({ role: String(m?.role ?? ''), content: String(m?.content ?? '') }));
    const bad = items.find((m, i) => !['user', 'assistant', 'system'].includes(m.role) || (m.role === 'system' && i > 0));
    if (bad) throw new ChatError('InvalidParameter', `messages: role '${bad.role}' is not allowed here`,
      { hint: "use 'user' and 'assistant' messages; a system prompt goes first, or in the system attribute", param: 'messages' });
    if (items[0]?.role === 'system') this.system = items.shift().content;
    this.#messages = items;
    this.#save();
    if (!this.#els) return;
    this.#els.log.replaceChildren();
    this.#clearError();
    for (const m of items) this.#addMessage(m.role, m.content);
    this.#syncEmpty();
  }

  /** Focus the message box. */
  focus(options) {
    if (this.#els) this.#els.prompt.focus(options); else super.focus(options);
  }

  /** Send a user message and stream the answer into the log. Resolves when the answer is done
   * (also after stop(): finish_reason 'abort'); rejects with the typed error (also shown, and
   * dispatched as intab-error) when the turn fails, which then leaves the conversation as it was. */
  async send(text) {
    if (typeof text !== 'string' || !text.trim()) {
      throw new ChatError('InvalidParameter', 'send() needs a message with some text', { param: 'text', hint: 'pass a non-empty string' });
    }
    if (this.#turn) {
      throw new ChatError('InvalidStateError', 'an answer is still being written',
        { hint: 'wait for it (the promise of the previous send) or call stop()' });
    }
    if (!this.#els) this.#build();
    const engine = this.#engine ?? await this.ready;
    if (this.#turn) throw new ChatError('InvalidStateError', 'an answer is still being written', { hint: 'wait for it or call stop()' });
    const options = this.#generationOptions();   // throws InvalidParameter, before anything changes
    this.#clearError();
    const userIndex = this.#messages.length;
    const user = { role: 'user', content: text };   // sent as typed: the model sees exactly this
    this.#messages.push(user);
    const userEl = this.#addMessage('user', text).li;
    this.#emit('intab-message', { message: { ...user } });
    const a = this.#addMessage('assistant', '');
    a.li.classList.add('streaming');
    a.li.setAttribute('aria-busy', 'true');
    a.li.part.add('streaming');
    const turn = {
      abort: new AbortController(), li: a.li, view: new MarkdownView(a.content), text: '', userEl, userIndex,
      t0: performance.now(), tFirst: null, hadFocus: this.#hasFocus(),
    };
    // Follow the answer down as it grows, unless the reader scrolled up to read something else.
    turn.view.around = (render) => { const follow = this.#atBottom(); render(); if (follow) this.#scrollToEnd(); };
    this.#turn = turn;
    this.#setState('generating');
    const conversation = this.system.trim() ? [{ role: 'system', content: this.system }, ...this.#messages] : [...this.#messages];
    let finish = null;
    let usage = null;
    let extra = null;
    try {
      const stream = await engine.chat.completions.create({
        ...options, messages: conversation, stream: true, stream_options: { include_usage: true }, signal: turn.abort.signal,
      });
      for await (const chunk of stream) {
        const choice = chunk.choices?.[0];
        const piece = choice?.delta?.content;
        if (piece) {
          if (turn.tFirst === null) turn.tFirst = performance.now();
          turn.text += piece;
          turn.view.update(turn.text);
        }
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (chunk.usage) usage = chunk.usage;
        if (chunk.intab) extra = chunk.intab;
      }
    } catch (err) {
      if (this.#turn === turn) this.#failTurn(turn, err);
      throw err;
    }
    if (this.#turn !== turn) return { message: { role: 'assistant', content: turn.text }, finish_reason: 'abort', usage, intab: extra };
    return this.#finishTurn(turn, finish || 'stop', usage, extra);
  }

  /** End the answer being written (it is kept, as far as it got, with finish_reason 'abort'). */
  stop() { this.#turn?.abort.abort(); }

  /** A new conversation: ends a running answer, forgets the messages. */
  clear() {
    const t = this.#turn;
    if (t) { t.abort.abort(); t.view.finish(); this.#turn = null; }
    this.#messages = [];
    this.#save();
    if (this.#els) { this.#els.log.replaceChildren(); this.#clearError(); this.#syncEmpty(); }
    if (this.#engine) this.#setState('ready');
  }

  // ---------------------------------------------------------------- persistence
  get #persistKey() { return this.getAttribute('persist') || 'default'; }

  /** The stored conversation, unless one was started (or set) before it was read. */
  async #restore() {
    try {
      const kept = await loadConversation(this.#persistKey);
      if (!kept || this.#messages.length || this.#turn) return;
      this.messages = kept.system ? [{ role: 'system', content: kept.system }, ...kept.messages] : kept.messages;
      this.#emit('intab-restored', { messages: this.messages });
    } catch (e) {
      console.warn(`intab-chat: the stored conversation could not be read: ${e.message}`);
    }
  }

  /** Keep the conversation as it is now (after each answer, a failed turn, New chat, a set). */
  #save() {
    if (!this.hasAttribute('persist')) return;
    const snapshot = { system: this.system, messages: this.#messages };
    const key = this.#persistKey;
    // After the restore: a save first would overwrite the stored conversation with this empty one.
    Promise.resolve(this.#restored).then(() => saveConversation(key, snapshot))
      .catch((e) => console.warn(`intab-chat: the conversation could not be stored: ${e.message}`));
  }

  // ---------------------------------------------------------------- engine
  #newReady() {
    let resolve; let reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => {});   // a failed load is shown and dispatched; nobody has to await it
    this.#ready = { promise, resolve, reject };
  }

  async #load() {
    const token = ++this.#loadToken;
    const abort = new AbortController();
    this.#loadAbort = abort;
    this.#showLoading('Starting…');
    const opts = {
      ...this.engineOptions,
      model: this.getAttribute('model') || this.engineOptions.model || undefined,
      backend: this.getAttribute('backend') || this.engineOptions.backend || 'auto',
      kernel: this.getAttribute('kernel') || this.engineOptions.kernel || undefined,
      signal: abort.signal,
      onProgress: (p) => { if (token === this.#loadToken) { this.#progress(p); this.#emit('intab-progress', { progress: p }); } },
    };
    if (this.hasAttribute('threads')) opts.threads = Number(this.getAttribute('threads'));
    for (const k of Object.keys(opts)) if (opts[k] === undefined) delete opts[k];
    try {
      const { create } = await import(CLIENT_URL);
      const engine = await create(opts);
      if (token !== this.#loadToken) { engine.unload?.(); return; }
      this.#loadAbort = null;
      this.#useEngine(engine, true);
    } catch (err) {
      if (token !== this.#loadToken) return;
      this.#loadAbort = null;
      this.#fatal(err, true);
    }
  }

  /** Load the engine again from the attributes and engineOptions (e.g. a GGUF File just put in
   * engineOptions.model); the conversation stays. */
  reload() {
    clearTimeout(this.#autoloadTimer);
    this.#clearError();
    this.#renderNotices([]);
    this.#reload();
  }

  #reload() {
    if (this.#turn) this.clear();
    this.#dropEngine();
    this.#newReady();
    this.#load();
  }

  #dropEngine() {
    this.#loadAbort?.abort();
    this.#loadAbort = null;
    this.#loadToken++;
    const engine = this.#engine;
    if (this.#turn) { this.#turn.abort.abort(); this.#turn = null; }
    if (engine && this.#own) Promise.resolve().then(() => engine.unload?.()).catch(() => {});
    const restarting = this.#restarting;
    this.#restarting = null;
    if (restarting) Promise.resolve().then(() => restarting.unload?.()).catch(() => {});
    this.#engine = null;
    this.#own = false;
  }

  #useEngine(engine, own) {
    this.#engine = engine;
    this.#own = own;
    const token = this.#loadToken;
    // The worker died (out of memory, say): the conversation stays, the answer being written
    // fails as any failed turn does, and Retry (own engine) loads a new one.
    engine.addEventListener?.('crash', (ev) => {
      if (token !== this.#loadToken || this.#engine !== engine) return;
      this.#engine = null;
      this.#restarting = own ? engine : null;   // the client restarts it (its 'restart' event)
      this.#newReady();
      this.#crashed = () => this.#fatal(ev.detail, own, true);
      if (!this.#turn) this.#afterCrash();
    }, { once: true });
    // The client restarted it with a new worker: the same engine again, the conversation as it was
    // (a turn the crash broke is back in the message box, marked as not sent).
    engine.addEventListener?.('restart', (ev) => {
      if (token !== this.#loadToken || this.#engine) return;
      this.#restarting = null;
      this.#crashed = null;
      this.#clearError();
      const why = describe(ev.detail?.cause);
      this.#renderNotices([`The model stopped (${why.name}: ${why.message}) and was restarted; the conversation is kept.`]);
      this.#newReady();
      this.#useEngine(engine, own);
    }, { once: true });
    if (!this.#els) this.#build();
    this.#els.loading.hidden = true;
    this.#renderStatus();
    this.#setState('ready');
    this.#ready.resolve(engine);
    this.#emit('intab-ready', { info: engine.info });
  }

  #afterCrash() {
    const show = this.#crashed;
    this.#crashed = null;
    show?.();
  }

  #fatal(err, own, crashed = false) {
    const e = describe(err);
    if (!this.#els) this.#build();
    this.#showError(e, { fatal: crashed ? 'The model stopped; the conversation is kept.' : 'The model could not start.', retry: own });
    this.#els.loading.hidden = true;
    this.#status('Not running');
    this.#setState('error');
    this.#ready.reject(err);
    this.#emit('intab-error', { ...e, fatal: true });
  }

  #retry() {
    this.#clearError();
    this.#renderNotices([]);
    this.#newReady();
    this.#dropEngine();
    this.#load();
  }

  // ---------------------------------------------------------------- turns
  #generationOptions() {
    const opts = {};
    for (const [attr, [key, type]] of Object.entries(GENERATION_ATTRS)) {
      const raw = this.getAttribute(attr);
      if (raw === null || raw.trim() === '') continue;
      if (type === String) { opts[key] = raw.trim(); continue; }   // the engine checks its values
      const v = Number(raw);
      if (!Number.isFinite(v)) {
        throw this.#reject(new ChatError('InvalidParameter', `${attr}='${raw}' is not a number`,
          { param: key, hint: `set ${attr} to a number, or remove it for the model's default` }));
      }
      opts[key] = v;
    }
    return opts;
  }

  /** Show and dispatch an error that does not end the engine; returns it (to throw). failedEl: the
   * message that was not sent, which a conversation too long for the model offers to send again. */
  #reject(err, failedEl = null) {
    const e = describe(err);
    this.#showError(e);
    if (e.name === 'PromptTooLong' && failedEl) this.#offerOverflowActions(failedEl);
    this.#emit('intab-error', { ...e, fatal: false });
    return err;
  }

  #finishTurn(turn, finishReason, usage, extra) {
    const follow = this.#atBottom();
    turn.view.finish(turn.text);
    const li = turn.li;
    li.classList.remove('streaming');
    li.part.remove('streaming');
    li.removeAttribute('aria-busy');
    const x = extra || {};
    const ids = Array.isArray(x.token_ids) ? x.token_ids : [];
    li.dataset.tokenIds = JSON.stringify(ids);
    li.dataset.finishReason = finishReason;
    const message = { role: 'assistant', content: turn.text };
    this.#messages.push(message);
    this.#save();
    const ms = performance.now() - turn.t0;
    const ttft = typeof x.ttft_ms === 'number' ? x.ttft_ms : (turn.tFirst ? turn.tFirst - turn.t0 : NaN);
    const n = usage?.completion_tokens ?? ids.length;
    const tps = typeof x.decode_tok_s === 'number' && x.decode_tok_s > 0 ? x.decode_tok_s : n / (ms / 1000);
    li.dataset.tokS = String(tps);
    li.dataset.ttftMs = String(ttft);
    const meta = h('span', { class: 'meta', part: 'meta' });
    meta.textContent = `${n} token${n === 1 ? '' : 's'} · ${tps.toFixed(1)} tok/s · first token ${(ttft / 1000).toFixed(2)} s` +
      (finishReason === 'abort' ? ' · stopped' : finishReason === 'length' ? ' · hit max tokens' : '') +
      (x.dropped_messages > 0 ? ` · the ${x.dropped_messages} oldest message${x.dropped_messages === 1 ? '' : 's'} no longer fit and were left out` : '');
    li.append(meta);
    if (turn.text) this.#addCopy(li, turn.text);
    if (follow) this.#scrollToEnd();
    this.#lastSpeed = `last answer ${tps.toFixed(1)} tok/s, first token ${(ttft / 1000).toFixed(2)} s`;
    this.#turn = null;
    this.#setState('ready');
    this.#renderStatus();
    if (turn.hadFocus && !this.#hasFocus() && document.activeElement === document.body) this.#els.prompt.focus();
    const detail = { message: { ...message }, finish_reason: finishReason, usage, intab: extra };
    this.#emit('intab-message', detail);
    return detail;
  }

  #failTurn(turn, err) {
    // The turn did not happen: the user message leaves the conversation, stays on screen marked
    // as not sent, and its text goes back into the box to be sent again.
    turn.view.finish('');
    turn.li.remove();
    turn.userEl.classList.add('failed');
    turn.userEl.part.add('failed');
    this.#messages.length = turn.userIndex;
    this.#save();
    const prompt = this.#els.prompt;
    if (!prompt.value) prompt.value = this.#textOf(turn.userEl);
    this.#turn = null;
    this.#reject(err, turn.userEl);
    this.#setState(this.#engine ? 'ready' : 'error');
    this.#afterCrash();
  }

  /** A "Copy" button for an answer: its Markdown text, as the model wrote it. */
  #addCopy(li, text) {
    const b = h('button', { type: 'button', class: 'copy secondary', part: 'button copy-button', text: 'Copy', 'aria-label': 'Copy this answer' });
    b.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = 'Copied';
      } catch {
        b.textContent = 'Copy failed';   // no clipboard here (an insecure context, or refused)
      }
      setTimeout(() => { b.textContent = 'Copy'; }, 1500);
    });
    li.append(b);
  }

  #textOf(li) { return li.querySelector('.content')?.textContent ?? ''; }

  // ---------------------------------------------------------------- rendering
  #build() {
    const root = this.shadowRoot ?? this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [elementSheet()];
    const els = {};
    els.status = h('p', { id: 'status', class: 'status', part: 'status', role: 'status' });
    els.loadPhase = h('p', { id: 'load-phase', text: 'Starting…' });
    els.loadBar = h('progress', { id: 'load-bar', max: 1, 'aria-labelledby': 'load-phase', part: 'progress-bar' });
    els.loadDetail = h('p', { id: 'load-detail', class: 'detail' });
    els.loadFiles = h('ul', { id: 'load-files', class: 'load-files', 'aria-label': 'Model files' });
    els.loading = h('section', { id: 'loading', class: 'loading', part: 'progress', 'aria-label': 'Loading the model', hidden: true },
      els.loadPhase, els.loadBar, els.loadDetail, els.loadFiles);
    els.notices = h('div', { id: 'notices', class: 'notices', part: 'notices', role: 'status' });
    els.error = h('div', { id: 'error', class: 'error', part: 'error', role: 'alert', hidden: true });
    els.log = h('div', { id: 'log', class: 'log', part: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation', tabindex: 0 });
    els.empty = h('p', { id: 'empty', class: 'empty', part: 'empty', text: 'Ask anything. The model is small: short, simple questions work best.' });
    els.log.append(els.empty);
    els.prompt = h('textarea', { id: 'prompt', part: 'input', rows: 2, 'aria-label': 'Your message', placeholder: this.getAttribute('placeholder') ?? DEFAULT_PLACEHOLDER, enterkeyhint: 'send' });
    els.send = h('button', { id: 'send', type: 'submit', part: 'button send-button', text: 'Send', disabled: true });
    els.stop = h('button', { id: 'stop', type: 'button', class: 'secondary', part: 'button stop-button', text: 'Stop', disabled: true, 'aria-keyshortcuts': 'Escape' });
    els.newChat = h('button', { id: 'new-chat', type: 'button', class: 'secondary', part: 'button new-chat-button', text: 'New chat' });
    els.composer = h('form', { id: 'composer', class: 'composer', part: 'composer', autocomplete: 'off', 'aria-label': 'Message' },
      els.prompt, h('div', { class: 'buttons', part: 'buttons' }, els.send, els.stop, els.newChat));
    root.replaceChildren(h('div', { class: 'frame', part: 'frame' },
      h('div', { class: 'head', part: 'header' }, els.status), els.loading, els.notices, els.log, els.error, els.composer));
    this.#els = els;

    els.composer.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = els.prompt.value;
      if (this.#state !== 'ready' || !text.trim()) return;
      els.prompt.value = '';
      this.send(text).catch(() => {});   // shown in the element and dispatched as intab-error
    });
    els.prompt.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        els.composer.requestSubmit();
      }
    });
    root.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.#turn) { ev.preventDefault(); this.stop(); }
    });
    els.stop.addEventListener('click', () => this.stop());
    els.newChat.addEventListener('click', () => { this.clear(); els.prompt.focus(); });
    for (const m of this.#messages) this.#addMessage(m.role, m.content);
    this.#syncEmpty();
    this.#status(this.hasAttribute('shared-engine') ? 'Waiting for an engine…' : 'Loading…');
    this.#syncControls();
  }

  #addMessage(role, text) {
    const who = role === 'user' ? 'You' : role === 'assistant' ? 'Assistant' : 'System';
    const content = h('div', { class: 'content', part: 'content' });
    const li = h('div', { class: `msg ${role}`, part: `message ${role}` }, h('span', { class: 'who', part: 'who', text: who }), content);
    if (role === 'assistant') {
      new MarkdownView(content).finish(text);
      if (text) this.#addCopy(li, text);
    } else {
      content.textContent = text;
    }
    this.#els.log.append(li);
    this.#syncEmpty();
    this.#scrollToEnd();
    return { li, content };
  }

  #syncEmpty() {
    const els = this.#els;
    const has = els.log.querySelector('.msg') !== null;
    els.empty.hidden = has;
    if (!has && els.empty.parentNode !== els.log) els.log.append(els.empty);
  }

  #atBottom() {
    const l = this.#els.log;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 48;
  }

  #scrollToEnd() { const l = this.#els.log; l.scrollTop = l.scrollHeight; }

  #hasFocus() { return !!this.shadowRoot?.activeElement; }

  #setState(state) {
    const changed = state !== this.#state;
    this.#state = state;
    if (this.#internals?.states) {
      try {
        for (const s of ['idle', 'loading', 'ready', 'generating', 'error']) this.#internals.states.delete(s);
        this.#internals.states.add(state);
      } catch { /* CustomStateSet without plain idents (older browsers): the property is enough */ }
    }
    if (this.#els) this.#syncControls();
    if (changed) this.#emit('intab-state', { state });
  }

  #syncControls() {
    const els = this.#els;
    const s = this.#state;
    els.send.disabled = s !== 'ready';
    els.stop.disabled = s !== 'generating';
    els.log.setAttribute('aria-busy', String(s === 'generating'));
  }

  #showLoading(phase) {
    const els = this.#els;
    if (!els) return;
    this.#clearError();
    els.loadFiles.replaceChildren();
    els.loadDetail.textContent = '';
    els.loadPhase.textContent = phase;
    els.loadBar.removeAttribute('value');
    els.loading.hidden = false;
    this.#status('Loading…');
    this.#setState('loading');
  }

  #progress(p) {
    const els = this.#els;
    if (p.notices) this.#renderNotices(p.notices);
    if (p.phase === 'download' && p.total) {
      const pct = (100 * p.loaded) / p.total;
      els.loadPhase.textContent = `Loading the model: ${pct.toFixed(0)}%`;
      els.loadBar.value = p.loaded / p.total;
      els.loadDetail.textContent = p.otherTab
        ? 'Waiting for another tab of this site, which is downloading the model: its copy is then read from this device.'
        : `${size(p.loaded)} of ${size(p.total)} · ${pct.toFixed(0)}%` +
          (p.loaded < p.total && p.eta != null ? ` · ${timeLeft(p.eta)}` : '');
      this.#renderFiles(p.files || []);
      this.#status(`Loading… ${pct.toFixed(0)}%`);
    } else {
      els.loadPhase.textContent = p.message || 'Loading…';
      if (p.phase !== 'download') els.loadBar.removeAttribute('value'); // indeterminate
    }
  }

  /** One row per model file: name, a bar, and bytes, percent and time left (or where it came from). */
  #renderFiles(files) {
    const list = this.#els.loadFiles;
    const rows = list.children;
    if (rows.length !== files.length) {
      list.replaceChildren(...files.map((f) => {
        const li = h('li', { part: 'file' }, h('span', { class: 'name', text: f.name }),
          h('progress', { max: 1, 'aria-label': f.name }), h('span', { class: 'text' }));
        li.dataset.name = f.name;
        return li;
      }));
    }
    files.forEach((f, i) => {
      const li = rows[i];
      const frac = f.total ? f.loaded / f.total : 1;
      li.children[1].value = frac;
      let text;
      if (f.done && f.source === 'file') text = `${size(f.total)} · read in this tab`;   // a GGUF opened in the tab
      else if (f.done) text = f.cached ? `${size(f.total)} · stored copy, checked` : `${size(f.total)} · downloaded, checked`;
      else if (f.source === 'file') text = `reading the file · ${(100 * frac).toFixed(0)}%`;
      else if (f.source === 'cache') text = `checking the stored copy · ${(100 * frac).toFixed(0)}%`;
      else if (f.source === 'tab') text = 'waiting for another tab';
      else if (f.source === 'network') text = `${size(f.loaded)} of ${size(f.total)} · ${(100 * frac).toFixed(0)}%${f.eta != null ? ` · ${timeLeft(f.eta)}` : ''}`;
      else text = 'waiting';
      li.children[2].textContent = text;
      li.dataset.state = f.done ? 'done' : (f.source || 'waiting');
    });
  }

  /** Lines about storage for the user (a healed cache entry, running from memory): one each. */
  #renderNotices(lines) {
    const box = this.#els.notices;
    const now = [...box.children].map((p) => p.textContent);
    if (now.length === lines.length && now.every((t, i) => t === lines[i])) return;
    box.replaceChildren(...lines.map((t) => h('p', { class: 'notice', part: 'notice', text: t })));
  }

  #status(text) { if (this.#els) this.#els.status.textContent = text; }

  #renderStatus() {
    const i = this.#engine?.info;
    const el = this.#els.status;
    if (!i) return;
    const adapter = i.adapterInfo || null;
    let s = i.backend === 'webgpu'
      ? `WebGPU${adapter?.architecture ? ` (${adapter.architecture}${i.shaderF16 ? ', f16' : ''})` : ''}`
      : `WASM${i.kernel === 'ort' ? ' (onnxruntime)' : ''}, ${i.threads} thread${i.threads === 1 ? '' : 's'}` +
        (i.crossOriginIsolated === false ? ' (page not cross-origin isolated)' : '');
    if (typeof i.loadMs === 'number') s += ` · loaded in ${(i.loadMs / 1000).toFixed(1)} s`;
    if (this.#lastSpeed) s += ` · ${this.#lastSpeed}`;
    el.textContent = s;
    el.dataset.backend = i.backend;
    el.dataset.threads = String(i.threads);
    el.dataset.kernel = i.kernel;
    el.title = `Backend: ${i.backend} (${i.backendReason || 'chosen'}); kernel: ${i.kernel} (${i.kernelReason || 'chosen'})` +
      (i.fallback ? `; fell back from WebGPU: ${i.fallback}` : '') +
      (i.crossOriginIsolated === false ? '; one thread: the page is not cross-origin isolated (no COOP/COEP headers)' : '') +
      (adapter ? `; WebGPU adapter: ${[adapter.vendor, adapter.architecture, adapter.description].filter(Boolean).join(' ')}${i.shaderF16 ? ', shader-f16' : ''}` : '');
  }

  #showError(e, { fatal = false, retry = false } = {}) {
    const box = this.#els.error;
    const msg = String(e.message || '').replace(/[.\s]*$/, '');
    box.replaceChildren(h('span', { class: 'name', text: `${e.name || 'Error'}:` }),
      document.createTextNode(`${msg}.${fatal ? ` ${fatal}` : ''}`));
    if (e.hint) box.append(h('span', { class: 'hint', text: e.hint }));
    if (retry) {
      const b = h('button', { id: 'retry', type: 'button', part: 'button retry-button', text: 'Retry' });
      b.addEventListener('click', () => this.#retry());
      box.append(b);
    }
    box.dataset.name = e.name || 'Error';
    box.hidden = false;
  }

  /** The conversation no longer fits the model's context: say what can be done, as buttons. */
  #offerOverflowActions(failedEl) {
    const box = this.#els.error;
    const actions = h('span', { class: 'actions' });
    const fresh = h('button', { id: 'overflow-new-chat', type: 'button', part: 'button', text: 'Start a new chat' });
    // The failed message stays in the box, so a new chat starts from it.
    fresh.addEventListener('click', () => { this.clear(); this.#els.prompt.focus(); });
    actions.append(fresh);
    if (this.getAttribute('context-overflow') !== 'drop_oldest') {
      const drop = h('button', { id: 'overflow-drop-oldest', type: 'button', part: 'button',
        text: 'Drop the oldest turns and send again', title: "Sets context-overflow to 'drop_oldest' for the rest of this chat" });
      drop.addEventListener('click', () => {
        const prompt = this.#els.prompt, text = prompt.value || this.#textOf(failedEl);
        this.setAttribute('context-overflow', 'drop_oldest');
        failedEl.remove();
        prompt.value = '';
        this.send(text).catch(() => {});   // shown in the element and dispatched as intab-error
      });
      actions.append(drop);
    }
    box.append(actions);
    box.dataset.overflow = '';
  }

  #clearError() {
    const box = this.#els?.error;
    if (!box) return;
    box.hidden = true;
    box.replaceChildren();
    delete box.dataset.name;
    delete box.dataset.overflow;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

if (!customElements.get('intab-chat')) customElements.define('intab-chat', IntabChat);
