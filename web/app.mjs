// intab's demo page: a thin page around <intab-chat> (web/element.mjs), which loads the engine
// through the client, shows its progress and status, and holds the conversation. The page adds
// what is its own: the settings panel (read by the element as attributes), the backend menu
// (reloads with ?backend=), the address options, and offline use (web/sw.js).
//
// Test hooks: document.body.dataset.state mirrors the element's state ('loading' | 'ready' |
// 'generating' | 'error'), and turns 'ready' only once the service worker has the app for
// offline use; window.intab exposes { ready, info, messages(), setMessages(list), offline, privacy() }.

import './element.mjs';
import { PrivacyLedger, watchRequests } from './privacy.mjs';
import { forgetConversations } from './conversation_store.mjs';
import { forgetModels } from './model_store.mjs';
import { forgetAllKept, forgetKept, keptModels } from './kept_models.mjs';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const chat = $('chat');
const settings = {
  system: $('system-prompt'), backend: $('backend'), defaults: $('defaults'),
  numbers: [...document.querySelectorAll('#settings input[data-attr]')],
};

// ------------------------------------------------------------------ the engine's options
// Set in this task, before the element creates its engine (one task after it is defined).
for (const name of ['backend', 'kernel', 'model']) {
  const v = params.get(name);
  if (v) chat.setAttribute(name, v);
}
// ?kernel=ort runs WASM on onnxruntime-web instead of intab's kernel; ?memory=low (onnxruntime):
// less RAM, slower (web/README.md).
if (params.get('memory')) chat.engineOptions = { memory: params.get('memory') };
// ?snapshot=0: boot Pyodide without its build-time snapshot (to measure what it buys).
if (params.get('snapshot') === '0') chat.engineOptions = { ...chat.engineOptions, snapshot: false };

// ------------------------------------------------------------------ settings -> attributes
const state = { defaults: { temperature: 0.2, 'top-p': 0.9, 'top-k': 50, 'max-tokens': 256, seed: '' } };

function toAttribute(input) {
  // An unparsable number (type=number gives '' for it) is passed on as such: the element
  // refuses it with an error that names the setting, instead of silently using the default.
  const value = input.validity.badInput ? 'not a number' : input.value.trim();
  if (value === '') chat.removeAttribute(input.dataset.attr); else chat.setAttribute(input.dataset.attr, value);
}

function applyDefaults(info, fromModel) {
  if (fromModel && info) {
    const gc = info.generationConfig || {};
    const d = { ...gc, ...(info.defaults || {}) };
    const set = (attr, v) => { if (typeof v === 'number') state.defaults[attr] = v; };
    set('temperature', d.temperature);
    set('top-p', d.top_p);
    set('top-k', d.top_k);
    set('max-tokens', gc.max_new_tokens);
    set('max-tokens', d.max_tokens);
    if (gc.do_sample === false) state.defaults.temperature = 0;
  }
  for (const input of settings.numbers) {
    if (fromModel && input.dataset.touched) continue;   // keep what the user already typed
    input.value = state.defaults[input.dataset.attr] ?? '';
    toAttribute(input);
  }
}

for (const input of settings.numbers) {
  input.addEventListener('input', () => { input.dataset.touched = '1'; toAttribute(input); });
}
settings.system.addEventListener('input', () => { chat.system = settings.system.value; });
settings.defaults.addEventListener('click', () => {
  for (const input of settings.numbers) delete input.dataset.touched;
  applyDefaults(null, false);
});
/** The backend and the model are chosen by the address (?backend=, ?model=), so a link keeps
 * them: the menus reload the page with the choice, keeping the other parameters. */
function reloadWith(name, value, fallback) {
  const p = new URLSearchParams(location.search);
  if (value === fallback) p.delete(name); else p.set(name, value);
  location.search = p.toString();
}
settings.backend.value = ['webgpu', 'wasm'].includes(params.get('backend')) ? params.get('backend') : 'auto';
settings.backend.addEventListener('change', () => reloadWith('backend', settings.backend.value, 'auto'));

// The model menu lists models/index.json (the first is the default); shown when it has several.
(async () => {
  const modelSelect = $('model');
  let ids = [];
  try {
    const index = await (await fetch(new URL('./models/index.json', import.meta.url))).json();
    ids = (Array.isArray(index) ? index : index.models || []).map((m) => (typeof m === 'string' ? m : m.id));
  } catch { return; }   // the element reports a missing model list itself
  modelSelect.replaceChildren(...ids.map((id) => Object.assign(document.createElement('option'), { value: id, textContent: id })));
  modelSelect.value = ids.includes(params.get('model')) ? params.get('model') : ids[0];
  $('model-field').hidden = ids.length < 2;
  modelSelect.addEventListener('change', () => reloadWith('model', modelSelect.value, ids[0]));
})();
$('skip').addEventListener('click', (ev) => { ev.preventDefault(); chat.focus(); });
applyDefaults(null, false);

