// Drives the real worker with onnxruntime's profiler on: one turn of `n` greedy tokens (EOS
// ignored), then the per-node events. tools/profile_step.py reads the results from the DOM.
const q = new URLSearchParams(location.search);
const worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module' });
const prompt = q.get('prompt') || 'Write a long, detailed story about a dragon who learns to bake bread.';
const out = {};
const finish = (state) => {
  document.body.dataset.results = JSON.stringify(out);
  document.body.dataset.state = state;
};
worker.onmessage = (ev) => {
  const m = ev.data;
  if (m.type === 'ready') {
    out.ready = { loadMs: m.loadMs, timings: m.timings, threads: m.threads, backend: m.backend };
    worker.postMessage({ type: 'chat', id: 1, messages: [{ role: 'user', content: prompt }],
      options: { temperature: 0, max_tokens: Number(q.get('n') || 64), ignore_eos: true } });
  } else if (m.type === 'done') {
    delete m.result.text;
    out.result = m.result;
    worker.postMessage({ type: 'end-profiling' });
  } else if (m.type === 'profiling') {
    out.events = m.events;
    finish('done');
  } else if (m.type === 'error') {
    out.error = `${m.name}: ${m.message}`;
    finish('error');
  }
};
worker.postMessage({ type: 'load', backend: 'wasm', model: q.get('model') || undefined,
  threads: Number(q.get('threads') || 2), profiling: q.get('profiling') !== '0' });
