// Models opened from a GGUF and kept on this device (`intab.create({model: file, keep: true})`):
// the folder the tab made from the file (manifest.json, the four JSON texts, weights.bin; no
// copy of the GGUF itself), in Cache Storage `intab-kept-v1`, one entry per file, keyed
// `kept/<name>/<file>` on this origin. A later visit opens it as `model: 'kept:<name>'`.
//
//   keepModel(name, manifest, files)   -> the stored manifest (sizes and sha256 of every file)
//   keptModels()                       -> [{id: 'kept:<name>', name, size, architecture, parameters, kinds, keptAt}]
//   openKept(name, progress)           -> {manifest, files: {name: Promise<ArrayBuffer>}, done} (model_store's shape)
//   forgetKept(name), forgetAllKept()  -> files deleted
//
// Why Cache Storage (as model_store.mjs, which says why not OPFS): `cache.put` is atomic per entry,
// and the manifest is written last, so a kept model is listed only once all of its files are in.
// Why no healing: there is no copy to download again; a damaged entry (wrong size or sha256) is
// deleted, with an error that says to open the file again. Usable from the page and the worker.

import { fail } from './errors.mjs';
import { deleteCaches, nativeHex as hex, url } from './model_store.mjs';

export const KEPT_CACHE = 'intab-kept-v1';
export const KEPT_PREFIX = 'kept:';
const key = (name, file) => url(`kept/${encodeURIComponent(name)}/${file}`);
const MANIFEST = 'manifest.json';

async function openStore() {
  if (!self.caches) throw fail('LoadError', 'this page has no Cache Storage, so no model can be kept', { hint: 'Serve the page over https (or localhost).', param: 'keep' });
  return caches.open(KEPT_CACHE);
}

/** Store a model folder; `files`: {name: ArrayBuffer | Uint8Array | string}. Overwrites a kept
 * model of the same name. Rejects with the storage's error (QuotaExceededError) after removing
 * what it wrote. */
export async function keepModel(name, manifest, files) {
  const cache = await openStore();
  const enc = new TextEncoder();
  const listed = [];
  await forgetKept(name);
  try {
    for (const [file, body] of Object.entries(files)) {
      const bytes = typeof body === 'string' ? enc.encode(body) : body instanceof Uint8Array ? body : new Uint8Array(body);
      listed.push({ name: file, size: bytes.byteLength, sha256: await hex(bytes) });
      await cache.put(key(name, file), new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } }));
    }
    const kept = { ...manifest, model_id: KEPT_PREFIX + name, files: listed, keptAt: new Date().toISOString() };
    await cache.put(key(name, MANIFEST), new Response(JSON.stringify(kept), { headers: { 'Content-Type': 'application/json' } }));
    return kept;
  } catch (e) {
    await forgetKept(name).catch(() => {});
    throw e;
  }
}

/** The kept models, oldest first. */
export async function keptModels() {
  if (!self.caches || !(await caches.has(KEPT_CACHE))) return [];
  const cache = await caches.open(KEPT_CACHE);
  const out = [];
  for (const req of await cache.keys()) {
    if (!req.url.endsWith(`/${MANIFEST}`)) continue;
    try {
      const m = await (await cache.match(req)).json();
      const name = m.model_id.slice(KEPT_PREFIX.length);
      out.push({ id: m.model_id, name, size: m.files.reduce((a, f) => a + f.size, 0), architecture: m.architecture,
        parameters: m.source?.parameters ?? null, kinds: m.source?.kinds ?? [], keptAt: m.keptAt });
    } catch { /* a manifest being written or damaged: not listed */ }
  }
  return out.sort((a, b) => (a.keptAt < b.keptAt ? -1 : 1));
}

/** Delete one kept model; resolves with the number of files deleted. */
export async function forgetKept(name) {
  if (!self.caches || !(await caches.has(KEPT_CACHE))) return 0;
  const cache = await caches.open(KEPT_CACHE);
  const prefix = url(`kept/${encodeURIComponent(name)}/`);
  let n = 0;
  for (const req of await cache.keys()) if (req.url.startsWith(prefix) && await cache.delete(req)) n++;
  return n;
}

/** Delete every kept model ("Forget everything"); resolves with the number of files deleted. */
export async function forgetAllKept() {
  return self.caches ? deleteCaches('intab-kept-') : 0;
}

/** A kept model's files, checked (size and sha256), as downloadModel gives a prebuilt one's. */
export async function openKept(name, progress) {
  const cache = await openStore();
  const hit = await cache.match(key(name, MANIFEST));
  if (!hit) {
    const names = (await keptModels()).map((m) => m.name);
    throw fail('LoadError', `no model named '${name}' is kept on this device`,
      { hint: names.length ? `Kept: ${names.join(', ')}.` : 'Open the .gguf file again (with keep: true to keep it).', param: 'model' });
  }
  const manifest = await hit.json();
  const state = manifest.files.map((f) => ({ name: f.name, loaded: 0, total: f.size, cached: true, source: 'kept', eta: null, done: false }));
  const total = state.reduce((a, f) => a + f.total, 0);
  const report = () => progress({ phase: 'download', message: `Opening ${name} (kept on this device)…`, loaded: state.reduce((a, f) => a + f.loaded, 0),
    total, eta: null, rate: null, files: state.map((s) => ({ ...s })), notices: [], fromMemory: false });
  const files = {};
  manifest.files.forEach((f, i) => {
    files[f.name] = (async () => {
      const res = await cache.match(key(name, f.name));
      const buf = res ? await res.arrayBuffer() : null;
      const bad = !buf ? 'missing' : buf.byteLength !== f.size ? `${buf.byteLength} bytes, not ${f.size}` : (await hex(buf)) !== f.sha256 ? 'its sha256 differs' : '';
      if (bad) {
        await forgetKept(name).catch(() => {});
        throw fail('LoadError', `the kept copy of ${name} is damaged (${f.name}: ${bad}); it was deleted`,
          { hint: 'Open the .gguf file again (with keep: true to keep it).', param: 'model' });
      }
      Object.assign(state[i], { loaded: f.size, done: true });
      report();
      return buf;
    })();
    files[f.name].catch(() => {});
  });
  report();
  const done = Promise.all(Object.values(files)).then(() => manifest.files.map((f) => f.name));
  done.catch(() => {});
  return { manifest, files, done };
}