// ------------------------------------------------------------------ the element's state
let offlineDone = false;
chat.addEventListener('intab-state', (ev) => {
  const s = ev.detail.state;
  document.body.dataset.state = s === 'ready' && !offlineDone ? 'loading' : s === 'idle' ? 'loading' : s;
});
chat.addEventListener('intab-progress', () => { offlineDone = false; });
chat.addEventListener('intab-ready', async (ev) => {
  const info = ev.detail.info;
  intab.readyAt = performance.now();   // page open -> the chat usable (build.py bench --start)
  intab.info = info;
  applyDefaults(info, true);
  await prepareOffline(info);
  offlineDone = true;
  intab.ready = true;
  document.body.dataset.state = chat.state;
  console.info('intab ready', info);
});

// ------------------------------------------------------------------ the privacy line
// Live counts of what the page and the model's worker requested (web/privacy.mjs): requests to
// another origin, requests while an answer is being written, requests the CSP refused. All
// three stay 0; tests/browser/test_privacy.py checks them against Playwright's own record.
const privacy = new PrivacyLedger(location.origin);
const privacyLine = $('privacy');
const showPrivacy = () => {
  const c = privacy.counts();
  privacyLine.textContent = privacy.text();
  privacyLine.dataset.clean = String(c.offOrigin === 0 && c.duringTurns === 0 && c.violations === 0);
  for (const [k, v] of Object.entries(c)) privacyLine.dataset[k] = String(v);
};
privacy.addEventListener('change', showPrivacy);
watchRequests((batch) => privacy.add(batch), window);
let watchedEngine = null;
const watchEngine = (engine) => {
  if (!engine || engine === watchedEngine || !engine.addEventListener) return;
  watchedEngine = engine;
  privacy.add(engine.privacy || {});   // what the worker reported before the page had the engine
  engine.addEventListener('privacy', (ev) => privacy.add(ev.detail));
};
let inTurn = false;
chat.addEventListener('intab-state', (ev) => {
  const turn = ev.detail.state === 'generating';
  if (turn && !inTurn) privacy.turnStarted();
  if (!turn && inTurn) privacy.turnEnded();
  inTurn = turn;
});
chat.addEventListener('intab-ready', () => watchEngine(chat.engine));
showPrivacy();

// ------------------------------------------------------------------ your own GGUF
// A file (picker or drop zone), an address, or a model kept on this device: the element loads it
// again with engineOptions.model (client.mjs takes a File, a URL or 'kept:<name>'). The tab reads
// the file itself (web/gguf_model.mjs); nothing is uploaded.
const gguf = { message: $('gguf-message'), keep: $('gguf-keep'), file: $('gguf-file'), drop: $('gguf-drop'), url: $('gguf-url'), opening: null };

function ggufSay(text, kind = 'info', hint = '') {
  gguf.message.dataset.kind = kind;
  gguf.message.replaceChildren(document.createTextNode(text), ...(hint ? [document.createElement('br'), Object.assign(document.createElement('small'), { textContent: hint })] : []));
}

function openModel(model, label, keep = gguf.keep.checked) {
  gguf.opening = label;
  ggufSay(`Opening ${label}${keep ? ' (it will be kept on this device)' : ''}…`);
  chat.removeAttribute('model');
  chat.engineOptions = { ...chat.engineOptions, model, keep };
  chat.reload();
}

gguf.file.addEventListener('change', () => {
  const f = gguf.file.files[0];
  if (f) openModel(f, f.name);
  gguf.file.value = '';   // the same file again is a new choice
});
gguf.drop.addEventListener('click', () => gguf.file.click());
gguf.drop.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); gguf.file.click(); }
});
gguf.drop.addEventListener('dragover', (ev) => { ev.preventDefault(); gguf.drop.dataset.over = 'true'; });
gguf.drop.addEventListener('dragleave', () => { gguf.drop.dataset.over = 'false'; });
gguf.drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  gguf.drop.dataset.over = 'false';
  const f = ev.dataTransfer?.files?.[0];
  if (f) openModel(f, f.name);
});
// A file dropped beside the zone would make the browser navigate to it, leaving the chat.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (ev) => { if (ev.dataTransfer?.types?.includes('Files')) ev.preventDefault(); });
}
const openUrl = () => {
  const v = gguf.url.value.trim();
  if (!v) { ggufSay('Type the address of a .gguf file first.', 'error'); return; }
  openModel(new URL(v, location.href).href, v);
};
$('gguf-open-url').addEventListener('click', openUrl);
gguf.url.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); openUrl(); } });

