// Model files (issue 5): download with progress, size + sha256 check against manifest.json while
// streaming, and a persistent copy in Cache Storage keyed by sha256 that heals itself. The worker
// imports this module; it knows nothing of ORT or Python.
//
// downloadModel(modelId, onProgress) -> {manifest, files: {name: Promise<Uint8Array>}, done}
//   `done` settles when every file is in, stored and stale entries are deleted: the names read
//   from the cache. onProgress(p) gets {phase:'download', loaded, total, eta, rate, files:[{name,
//   loaded, total, cached, source, eta, done}], notices:[lines for the user], fromMemory,
//   otherTab (waiting for another tab of this origin that is downloading the model: takeLock)}.
//
// Memory: each file is held once, in a buffer of its manifest size. Bytes are hashed as they arrive
// (an incremental SHA-256 below: WebCrypto's digest() has no streaming form and copies its input,
// which would mean a second copy of the model), and stored from that buffer in 1 MB slices.

const BASE = new URL('./', import.meta.url);
export const url = (p) => new URL(p, BASE).href;

export async function fetchChecked(path, what, init) {
  let res;
  try {
    res = await fetch(url(path), init);
  } catch (e) {
    throw Object.assign(new Error(`could not fetch ${what} (${path}): ${e.message}; check the connection and press Retry`), { name: 'LoadError' });
  }
  if (!res.ok) throw Object.assign(new Error(`could not fetch ${what} (${path}): HTTP ${res.status}`), { name: 'LoadError' });
  return res;
}

// ------------------------------------------------------------------ SHA-256, incremental
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 (FIPS 180-4) fed chunk by chunk: `new Sha256().update(a).update(b).hex()`.
 * About 100-130 MB/s in V8 here (2 busy cores), against ~1.3 GB/s for native code. */
export class Sha256 {
  constructor() {
    this.h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Int32Array(64);
    this.tail = new Uint8Array(64);
    this.tailLen = 0;
    this.length = 0;
  }

  update(data) {
    let off = 0;
    const n = data.length;
    this.length += n;
    if (this.tailLen) {
      const take = Math.min(64 - this.tailLen, n);
      this.tail.set(data.subarray(0, take), this.tailLen);
      this.tailLen += take;
      off = take;
      if (this.tailLen < 64) return this;
      this.blocks(this.tail, 0, 64);
      this.tailLen = 0;
    }
    const end = off + ((n - off) & ~63);
    if (end > off) this.blocks(data, off, end);
    if (end < n) { this.tail.set(data.subarray(end, n), 0); this.tailLen = n - end; }
    return this;
  }

  blocks(p, off, end) {
    const w = this.w, h = this.h;
    const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
    for (; off < end; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = dv.getInt32(off + 4 * i);
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15], b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, hh = h7;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + hh) | 0;
    }
    h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4; h[5] = h5; h[6] = h6; h[7] = h7;
  }

  /** The digest as 64 hex digits (ends the hash: do not update() afterwards). */
  hex() {
    const bits = this.length * 8;
    const pad = new Uint8Array(((this.tailLen + 9 + 63) & ~63) - this.tailLen);
    pad[0] = 0x80;
    const hi = Math.floor(bits / 0x100000000), lo = bits >>> 0, m = pad.length;
    pad[m - 8] = hi >>> 24; pad[m - 7] = hi >>> 16; pad[m - 6] = hi >>> 8; pad[m - 5] = hi;
    pad[m - 4] = lo >>> 24; pad[m - 3] = lo >>> 16; pad[m - 2] = lo >>> 8; pad[m - 1] = lo;
    this.update(pad);
    return Array.from(this.h, (x) => (x >>> 0).toString(16).padStart(8, '0')).join('');
  }
}

// ------------------------------------------------------------------ reading a body
export const CACHE_NAME = 'intab-models-v1';
const SLICE = 1 << 20;

async function openCache() {
  try { return self.caches ? await caches.open(CACHE_NAME) : null; } catch { return null; }
}

const named = (name, msg) => Object.assign(new Error(msg), { name });
const mb = (b) => (b / 1e6).toFixed(1);

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** WebCrypto's SHA-256 as 64 hex digits: native and off this thread (~4x the JS hash), but it
 * copies its input. */
