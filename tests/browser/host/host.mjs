// A host page of its own (tests/browser/test_element_host.py): intab's static/ copied under
// ./lib/intab/, one engine created by the page and handed to two <intab-chat> elements.
import * as intab from './lib/intab/intab.mjs';   // also defines <intab-chat>

window.hostLog = { violations: [], events: [] };
document.addEventListener('securitypolicyviolation', (e) => {
  window.hostLog.violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample });
}, true);
for (const type of ['intab-ready', 'intab-message', 'intab-error', 'intab-state']) {
  document.addEventListener(type, (e) => window.hostLog.events.push({ type, id: e.target.id, detail: JSON.parse(JSON.stringify(e.detail)) }));
}

const status = document.getElementById('host-status');
const engine = intab.create({
  onProgress: (p) => { if (p.total) status.textContent = `Loading the model: ${Math.round((100 * p.loaded) / p.total)}%`; },
});
for (const el of document.querySelectorAll('intab-chat')) el.engine = engine;
engine.then((e) => { status.textContent = `Ready: ${e.info.backend}, ${e.info.threads} thread${e.info.threads === 1 ? '' : 's'}`; window.hostEngine = e; },
  (err) => { status.textContent = `Could not load: ${err.message}`; });