async function showKept() {
  const list = await keptModels().catch(() => []);
  $('kept').hidden = list.length === 0;
  $('kept-list').replaceChildren(...list.map((m) => {
    const open = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Open', className: 'secondary' });
    open.setAttribute('aria-label', `Open ${m.name}`);
    open.addEventListener('click', () => openModel(`kept:${m.name}`, m.name, false));
    const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Remove', className: 'secondary' });
    remove.setAttribute('aria-label', `Remove ${m.name}`);
    remove.addEventListener('click', async () => { await forgetKept(m.name); ggufSay(`${m.name} was removed from this device.`); showKept(); });
    const li = document.createElement('li');
    li.dataset.name = m.name;
    li.append(Object.assign(document.createElement('span'), { textContent: m.name }),
      Object.assign(document.createElement('span'), { className: 'meta', textContent: `${m.architecture}, ${(m.size / 1e6).toFixed(0)} MB` }), open, remove);
    return li;
  }));
}
showKept();
chat.addEventListener('intab-ready', (ev) => {
  const src = ev.detail.info?.model?.source;
  if (src) {
    ggufSay(`Running ${src.name} on intab's WASM kernel (read in this tab)${src.kept ? `; kept on this device as “${src.kept}”` : ''}.`);
    showKept();
  }
  gguf.opening = null;
});
chat.addEventListener('intab-error', (ev) => {
  if (!gguf.opening || !ev.detail.fatal) return;
  ggufSay(`${gguf.opening} could not be opened — ${ev.detail.name}: ${ev.detail.message}`, 'error', ev.detail.hint || '');
  gguf.message.dataset.error = ev.detail.name;
  gguf.opening = null;
});

// ------------------------------------------------------------------ forget everything
// The conversation is kept in this browser (<intab-chat persist="demo">, IndexedDB) and the
// model files in Cache Storage; this button deletes both. The model already loaded keeps
// answering from memory; the next visit downloads it again.
$('forget').addEventListener('click', async () => {
  const done = $('forget-done');
  done.textContent = 'Forgetting…';
  try {
    chat.clear();
    // clear() stores the empty conversation from a microtask: let its write go first, so that
    // the deletion comes after it and nothing is left.
    await new Promise((resolve) => setTimeout(resolve, 0));
    await forgetConversations();
    const files = await forgetModels() + await forgetAllKept();
    showKept();
    done.textContent = `Forgotten: the conversation and ${files} stored model file${files === 1 ? '' : 's'}. Nothing was ever sent anywhere.`;
    document.body.dataset.forgotten = String(files);
  } catch (e) {
    done.textContent = `Could not forget everything: ${e.message}`;
  }
});

// ------------------------------------------------------------------ hooks (tests, scripting)
const intab = {
  ready: false,
  info: null,      // engine.info: backend, threads, kernel, timings, timeline, fromCache, ...
  readyAt: null,   // performance.now() when the engine was ready
  offline: null,   // the service worker's answer to the precache request
  /** The privacy line's counts: {requests, offOrigin, duringTurns, violations}, and the URLs. */
  privacy: () => ({ ...privacy.counts(), offOriginUrls: [...privacy.offOrigin], duringTurnUrls: [...privacy.duringTurns], violationList: [...privacy.violations] }),
  /** The conversation as sent to the model (system prompt excluded). */
  messages: () => chat.messages,
  /** Replace the conversation (e.g. earlier turns of a scripted test) and the system prompt
   * (a leading system message, or empty); shown in the log. */
  setMessages(list) {
    chat.system = '';
    chat.messages = list;
    settings.system.value = chat.system;
  },
};
window.intab = intab;

// ------------------------------------------------------------------ offline (web/sw.js)
// The service worker keeps the app shell; model_store.mjs keeps the model files. The first visit
// is not controlled by the service worker yet, so once the model is ready the page hands it the
// list of what to keep (offline.json, written by web/assemble.py: the shell, Pyodide, the ORT
// bundle this engine picked). `intab.offline` is the service worker's answer.
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
    const urls = [...list.files, ...ort, ...(info.model.source ? [] : [`models/${info.model.id}/manifest.json`])];   // a GGUF opened in the tab has none
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
