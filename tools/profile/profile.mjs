// Drives the real worker, through the public client, with onnxruntime's profiler on: one turn of
// `n` greedy tokens (EOS ignored), then the per-node events. tools/profile_step.py reads the
// results from the DOM.
import * as intab from './intab.mjs';

const q = new URLSearchParams(location.search);
const prompt = q.get('prompt') || 'Write a long, detailed story about a dragon who learns to bake bread.';
const out = {};
const finish = (state) => {
  document.body.dataset.results = JSON.stringify(out);
  document.body.dataset.state = state;
};
try {
  const engine = await intab.create({ backend: 'wasm', model: q.get('model') || undefined,
    threads: Number(q.get('threads') || 2), profiling: q.get('profiling') !== '0' });
  const m = engine.info;
  out.ready = { loadMs: m.loadMs, timings: m.timings, threads: m.threads, backend: m.backend };
  const result = await engine.generate('chat', [{ role: 'user', content: prompt }],
    { temperature: 0, max_tokens: Number(q.get('n') || 64), ignore_eos: true });
  delete result.text;
  out.result = result;
  out.events = await engine.takeProfile();
  finish('done');
} catch (err) {
  out.error = `${err.name}: ${err.message}`;
  finish('error');
}
