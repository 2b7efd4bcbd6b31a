// A test page (tests/browser/test_python_props.py serves it next to the site's files, never in
// the site): Pyodide from the site, intab installed with micropip from the site's index, and the
// test's wheels (hypothesis and sortedcontainers, ?wheel=...) loaded by URL; then props.py, whose
// report ends up in document.body.dataset.report. ?examples=N sets hypothesis's budget, ?seed=S.
import { loadPyodide } from '../vendor/pyodide/pyodide.mjs';
import * as intabJs from '../intab.mjs';

const site = new URL('../', import.meta.url).href;
const params = new URLSearchParams(location.search);
const status = document.getElementById('status');

async function main() {
  const pyodide = await loadPyodide({ indexURL: `${site}vendor/pyodide/` });
  const wheels = params.getAll('wheel').map((w) => new URL(w, location.href).href);
  await pyodide.loadPackage([`${site}py/${params.get('micropip')}`, ...wheels]);
  pyodide.registerJsModule('intab_js', intabJs);
  pyodide.globals.set('SITE', site);
  pyodide.globals.set('EXAMPLES', Number(params.get('examples') || 40));
  pyodide.globals.set('SEED', Number(params.get('seed') || 0));
  const code = await (await fetch('props.py')).text();
  document.body.dataset.report = await pyodide.runPythonAsync(code);
  document.body.dataset.state = 'done';
}

main().catch((err) => {
  status.textContent = `Error: ${err.message}`;
  document.body.dataset.report = JSON.stringify({ crashed: String(err && err.message) });
  document.body.dataset.state = 'done';
});
