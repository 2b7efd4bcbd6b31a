// intab page: the chat UI. Everything heavy runs in worker.mjs; this file only renders.
//
// Test hooks: document.body.dataset.state is 'loading' | 'ready' | 'generating' | 'error';
// each finished assistant message has data-token-ids (JSON) and data-finish-reason;
// window.intab exposes { messages(), setMessages(list), ready } for scripted conversations.

const $ = (id) => document.getElementById(id);
const els = {
  status: $('status'), loadPhase: $('load-phase'), loadBar: $('load-bar'), loadDetail: $('load-detail'),
  error: $('error'), log: $('log'), composer: $('composer'), prompt: $('prompt'),
  send: $('send'), stop: $('stop'), newChat: $('new-chat'), defaultsBtn: $('defaults'),
  system: $('system-prompt'), temperature: $('temperature'), topP: $('top-p'), topK: $('top-k'),
  maxTokens: $('max-tokens'), seed: $('seed'), backend: $('backend'),
};

const params = new URLSearchParams(location.search);
const state = {
  phase: 'loading',        // loading | ready | generating | error (fatal)
  info: null,              // the worker's 'ready' message
  messages: [],            // the conversation sent to the model (without the system prompt)
  turn: null,              // { id, el, contentEl, text, t0, tFirst, userIndex }
  nextId: 1,
  lastSpeed: '',
  defaults: { temperature: 0.2, top_p: 0.9, top_k: 50, max_tokens: 256 },
};

// ------------------------------------------------------------------ worker
const worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module', name: 'intab-engine' });
worker.onmessage = (ev) => handlers[ev.data.type]?.(ev.data);
worker.onerror = (ev) => {
  ev.preventDefault?.();
  fatal('WorkerError', ev.message || 'the engine worker failed to start (is the page served by web/serve.py?)');
};
const backendParam = params.get('backend');
worker.postMessage({ type: 'load', backend: backendParam || 'auto', model: params.get('model') || undefined });

const handlers = {
  progress(m) {
    if (m.phase === 'download' && m.total) {
      const pct = (100 * m.loaded) / m.total;
      els.loadPhase.textContent = `Loading the model: ${pct.toFixed(0)}%`;
      els.loadBar.value = m.loaded / m.total;
      els.loadDetail.textContent = `${mb(m.loaded)} of ${mb(m.total)} MB` +
        (m.files.length > 1 ? ' · ' + m.files.filter((f) => f.total > 1e6).map((f) => `${f.name} ${((100 * f.loaded) / f.total).toFixed(0)}%`).join(' · ') : '');
      els.status.textContent = `Loading… ${pct.toFixed(0)}%`;
    } else {
      els.loadPhase.textContent = m.message || 'Loading…';
      if (m.phase !== 'download') els.loadBar.removeAttribute('value'); // indeterminate
    }
  },
  ready(m) {
    state.info = m;
    applyDefaults({ ...(m.generationConfig || {}), ...(m.defaults || {}) }, true);
    setPhase('ready');
    renderStatus();
    intab.ready = true;
    intab.info = m;
    console.info('intab ready', m);
  },
  delta(m) {
    const t = state.turn;
    if (!t || t.id !== m.id) return;
    if (t.tFirst === null) t.tFirst = performance.now();
    t.text += m.text;
    t.contentEl.textContent = t.text;
    scrollToEnd();
  },
  done(m) {
    const t = state.turn;
    if (!t || t.id !== m.id) return;
    const r = m.result || {};
    finishTurn(t, r);
  },
  error(m) {
    if (m.fatal) return fatal(m.name, m.message);
    const t = state.turn;
    if (t && (m.id === undefined || m.id === t.id)) failTurn(t, m);
    else showError(m.name, m.message);
  },
  'reset-done'() {},
};

// ------------------------------------------------------------------ rendering
const mb = (b) => (b / 1e6).toFixed(1);

function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.state = phase;
  const ready = phase === 'ready';
  els.send.disabled = !ready;
  els.stop.disabled = phase !== 'generating';
  els.log.setAttribute('aria-busy', String(phase === 'generating'));
}

