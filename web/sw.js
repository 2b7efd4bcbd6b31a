// intab service worker: the app shell offline (issue 5), and from the cache on a warm start.
//
// The shell (the page, scripts, the Python bundle and Pyodide's snapshot, intab's WASM kernel,
// vendor/: Pyodide, onnxruntime-web) is served cache first: offline.json's `version` is a digest
// of all of it (written by web/assemble.py at each build), checked on each navigation, before
// the page is answered; when it changed, the stored shell is dropped, so the page and everything
// it then asks for come from the network, and one visit never mixes two releases. Measured
// (build.py bench --start, web/README.md "The start"): network first, a warm start waited
// ~1.3 s longer online than with the network cut, for some 30 revalidations of unchanged files.
// The navigation itself, models/index.json and each model's manifest.json stay network first
// (the cache is their fallback offline): they say which release and which model version is
// published. Before, only vendor/ was cache first (through a network-first worker Pyodide's wasm
// loaded much slower, 9-10 s against 2.5-3.5 s, apparently without Chromium's wasm code cache).
// Responses are stored as the server sent them, headers included, so a
// page served from here offline is still cross-origin isolated (COOP/COEP/CORP) and under the
// same CSP. Model files (models/<id>/<file> other than manifest.json) are not handled here:
// model_store.mjs keeps them in its own cache, by sha256, and reads them from there itself.
//
// The first visit is not controlled by this worker (it registers during that visit), so the page
// sends {type:'precache', urls} once its model is ready (offline.json's files, the kernel's two
// wasm files among them, plus the ORT bundle the worker used, if any); the reply
// {type:'precached', stored, failed} says when the app can run offline.

const SHELL = 'intab-shell-v1';
const SCOPE = new URL(self.registration.scope);

self.addEventListener('install', () => { self.skipWaiting(); });

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('intab-shell-') && name !== SHELL) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

const rel = (u) => (u.href.startsWith(SCOPE.href) ? u.pathname.slice(SCOPE.pathname.length) : null);

function isModelFile(path) {
  return path.startsWith('models/') && path !== 'models/index.json' && !path.endsWith('/manifest.json');
}

/** Navigations (any query: ?backend=wasm) are stored once, as the scope URL (index.html). */
function keyOf(request) {
  if (request.mode === 'navigate') return SCOPE.href;
  const u = new URL(request.url);
  u.hash = '';
  return u.href;
}

/** Whether a fresh response differs from the stored copy (Last-Modified and length). */
async function changed(cache, key, res) {
  const old = await cache.match(key);
  const same = (h) => old && res.headers.get(h) !== null && old.headers.get(h) === res.headers.get(h);
  return !(same('last-modified') && same('content-length'));
}

const OFFLINE_LIST = new URL('offline.json', SCOPE).href;
/** Shell files (cache first): everything of the app's but the navigation and models/ (the model
 * list and manifests, network first; the model files are model_store.mjs's). */
const isShell = (u) => !(rel(u) || 'models/').startsWith('models/');

/** A navigation: if the published offline.json has another version than the stored one, forget
 * the stored shell files (before the page asks for them). Offline: nothing to check. */
async function checkVersion(cache) {
  let fresh;
  try { fresh = await fetch(OFFLINE_LIST, { cache: 'no-cache' }); } catch { return; }
  if (!fresh.ok) return;
  const version = (await fresh.clone().json()).version;
  const old = await cache.match(OFFLINE_LIST);
  const oldVersion = old ? (await old.json().catch(() => ({}))).version : null;
  if (version !== oldVersion) {
    for (const req of await cache.keys()) {
      if (req.url !== OFFLINE_LIST && isShell(new URL(req.url))) await cache.delete(req);
    }
  }
  await cache.put(OFFLINE_LIST, fresh);
}

async function respond(event) {
  const { request } = event;
  const cache = await caches.open(SHELL);
  const key = keyOf(request);
  const check = request.mode === 'navigate' ? checkVersion(cache).catch(() => {}) : null;
  if (!check && isShell(new URL(request.url))) {
    const hit = await cache.match(key);
    if (hit) return hit;
  }
  let res;
  try {
    res = await fetch(request);
  } catch (err) {
    await check;
    const hit = await cache.match(key);
    if (hit) return hit;
    throw err;
  }
  if (res.ok && res.status === 200 && res.type === 'basic' && await changed(cache, key, res)) {
    event.waitUntil(cache.put(key, res.clone()).catch(() => {}));
  }
  await check;
  return res;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const u = new URL(request.url);
  if (u.origin !== SCOPE.origin) return;
  const path = rel(u);
  if (path === null || isModelFile(path) || request.headers.has('range')) return;
  event.respondWith(respond(event));
});

self.addEventListener('message', (event) => {
  const msg = event.data || {};
  if (msg.type !== 'precache') return;
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL);
    const stored = [];
    const failed = [];
    await Promise.all((msg.urls || []).map(async (path) => {
      const key = new URL(path, SCOPE).href;
      try {
        if (await cache.match(key)) return;
        // Mostly answered by the HTTP cache (the page just loaded these): 304s.
        const res = await fetch(key);
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        await cache.put(key, res);
        stored.push(path);
      } catch (e) {
        failed.push(`${path}: ${e.message}`);
      }
    }));
    // Forget what no build of the app uses any more (files of an older release), so the shell
    // cache stays the size of one app. Model manifests are a few hundred bytes each: kept.
    if (Array.isArray(msg.keep)) {
      const keep = new Set([...msg.keep, ...(msg.urls || [])].map((p) => new URL(p, SCOPE).href));
      for (const req of await cache.keys()) {
        const path = rel(new URL(req.url));
        if (!keep.has(req.url) && !(path && path.startsWith('models/') && path.endsWith('/manifest.json'))) {
          await cache.delete(req);
        }
      }
    }
    event.source?.postMessage({ type: 'precached', stored, failed });
  })());
});