export async function nativeHex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Stream a body into a buffer of the manifest's size, hashing as it comes; `native` (cached
 * copies): read it whole with arrayBuffer() and hash it with WebCrypto. Both run outside this
 * thread and resolve once, so a warm start does not wait for Pyodide's boot, which holds this
 * worker's thread for seconds, to let some 1,500 chunk reads through (measured: the cached files
 * took 2.6-3.4 s to read that way, 0.1 s for the read + 0.13 s for the hash on an idle thread).
 * Returns {buf} or {bad: 'reason'} (too long, too short, wrong sha256); throws what the
 * stream throws (a dropped connection). */
async function readBody(res, f, onBytes, { native = false } = {}) {
  if (native) {
    const buf = new Uint8Array(await res.arrayBuffer());
    if (buf.length > f.size) return tooLong(f);
    if (buf.length < f.size) return truncated(buf.length, f);
    onBytes(buf.length);
    return checked(buf, await nativeHex(buf), f);
  }
  const buf = new Uint8Array(f.size);
  const hash = new Sha256();
  let off = 0;
  if (!res.body) return f.size === 0 && f.sha256 === EMPTY_SHA256 ? { buf } : { bad: 'it is empty', reason: 'truncated' };
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (off + value.length > f.size) {
      await reader.cancel().catch(() => {});
      return tooLong(f);
    }
    buf.set(value, off);
    hash.update(value);
    off += value.length;
    onBytes(off);
  }
  if (off !== f.size) return truncated(off, f);
  return checked(buf, hash.hex(), f);
}

// readBody's verdicts, the same for both ways of reading.
const tooLong = (f) => ({ bad: `it is larger than the ${f.size} bytes its manifest lists`, reason: 'too long' });
const truncated = (n, f) => ({ bad: `it has ${n} bytes, its manifest lists ${f.size}`, reason: 'truncated' });
const checked = (buf, digest, f) => (digest === f.sha256 ? { buf } : {
  bad: `it does not match its sha256 in the manifest (got ${digest.slice(0, 12)}…, expected ${String(f.sha256).slice(0, 12)}…)`,
  reason: 'sha256 mismatch',
});

/** A Response over a buffer in 1 MB slices: Cache.put then reads views of the one buffer
 * instead of `new Response(buf)`, which would copy it. */
function sliced(buf) {
  let off = 0;
  const body = new ReadableStream({
    pull(c) {
      if (off >= buf.length) { c.close(); return; }
      c.enqueue(buf.subarray(off, off + SLICE));
      off += SLICE;
    },
  });
  return new Response(body, { headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(buf.length) } });
}

const modelKey = (modelId, f) => `${url(`models/${modelId}/${f.name}`)}?sha256=${f.sha256}`;

/** Cache entries that no current manifest lists: older versions of a model, models that
 * models/index.json no longer lists. Manifests that cannot be fetched (offline) keep theirs. */
async function deleteStale(cache, modelId, files) {
  const prefix = url('models/');
  const keys = await cache.keys().catch(() => []);
  const byModel = new Map();
  for (const req of keys) {
    const u = new URL(req.url);
    const rest = u.href.startsWith(prefix) ? u.pathname.slice(new URL(prefix).pathname.length) : null;
    const id = rest && rest.includes('/') ? rest.split('/')[0] : null;
    if (!byModel.has(id)) byModel.set(id, []);
    byModel.get(id).push(req);
  }
  let listed = null;
  try {
    const index = await (await fetchChecked('models/index.json', 'the model list')).json();
    listed = Array.isArray(index) ? index : (index.models || []).map((m) => (typeof m === 'string' ? m : m.id));
  } catch { /* offline: keep the other models' files */ }
  const deleted = [];
  for (const [id, reqs] of byModel) {
    let keep = null;
    if (id === modelId) keep = new Set(files.map((f) => modelKey(modelId, f)));
    else if (id === null || (listed && !listed.includes(id))) keep = new Set();
    else {
      try {
        const m = await (await fetchChecked(`models/${id}/manifest.json`, 'a model manifest')).json();
        keep = new Set(m.files.map((f) => modelKey(id, f)));
      } catch { continue; }
    }
    for (const req of reqs) {
      if (!keep.has(req.url) && await cache.delete(req).catch(() => false)) deleted.push(req.url);
    }
  }
  // Caches of earlier layouts of this store.
  for (const name of await caches.keys().catch(() => [])) {
    if (name.startsWith('intab-models-') && name !== CACHE_NAME) await caches.delete(name).catch(() => {});
  }
  return deleted;
}

/** Delete every stored model file (all layouts of this store): "Forget everything" on the demo
 * page. The engine already loaded keeps running from memory; the next load downloads again.
 * Resolves with the number of files deleted. */
export const forgetModels = () => deleteCaches('intab-models-');