function renderStatus() {
  const i = state.info;
  if (!i) return;
  let s = i.backend === 'webgpu'
    ? `WebGPU${i.adapterInfo && i.adapterInfo.architecture ? ` (${i.adapterInfo.architecture}${i.shaderF16 ? ', f16' : ''})` : ''}`
    : `WASM, ${i.threads} thread${i.threads === 1 ? '' : 's'}`;
  s += ` · loaded in ${(i.loadMs / 1000).toFixed(1)} s`;
  if (state.lastSpeed) s += ` · ${state.lastSpeed}`;
  els.status.textContent = s;
  els.status.dataset.backend = i.backend;
  els.status.title = `Backend: ${i.backend} (${i.backendReason || 'chosen'})` +
    (i.adapterInfo ? `; WebGPU adapter: ${[i.adapterInfo.vendor, i.adapterInfo.architecture, i.adapterInfo.description].filter(Boolean).join(' ')}${i.shaderF16 ? ', shader-f16' : ''}` : '');
  els.status.dataset.threads = String(i.threads);
}

function addMessage(role, text) {
  const li = document.createElement('li');
  li.className = `msg ${role}`;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : role === 'assistant' ? 'Assistant' : 'System';
  const content = document.createElement('div');
  content.className = 'content';
  content.textContent = text;
  li.append(who, content);
  els.log.append(li);
  scrollToEnd();
  return { li, content };
}

function scrollToEnd() {
  const el = document.scrollingElement || document.documentElement;
  el.scrollTop = el.scrollHeight;
}

function showError(name, message) {
  els.error.replaceChildren();
  const b = document.createElement('strong');
  b.textContent = `${name || 'Error'}:`;
  els.error.append(b, document.createTextNode(` ${message || ''}`));
  els.error.hidden = false;
  els.error.dataset.name = name || 'Error';
}

function clearError() {
  els.error.hidden = true;
  els.error.textContent = '';
  delete els.error.dataset.name;
}

function fatal(name, message) {
  showError(name, `${message} The model could not start; reload the page to try again.`);
  setPhase('error');
  els.status.textContent = 'Not running';
}

// ------------------------------------------------------------------ settings
const fields = [
  ['temperature', 'temperature', parseFloat],
  ['topP', 'top_p', parseFloat],
  ['topK', 'top_k', (v) => parseInt(v, 10)],
  ['maxTokens', 'max_tokens', (v) => parseInt(v, 10)],
  ['seed', 'seed', (v) => parseInt(v, 10)],
];

function applyDefaults(gc, fromModel) {
  if (fromModel) {
    const d = state.defaults;
    if (typeof gc.temperature === 'number') d.temperature = gc.temperature;
    if (typeof gc.top_p === 'number') d.top_p = gc.top_p;
    if (typeof gc.top_k === 'number') d.top_k = gc.top_k;
    if (typeof gc.max_new_tokens === 'number') d.max_tokens = gc.max_new_tokens;
    if (typeof gc.max_tokens === 'number') d.max_tokens = gc.max_tokens;
    if (gc.do_sample === false) d.temperature = 0;
  }
  for (const [el, key] of fields) {
    if (fromModel && els[el].dataset.touched) continue; // keep what the user already typed
    els[el].value = state.defaults[key] ?? '';
  }
}

function readOptions() {
  const opts = {};
  for (const [el, key, parse] of fields) {
    const raw = els[el].value.trim();
    if (raw === '') {
      if (els[el].validity && els[el].validity.badInput) {
        throw Object.assign(new Error(`${els[el].labels[0].querySelector('span').firstChild.textContent.trim()} is not a number.`), { name: 'InvalidParameter' });
      }
      continue;
    }
    const v = parse(raw);
    if (!Number.isFinite(v)) throw Object.assign(new Error(`${key} must be a number, got '${raw}'.`), { name: 'InvalidParameter' });
    opts[key] = v;
  }
  return opts;
}

for (const [el] of fields) els[el].addEventListener('input', () => { els[el].dataset.touched = '1'; });
els.defaultsBtn.addEventListener('click', () => {
  for (const [el] of fields) delete els[el].dataset.touched;
  applyDefaults({}, false);
});

// ------------------------------------------------------------------ turns
function conversation() {
  const sys = els.system.value;
  return sys.trim() ? [{ role: 'system', content: sys }, ...state.messages] : state.messages.slice();
}

function send(text) {
  if (state.phase !== 'ready') return false;
  if (!text.trim()) return false; // sent as typed: no trimming (the model sees exactly this)
  let options;
  try {
    options = readOptions();
  } catch (e) {
    showError(e.name, e.message);
    return false;
  }
  clearError();
  const userIndex = state.messages.length;
  state.messages.push({ role: 'user', content: text });
  const u = addMessage('user', text);
  const a = addMessage('assistant', '');
  a.li.classList.add('streaming');
  const id = state.nextId++;
  state.turn = { id, el: a.li, contentEl: a.content, userEl: u.li, text: '', t0: performance.now(), tFirst: null, userIndex };
  setPhase('generating');
  worker.postMessage({ type: 'chat', id, messages: conversation(), options });
  return true;
}

