// Model files: download with progress, size + sha256 check against manifest.json, and a
// persistent copy in Cache Storage keyed by sha256 (issue 5). The worker imports this module;
// it knows nothing of ORT or Python.

const BASE = new URL('./', import.meta.url);
export const url = (p) => new URL(p, BASE).href;

export async function fetchChecked(path, what) {
  let res;
  try {
    res = await fetch(url(path));
  } catch (e) {
    throw Object.assign(new Error(`could not fetch ${what} (${path}): ${e.message}`), { name: 'LoadError' });
  }
  if (!res.ok) throw Object.assign(new Error(`could not fetch ${what} (${path}): HTTP ${res.status}`), { name: 'LoadError' });
  return res;
}

async function hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

const CACHE_NAME = 'intab-models-v1';

async function openCache() {
  try { return self.caches ? await caches.open(CACHE_NAME) : null; } catch { return null; }
}

const integrity = (msg) => Object.assign(new Error(msg), { name: 'IntegrityError' });

/** Read a response body into a buffer of the manifest's size, reporting progress. */
async function readBody(res, f, onBytes) {
  const buf = new Uint8Array(f.size);
  let off = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (off + value.length > f.size) {
      await reader.cancel();
      throw integrity(`model file ${f.name} is larger than the ${f.size} bytes its manifest lists; rebuild the model files (python3 build.py build)`);
    }
    buf.set(value, off);
    off += value.length;
    onBytes(off);
  }
  if (off !== f.size) throw integrity(`model file ${f.name} has ${off} bytes, its manifest lists ${f.size}; rebuild the model files (python3 build.py build)`);
  return buf;
}

/** Download every file of the manifest, in parallel, with streamed progress; check size and
 * sha256. Verified files are kept in Cache Storage, keyed by their sha256: a later visit reads
 * them from there (and checks them again) instead of downloading them.
 * Returns at once with a promise per file (the small files are used before the model arrives)
 * and `done`, which settles when every file is in. */
export async function downloadModel(modelId, onProgress) {
  const manifest = await (await fetchChecked(`models/${modelId}/manifest.json`, 'the model manifest')).json();
  const files = manifest.files;
  const state = files.map((f) => ({ name: f.name, loaded: 0, total: f.size, cached: false }));
  const total = files.reduce((a, f) => a + f.size, 0);
  let last = 0;
  const report = (force) => {
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    const loaded = state.reduce((a, f) => a + f.loaded, 0);
    onProgress({ phase: 'download', loaded, total, files: state.map((s) => ({ ...s })) });
  };
  const cache = await openCache();
  const puts = [];
  const one = async (f, i) => {
    const path = `models/${modelId}/${f.name}`;
    const key = `${url(path)}?sha256=${f.sha256}`;
    const onBytes = (n) => { state[i].loaded = n; report(false); };
    if (cache) {
      const hit = await cache.match(key).catch(() => null);
      if (hit) {
        try {
          const buf = await readBody(hit, f, onBytes);
          if ((await hex(buf)) === f.sha256) {
            state[i].cached = true;
            report(true);
            return buf;
          }
        } catch { /* a damaged entry: download again */ }
        await cache.delete(key).catch(() => {});
        state[i].loaded = 0;
      }
    }
    const buf = await readBody(await fetchChecked(path, `model file ${f.name}`), f, onBytes);
    const digest = await hex(buf);
    if (digest !== f.sha256) {
      throw integrity(`model file ${f.name} does not match its sha256 in the manifest (got ${digest.slice(0, 12)}…, expected ${String(f.sha256).slice(0, 12)}…); rebuild the model files or clear the site data`);
    }
    if (cache) {
      // Stored in the background: the session need not wait for it, `done` does.
      puts.push(cache.put(key, new Response(buf, { headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(f.size) } }))
        .catch((e) => console.warn(`intab: could not cache ${f.name}: ${e.message}`)));
    }
    report(true);
    return buf;
  };
  const byName = {};
  files.forEach((f, i) => { byName[f.name] = one(f, i); byName[f.name].catch(() => {}); });
  const done = (async () => {
    await Promise.all(Object.values(byName));
    await Promise.all(puts);
    if (cache) {
      // Forget this model's files of earlier versions.
      const keep = new Set(files.map((f) => `${url(`models/${modelId}/${f.name}`)}?sha256=${f.sha256}`));
      const prefix = url(`models/${modelId}/`);
      for (const req of await cache.keys().catch(() => [])) {
        if (req.url.startsWith(prefix) && !keep.has(req.url)) await cache.delete(req).catch(() => {});
      }
    }
    return state.filter((s) => s.cached).map((s) => s.name);
  })();
  done.catch(() => {});
  return { manifest, files: byName, done };
}

