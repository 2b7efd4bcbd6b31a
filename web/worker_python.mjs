// Python in the worker: Pyodide's boot, the intab bundle unpacked into site-packages, and the
// engine session (py/intab/pyodide_glue.py) over the model's bridge. The session answers every
// call with {ok, value} or {ok: false, error: {name, message, hint, param}}: unwrap() turns the
// latter into a typed IntabError, so no traceback is ever parsed.

import { IntabError, fromWire } from './errors.mjs';
import { fetchChecked, url } from './model_store.mjs';

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

/** Start Pyodide and fetch the Python bundle at once (both overlap the model's download).
 * Pyodide boots from py/intab-snapshot.bin.gz (build.py's py-snapshot step: its memory after the
 * boot, intab imported) where that file is there and fits this pyodide.asm.wasm; otherwise it
 * boots from scratch, as before. Gzipped: 31.5 MB of memory is 7.3 MB to download (a gzip file, not
 * a Content-Encoding, so any static host serves it as it is). Measured (build.py bench --start):
 * see web/README.md. */
export function bootPython(timings, t0, tl, { snapshot = true } = {}) {
  const snap = snapshot
    ? tl.span('python.snapshot', fetch(url('py/intab-snapshot.bin.gz'))
      .then((r) => (r.ok ? new Response(r.body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer() : null))
      .catch(() => null))
    : Promise.resolve(null);
  const pyodide = (async () => {
    const { loadPyodide } = await tl.span('pyodide.import', import('./vendor/pyodide/pyodide.mjs'));
    const options = { indexURL: url('vendor/pyodide/'), packages: [] };
    const bytes = await snap;
    let py = null;
    if (bytes) {
      try {
        py = await tl.span('pyodide.boot', loadPyodide({ ...options, _loadSnapshot: new Uint8Array(bytes) }));
        timings.pyodideSnapshot = true;
      } catch (err) {
        console.warn(`intab: Pyodide's snapshot did not load (${err && err.message}); booting without it`);
      }
    }
    py ??= await tl.span('pyodide.boot', loadPyodide(options));
    timings.pyodideMs = Math.round(performance.now() - t0);
    return py;
  })();
  const bundle = tl.span('python.bundle', fetchChecked('py/intab-bundle.zip', 'the Python bundle').then((r) => r.arrayBuffer()));
  const bundleSha = bundle.then((b) => crypto.subtle.digest('SHA-256', b)).then(hex);
  pyodide.catch(() => {});
  bundle.catch(() => {});
  bundleSha.catch(() => {});
  return { pyodide, bundle, bundleSha };
}

/** The snapshot's modules from the bundle (intab, jinja2, ...) stay only where they came from
 * this very bundle; otherwise (another build's snapshot) they are forgotten and imported anew. */
const KEEP_OR_FORGET = `
import sys
_m = sys.modules.get('intab_snapshot')
if _m is not None and _m.BUNDLE != BUNDLE_SHA:
    for _n, _mod in list(sys.modules.items()):
        if _n == 'intab_snapshot' or (getattr(_mod, '__file__', None) or '').startswith(SITE):
            del sys.modules[_n]
    import importlib
    importlib.invalidate_caches()
`;

/** PyProxy / JS value -> plain JS (dicts as objects), destroying the proxy. */
export function toPlain(v) {
  if (v && typeof v.toJs === 'function') {
    const js = v.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
    v.destroy();
    return js;
  }
  return v;
}

/** {ok, value} -> value; {ok: false, error} -> throws the typed error. */
export function unwrap(answer) {
  const a = toPlain(answer);
  if (a && a.ok) return a.value;
  if (a && a.error) throw fromWire(a.error);
  throw new IntabError('the engine gave no answer', { name: 'InternalError' });
}

/** Pyodide with the intab bundle unpacked (once per boot). */
export function pythonReady(boot, tl) {
  boot.ready ??= (async () => {
    const pyodide = await boot.pyodide;
    const bundle = await boot.bundle;
    tl.start('python.unpack');
    const sitePackages = pyodide.runPython("import sys\nnext(p for p in sys.path if p.endswith('site-packages'))");
    pyodide.unpackArchive(bundle, 'zip', { extractDir: sitePackages });
    const scope = pyodide.toPy({ BUNDLE_SHA: await boot.bundleSha, SITE: sitePackages });
    pyodide.runPython(KEEP_OR_FORGET, { globals: scope });
    scope.destroy();
    tl.end('python.unpack');
    return pyodide;
  })();
  return boot.ready;
}

/** describe(head, size, name, stack, architectures) for web/gguf_model.mjs: a GGUF's header ->
 * the model folder, by py/intab/gguf_model.py (the answer parsed: {ok, value} or {ok: false, error, needed}). */
export function ggufDescriber(boot, tl) {
  return async (head, size, name, stack, architectures) => {
    const pyodide = await pythonReady(boot, tl);
    tl.start('gguf.python');   // the import, the header read, config/tokenizer/layout built
    const mod = pyodide.pyimport('intab.gguf_model');
    try {
      return JSON.parse(mod.describe_json(head, size, name, stack, architectures));
    } finally {
      mod.destroy();
      tl.end('gguf.python');
    }
  };
}

/** The engine session over `bridge` (which may still be on its way: see lateBridge). */
export async function createSession(boot, bridge, files, timings, tl) {
  const pyodide = await pythonReady(boot, tl);
  const tP = performance.now();
  tl.start('python.import');
  const glue = pyodide.pyimport('intab.pyodide_glue');
  tl.end('python.import');
  tl.start('python.session');   // the tokenizer (tokenizer.json parsed) and the chat template
  const session = glue.create_session(bridge, files);
  glue.destroy();
  const defaults = toPlain(session.defaults());
  tl.end('python.session');
  timings.pythonMs = Math.round(performance.now() - tP);
  return { pyodide, session, defaults };
}

/** A bridge that Python can hold before the model's runtime exists (Python's set-up then overlaps
 * the download and the session creation); calls wait for the real one. */
export function lateBridge(backend, threads, bridgePromise) {
  let real = null;
  bridgePromise.then((b) => { real = b; }, () => {});
  const get = async () => real || bridgePromise;
  return {
    get backend() { return real ? real.backend : backend; },
    threads,
    get kvLength() { return real ? real.kvLength : 0; },
    async forward(ids, startPos, k, head) { return (await get()).forward(ids, startPos, k, head); },
    async truncate(n) { return (await get()).truncate(n); },
    async snapshot() { return (await get()).snapshot(); },
    async restore(s) { return (await get()).restore(s); },
    get stats() { return real ? real.stats : null; },
    release() { bridgePromise.then((b) => b.release(), () => {}); },
  };
}
