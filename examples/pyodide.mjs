// A plain Pyodide page running intab's Python API: Pyodide from this site (vendor/pyodide), micropip's
// wheel from py/, intab's JS client (registered as `intab_js`, which
// intab.load() looks for: its openBridge runs the model in a worker), and the user's Python in pyodide_demo.py.
import { loadPyodide } from '../vendor/pyodide/pyodide.mjs';
import * as intabJs from '../intab.mjs';

const $ = (id) => document.getElementById(id);
const site = new URL('../', import.meta.url).href;

async function main() {
  const t0 = performance.now();
  const pyodide = await loadPyodide({ indexURL: new URL('../vendor/pyodide/', import.meta.url).href });
  await pyodide.loadPackage(`${site}py/micropip-0.11.1-py3-none-any.whl`);
  pyodide.registerJsModule('intab_js', intabJs);
  pyodide.globals.set('SITE', site);
  pyodide.globals.set('BOOT_MS', performance.now() - t0);
  const code = await (await fetch('pyodide_demo.py')).text();
  await pyodide.runPythonAsync(code);
  const ask = pyodide.globals.get('ask');
  $('ask').disabled = false;
  $('ask').onclick = async () => {
    $('ask').disabled = true;
    try { await ask($('question').value); } finally { $('ask').disabled = false; }
  };
  document.body.dataset.state = 'ready';
}

main().catch((err) => {
  $('status').textContent = `Error: ${err.message}`;
  document.body.dataset.state = 'error';
});