/** Delete every Cache Storage cache of this origin whose name starts with `prefix`; resolves with
 * the number of entries they held (model_store's layouts here, kept_models.mjs's kept models). */
export async function deleteCaches(prefix) {
  let n = 0;
  for (const name of await caches.keys().catch(() => [])) {
    if (!name.startsWith(prefix)) continue;
    n += (await (await caches.open(name)).keys()).length;
    await caches.delete(name);
  }
  return n;
}

// ------------------------------------------------------------------ one download per origin
/** Two tabs of one origin loading at once: the first to miss the cache takes this model's Web
 * Lock and downloads; the others wait for it (onWait() tells them so), then read what it stored.
 * The lock is the browser's: it is released when its holder's worker ends (a tab closed or
 * reloaded mid-download), and the next tab in line takes it and downloads what is missing.
 * Resolves with {waited, release}; no Web Locks (an insecure context): no waiting. */
async function takeLock(modelId, onWait) {
  const locks = self.navigator && self.navigator.locks;
  if (!locks) return { waited: false, release: () => {} };
  let release;
  const held = new Promise((r) => { release = r; });
  const name = `intab-model-download:${modelId}`;
  const got = await new Promise((resolve, reject) => {
    locks.request(name, { ifAvailable: true }, (lock) => { resolve(lock); return lock ? held : null; }).catch(reject);
  });
  if (got) return { waited: false, release };
  onWait();
  await new Promise((resolve, reject) => {
    locks.request(name, () => { resolve(); return held; }).catch(reject);
  });
  return { waited: true, release };
}

// ------------------------------------------------------------------ the download
/** Download (or read from the cache) every file of the manifest, in parallel, with streamed
 * progress; check size and sha256 while streaming. Verified files are kept in Cache Storage,
 * keyed by their sha256; a later visit reads them from there and checks them again: a damaged
 * entry is deleted and downloaded again, with one line for the user.
 * Returns at once with a promise per file (the small files are used before the model arrives)
 * and `done`. skip: names of manifest files this load does not need (model.onnx under intab's
 * kernel), or a function of the manifest that returns them (or a promise of them); they are neither fetched nor counted,
 * and their stored copies are kept. */
