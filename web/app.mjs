// intab page: the chat UI over the public client (intab.mjs). Everything heavy runs in the engine's
// worker; this file only renders.
//
// Test hooks: document.body.dataset.state is 'loading' | 'ready' | 'generating' | 'error';
// each finished assistant message has data-token-ids (JSON) and data-finish-reason;
// window.intab exposes { messages(), setMessages(list), ready } for scripted conversations.

const $ = (id) => document.getElementById(id);
const els = {
  status: $('status'), loadPhase: $('load-phase'), loadBar: $('load-bar'), loadDetail: $('load-detail'),
  loadFiles: $('load-files'), notices: $('notices'), error: $('error'), log: $('log'), composer: $('composer'), prompt: $('prompt'),
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

// ------------------------------------------------------------------ engine (web/client.mjs)
// One engine per load: Retry (after a failed load) unloads it and creates a fresh one; the model
// files it had verified are in Cache Storage by then and are not downloaded again.
import * as intabApi from './intab.mjs';

let engine = null;
let loadToken = 0;
async function startEngine() {
  const token = ++loadToken;
  try {
    const e = await intabApi.create({
      backend: params.get('backend') || 'auto', model: params.get('model') || undefined,
      kernel: params.get('kernel') || undefined,    // ?kernel=ort: onnxruntime-web instead of intab's kernel
      memory: params.get('memory') || undefined,    // ?memory=low: less RAM, slower (onnxruntime)
      onProgress: (m) => { if (token === loadToken) handlers.progress(m); },
    });
    if (token !== loadToken) { e.unload(); return; }
    engine = e;
    await handlers.ready(e.info);
  } catch (err) {
    if (token === loadToken) fatal(err.name, err.message, err.hint);
  }
}

function retry() {
  engine?.unload();
  engine = null;
  clearError();
  renderNotices([]);
  els.loadFiles.replaceChildren();
  els.loadDetail.textContent = '';
  els.loadPhase.textContent = 'Starting…';
  els.loadBar.removeAttribute('value');
  els.status.textContent = 'Loading…';
  setPhase('loading');
  startEngine();
}

const handlers = {
  progress(m) {
    if (m.notices) renderNotices(m.notices);
    if (m.phase === 'download' && m.total) {
      const pct = (100 * m.loaded) / m.total;
      els.loadPhase.textContent = `Loading the model: ${pct.toFixed(0)}%`;
      els.loadBar.value = m.loaded / m.total;
      els.loadDetail.textContent = `${size(m.loaded)} of ${size(m.total)} · ${pct.toFixed(0)}%` +
        (m.loaded < m.total && m.eta != null ? ` · ${timeLeft(m.eta)}` : '');
      renderFiles(m.files || []);
      els.status.textContent = `Loading… ${pct.toFixed(0)}%`;
    } else {
      els.loadPhase.textContent = m.message || 'Loading…';
      if (m.phase !== 'download') els.loadBar.removeAttribute('value'); // indeterminate
    }
  },
  async ready(m) {
    state.info = m;
    applyDefaults({ ...(m.generationConfig || {}), ...(m.defaults || {}) }, true);
    els.loadPhase.textContent = 'Preparing for offline use…';
    await prepareOffline(m);
    setPhase('ready');
    renderStatus();
    intab.ready = true;
    intab.info = m;
    console.info('intab ready', m);
  },
};

// ------------------------------------------------------------------ rendering
const size = (b) => (b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(1)} kB`);

function timeLeft(s) {
  if (s < 1) return 'less than a second left';
  if (s < 90) return `about ${Math.ceil(s)} s left`;
  return `about ${Math.round(s / 60)} min left`;
}

/** One row per model file: name, a bar, and bytes, percent and time left (or where it came from). */
function renderFiles(files) {
  const rows = els.loadFiles.children;
  if (rows.length !== files.length) {
    els.loadFiles.replaceChildren(...files.map((f) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = f.name;
      const bar = document.createElement('progress');
      bar.max = 1;
      bar.setAttribute('aria-label', f.name);
      const text = document.createElement('span');
      text.className = 'text';
      li.append(name, bar, text);
      li.dataset.name = f.name;
      return li;
    }));
  }
  files.forEach((f, i) => {
    const li = rows[i];
    const frac = f.total ? f.loaded / f.total : 1;
    li.children[1].value = frac;
    let text;
    if (f.done) text = f.cached ? `${size(f.total)} · stored copy, checked` : `${size(f.total)} · downloaded, checked`;
    else if (f.source === 'cache') text = `checking the stored copy · ${(100 * frac).toFixed(0)}%`;
    else if (f.source === 'network') text = `${size(f.loaded)} of ${size(f.total)} · ${(100 * frac).toFixed(0)}%${f.eta != null ? ` · ${timeLeft(f.eta)}` : ''}`;
    else text = 'waiting';
    li.children[2].textContent = text;
    li.dataset.state = f.done ? 'done' : (f.source || 'waiting');
  });
}

/** Lines about storage for the user (a healed cache entry, running from memory): one each. */
function renderNotices(lines) {
  const now = [...els.notices.children].map((p) => p.textContent);
  if (now.length === lines.length && now.every((t, i) => t === lines[i])) return;
  els.notices.replaceChildren(...lines.map((t) => {
    const p = document.createElement('p');
    p.className = 'notice';
    p.textContent = t;
    return p;
  }));
}

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
    : `WASM${i.kernel === 'ort' ? ' (onnxruntime)' : ''}, ${i.threads} thread${i.threads === 1 ? '' : 's'}`;
  s += ` · loaded in ${(i.loadMs / 1000).toFixed(1)} s`;
  if (state.lastSpeed) s += ` · ${state.lastSpeed}`;
  els.status.textContent = s;
  els.status.dataset.backend = i.backend;
  els.status.title = `Backend: ${i.backend} (${i.backendReason || 'chosen'}); kernel: ${i.kernel} (${i.kernelReason || 'chosen'})` +
    (i.adapterInfo ? `; WebGPU adapter: ${[i.adapterInfo.vendor, i.adapterInfo.architecture, i.adapterInfo.description].filter(Boolean).join(' ')}${i.shaderF16 ? ', shader-f16' : ''}` : '');
  els.status.dataset.threads = String(i.threads);
  els.status.dataset.kernel = i.kernel;
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

function fatal(name, message, hint = '') {
  showError(name, `${String(message || '').replace(/[.\s]*$/, '.')} The model could not start.${hint ? ` ${hint}` : ''}`);
  const b = document.createElement('button');
  b.type = 'button';
  b.id = 'retry';
  b.textContent = 'Retry';
  b.addEventListener('click', retry);
  els.error.append(b);
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
  const ctrl = new AbortController();
  const t = { id: state.nextId++, el: a.li, contentEl: a.content, userEl: u.li, text: '', t0: performance.now(), tFirst: null, userIndex, ctrl };
  state.turn = t;
  setPhase('generating');
  (async () => {
    try {
      const chunks = await engine.chat.completions.create({ messages: conversation(), stream: true, signal: ctrl.signal, ...options });
      let r = null;
      for await (const chunk of chunks) {
        const c = chunk.choices[0];
        if (c && c.delta.content) {
          if (t.tFirst === null) t.tFirst = performance.now();
          t.text += c.delta.content;
          t.contentEl.textContent = t.text;
          scrollToEnd();
        }
        if (chunk.intab) r = { ...chunk.intab, finish_reason: c.finish_reason, new_tokens: chunk.intab.token_ids.length };
      }
      if (state.turn === t) finishTurn(t, r || {});
    } catch (err) {
      if (state.turn === t) failTurn(t, err);
      else showError(err.name, err.message);
    }
  })();
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
  showError(m.name, m.hint ? `${m.message} ${m.hint}` : m.message);
  setPhase('ready');
}

function newChat() {
  if (state.turn) state.turn.ctrl.abort();
  engine?.resetChat().catch(() => {});
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
  if (state.turn) state.turn.ctrl.abort();
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
startEngine();

// ------------------------------------------------------------------ offline (web/sw.js)
// The service worker keeps the app shell; model_store.mjs keeps the model files. The first visit
// is not controlled by the service worker yet, so once the model is ready the page hands it the
// list of what to keep (offline.json, written by web/assemble.py: the shell, Pyodide, the ORT
// bundle this worker picked). `intab.offline` is the service worker's answer.
let swRegistration = null;
if ('serviceWorker' in navigator) {
  swRegistration = navigator.serviceWorker.register(new URL('./sw.js', import.meta.url), { scope: './' })
    .catch((e) => { console.warn(`intab: no service worker, so no offline use: ${e.message}`); return null; });
}

async function prepareOffline(info) {
  if (!swRegistration || !(await swRegistration)) return;
  const work = (async () => {
    const list = await (await fetch(new URL('./offline.json', import.meta.url))).json();
    const ort = list.ort[info.ortBundle] || [];
    const urls = [...list.files, ...ort, `models/${info.model.id}/manifest.json`];
    const keep = [...list.files, ...Object.values(list.ort).flat()];
    const reg = await navigator.serviceWorker.ready;
    const answer = new Promise((resolve) => {
      const on = (ev) => {
        if (ev.data && ev.data.type === 'precached') {
          navigator.serviceWorker.removeEventListener('message', on);
          resolve(ev.data);
        }
      };
      navigator.serviceWorker.addEventListener('message', on);
      navigator.serviceWorker.startMessages();
    });
    reg.active.postMessage({ type: 'precache', urls, keep });
    return answer;
  })();
  work.catch(() => {});
  try {
    // Mostly 304s from the HTTP cache; do not hold the page back long on a slow network (or
    // on a service worker that never activates).
    const r = await Promise.race([work, new Promise((res) => setTimeout(() => res(null), 5000))]);
    intab.offline = r;
    if (!r) console.warn('intab: the service worker has not confirmed offline use yet');
    else if (r.failed.length) console.warn('intab: not kept for offline use:', r.failed);
    navigator.storage?.persist?.().catch(() => {});
  } catch (e) {
    console.warn(`intab: offline preparation failed: ${e.message}`);
  }
}