function finishTurn(t, r) {
  t.el.classList.remove('streaming');
  const ids = Array.isArray(r.token_ids) ? r.token_ids : [];
  t.el.dataset.tokenIds = JSON.stringify(ids);
  t.el.dataset.finishReason = r.finish_reason || '';
  const text = t.text;
  if (r.finish_reason === 'abort' && !text) t.contentEl.textContent = '';
  state.messages.push({ role: 'assistant', content: text });
  const ms = performance.now() - t.t0;
  const ttft = typeof r.ttft_ms === 'number' ? r.ttft_ms : (t.tFirst ? t.tFirst - t.t0 : NaN);
  const n = r.new_tokens ?? ids.length;
  const tps = typeof r.decode_tok_s === 'number' && r.decode_tok_s > 0 ? r.decode_tok_s : (n / (ms / 1000));
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = `${n} tokens · ${tps.toFixed(1)} tok/s · first token ${(ttft / 1000).toFixed(2)} s` +
    (r.finish_reason === 'abort' ? ' · stopped' : r.finish_reason === 'length' ? ' · hit max tokens' : '');
  t.el.append(meta);
  t.el.dataset.tokS = String(tps);
  t.el.dataset.ttftMs = String(ttft);
  state.lastSpeed = `last answer ${tps.toFixed(1)} tok/s, first token ${(ttft / 1000).toFixed(2)} s`;
  state.turn = null;
  setPhase('ready');
  renderStatus();
  if (document.activeElement === document.body) els.prompt.focus();
}

function failTurn(t, m) {
  // The turn did not happen: take the user message back out of the conversation, keep it on
  // screen marked as failed, and put its text back in the box so it can be sent again.
  t.el.remove();
  t.userEl.classList.add('failed');
  t.userEl.setAttribute('aria-label', 'Not sent (error)');
  state.messages.length = t.userIndex;
  if (!els.prompt.value) els.prompt.value = t.userEl.querySelector('.content').textContent;
  state.turn = null;
  showError(m.name, m.message);
  setPhase('ready');
}

function newChat() {
  if (state.turn) worker.postMessage({ type: 'stop', id: state.turn.id });
  worker.postMessage({ type: 'reset' });
  state.messages = [];
  state.turn = null;
  els.log.replaceChildren();
  clearError();
  if (state.phase === 'generating') setPhase('ready');
  els.prompt.focus();
}

els.composer.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (send(els.prompt.value)) els.prompt.value = '';
});
els.prompt.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    els.composer.requestSubmit();
  }
});
els.stop.addEventListener('click', () => {
  if (state.turn) worker.postMessage({ type: 'stop', id: state.turn.id });
});
els.newChat.addEventListener('click', newChat);
els.backend.value = ['webgpu', 'wasm'].includes(params.get('backend')) ? params.get('backend') : 'auto';
els.backend.addEventListener('change', () => {
  // The backend is fixed for the life of a worker (ORT's wasm threads too): reload with it.
  const p = new URLSearchParams(location.search);
  if (els.backend.value === 'auto') p.delete('backend'); else p.set('backend', els.backend.value);
  location.search = p.toString();
});

// ------------------------------------------------------------------ hooks (tests, embedding)
const intab = {
  ready: false,
  info: null,      // the worker's 'ready' message: backend, threads, timings, fromCache, ...
  /** The conversation as sent to the model (system prompt excluded). */
  messages: () => structuredClone(state.messages),
  /** Replace the conversation (e.g. earlier turns of a scripted test) and the system prompt
   * (a leading system message, or empty); shown in the log. */
  setMessages(list) {
    if (state.phase === 'generating') throw new Error('cannot replace the conversation while generating');
    state.messages = [];
    els.log.replaceChildren();
    clearError();
    els.system.value = '';
    for (const m of list) {
      if (m.role === 'system') { els.system.value = m.content; continue; }
      state.messages.push({ role: m.role, content: m.content });
      addMessage(m.role, m.content);
    }
  },
};
window.intab = intab;
applyDefaults({}, false);
setPhase('loading');