export async function downloadModel(modelId, onProgress, { skip = [] } = {}) {
  const manifest = await (await fetchChecked(`models/${modelId}/manifest.json`, 'the model manifest')).json();
  if (!Array.isArray(manifest.files)) throw named('LoadError', `the manifest of ${modelId} lists no files`);
  const skipped = typeof skip === 'function' ? await skip(manifest) : skip;
  const files = manifest.files.filter((f) => !skipped.includes(f.name));
  const state = files.map((f) => ({ name: f.name, loaded: 0, total: f.size, cached: false, source: null, eta: null, done: false }));
  const starts = files.map(() => null);   // [time, loaded] when bytes began to arrive
  const total = files.reduce((a, f) => a + f.size, 0);
  const healed = [];                       // [{name, reason}]
  let storeProblem = null;                 // why files could not be kept (quota)
  const notices = () => {
    const lines = [];
    if (healed.length) {
      const what = healed.map((h) => `${h.name} (${h.reason})`).join(', ');
      lines.push(healed.length === 1
        ? `The stored copy of ${what} was damaged: it was deleted and downloaded again.`
        : `The stored copies of ${what} were damaged: they were deleted and downloaded again.`);
    }
    if (storeProblem) lines.push(storeProblem);
    return lines;
  };
  let t0 = null;
  let last = 0;
  const report = (force) => {
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    const loaded = state.reduce((a, f) => a + f.loaded, 0);
    const left = (s, i) => {
      const st = starts[i];
      if (s.done || !st || now - st[0] < 500 || s.loaded <= st[1]) return null;
      return ((s.total - s.loaded) * (now - st[0])) / (s.loaded - st[1]) / 1000;
    };
    const etas = state.map((s, i) => (s.eta = left(s, i)));
    let eta = null;
    if (t0 !== null && now - t0 > 500 && loaded > 0) {
      const pending = etas.filter((e, i) => !state[i].done);
      // The overall rate since the first byte; the slowest running file bounds it from below.
      eta = Math.max(((total - loaded) * (now - t0)) / loaded / 1000, ...pending.map((e) => e ?? 0));
    }
    onProgress({
      phase: 'download', loaded, total, eta, rate: t0 !== null && now > t0 ? (loaded * 1000) / (now - t0) : null,
      files: state.map((s) => ({ ...s })), notices: notices(), fromMemory: !!storeProblem, otherTab,
    });
  };
  const cache = await openCache();
  const puts = [];
  // The network only under this model's lock (takeLock): taken by the first file the cache
  // lacks, held until every file is in and stored.
  let otherTab = false;                    // waiting for another tab's download
  let lock = null;
  const network = () => (lock ??= takeLock(modelId, () => {
    otherTab = true;
    for (const st of state) if (!st.done && !st.source) st.source = 'tab';
    report(true);
  }).catch(() => ({ waited: false, release: () => {} })));   // no lock to be had: download

  const one = async (f, i) => {
    const path = `models/${modelId}/${f.name}`;
    const key = modelKey(modelId, f);
    const onBytes = (n) => {
      const now = performance.now();
      if (t0 === null) t0 = now;
      if (!starts[i]) starts[i] = [now, 0];
      state[i].loaded = n;
      report(false);
    };
    // The stored copy, checked: its bytes, or null (none, or a damaged one: deleted, and one
    // line for the user says so).
    const stored = async () => {
      const hit = cache && await cache.match(key).catch(() => null);
      if (!hit) return null;
      state[i].source = 'cache';
      let r;
      try { r = await readBody(hit, f, onBytes, { native: true }); } catch (e) { r = { reason: `unreadable: ${e.message}` }; }
      if (r.buf) {
        Object.assign(state[i], { cached: true, done: true });
        report(true);
        return r.buf;
      }
      await cache.delete(key).catch(() => {});
      healed.push({ name: f.name, reason: r.reason });
      console.warn(`intab: the stored copy of ${f.name} was damaged (${r.bad || r.reason}); downloading it again`);
      state[i].loaded = 0;
      starts[i] = null;
      report(true);
      return null;
    };
    const kept = await stored();
    if (kept) return kept;
    state[i].source = otherTab ? 'tab' : null;
    if ((await network()).waited) {
      // The other tab's download is over: what it stored is read from here.
      otherTab = false;
      const theirs = await stored();
      if (theirs) return theirs;
    }
    state[i].source = 'network';
    // no-store: the copy that is kept is ours, checked, in Cache Storage; not a second one in
    // the HTTP cache.
    const res = await fetchChecked(path, `model file ${f.name}`, { cache: 'no-store' });
    let r;
    try {
      r = await readBody(res, f, onBytes);
    } catch (e) {
      throw named('LoadError', `the download of model file ${f.name} broke off after ${mb(state[i].loaded)} of ${mb(f.size)} MB (${e.message}); check the connection and press Retry`);
    }
    if (!r.buf) {
      throw named('IntegrityError', `model file ${f.name} is not the published one: ${r.bad}. Nothing was kept. Press Retry; if it happens again, the site's model files need rebuilding (python3 build.py build)`);
    }
    Object.assign(state[i], { done: true, eta: 0 });
    if (cache && !storeProblem) {
      // Stored in the background: the session need not wait for it, `done` does.
      puts.push(cache.put(key, sliced(r.buf)).catch((e) => {
        if (!storeProblem) {
          storeProblem = (e && e.name === 'QuotaExceededError')
            ? `Not enough storage space to keep the model on this device (${e.name}): running from memory for this visit; it will be downloaded again next time.`
            : `Could not keep the model on this device (${(e && e.name) || 'Error'}: ${e && e.message}): running from memory for this visit; it will be downloaded again next time.`;
          console.warn(`intab: could not cache ${f.name}: ${e && e.name}: ${e && e.message}`);
        }
        report(true);
      }));
    }
    report(true);
    return r.buf;
  };

  const byName = {};
  files.forEach((f, i) => {
    // A failed file waits for the stores already under way, so that a Retry (which may end this
    // worker) finds every file that was verified before the failure.
    byName[f.name] = one(f, i).catch(async (e) => { await Promise.allSettled(puts); throw e; });
    byName[f.name].catch(() => {});
  });
  // The time left keeps moving while no bytes come (a stalled connection).
  const tick = setInterval(() => report(true), 500);
  Promise.allSettled(Object.values(byName)).then(() => clearInterval(tick));
  const done = (async () => {
    try {
      await Promise.all(Object.values(byName));
      while (puts.length) await Promise.all(puts.splice(0));
    } finally {
      if (lock) (await lock).release();
    }
    if (cache) await deleteStale(cache, modelId, manifest.files);
    report(true);
    return state.filter((s) => s.cached).map((s) => s.name);
  })();
  done.catch(() => {});
  return { manifest, files: byName, done };
}
