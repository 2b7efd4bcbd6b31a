// Python in the worker: Pyodide's boot, the intab bundle unpacked into site-packages, and the
// engine session (py/intab/pyodide_glue.py) over the model's bridge. The session answers every
// call with {ok, value} or {ok: false, error: {name, message, hint, param}}: unwrap() turns the
// latter into a typed IntabError, so no traceback is ever parsed.

import { IntabError, fromWire } from './errors.mjs';
import { fetchChecked, url } from './model_store.mjs';

/** Start Pyodide and fetch the Python bundle at once (both overlap the model's download). */
export function bootPython(timings, t0) {
  const pyodide = (async () => {
    const { loadPyodide } = await import('./vendor/pyodide/pyodide.mjs');
    const py = await loadPyodide({ indexURL: url('vendor/pyodide/'), packages: [] });
    timings.pyodideMs = Math.round(performance.now() - t0);
    return py;
  })();
  const bundle = fetchChecked('py/intab-bundle.zip', 'the Python bundle').then((r) => r.arrayBuffer());
  pyodide.catch(() => {});
  bundle.catch(() => {});
  return { pyodide, bundle };
}

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

/** The engine session over `bridge` (which may still be on its way: see lateBridge). */
export async function createSession(boot, bridge, files, timings) {
  const pyodide = await boot.pyodide;
  const bundle = await boot.bundle;
  const sitePackages = pyodide.runPython("import sys\nnext(p for p in sys.path if p.endswith('site-packages'))");
  pyodide.unpackArchive(bundle, 'zip', { extractDir: sitePackages });
  const tP = performance.now();
  const glue = pyodide.pyimport('intab.pyodide_glue');
  const session = glue.create_session(bridge, files);
  glue.destroy();
  const defaults = toPlain(session.defaults());
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
