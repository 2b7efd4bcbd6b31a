// intab, as the app runs it: the real static/worker.mjs (Pyodide + onnxruntime-web) in a module
// worker, driven by its message protocol (web/README.md). The worker is not changed.
import { fail, generate, loadPlan, params, result, setState, threads } from './common.mjs';

result.runtime = 'intab';
const model = params.get('model');
const backend = params.get('backend') || 'wasm';
const worker = new Worker('/worker.mjs', { type: 'module' });

let waiting = null; // {types, resolve, reject}
let onDelta = null;
worker.onmessage = (ev) => {
  const msg = ev.data || {};
  if (msg.type === 'delta') { if (onDelta) onDelta(msg); return; }
  if (msg.type === 'progress') return;
  if (msg.type === 'error') {
    const w = waiting; waiting = null;
    const err = Object.assign(new Error(msg.message), { name: msg.name });
    if (w) w.reject(err); else fail(err);
    return;
  }
  if (waiting && waiting.types.includes(msg.type)) {
    const w = waiting; waiting = null;
    w.resolve(msg);
  }
};
const next = (...types) => new Promise((resolve, reject) => { waiting = { types, resolve, reject }; });

async function main() {
  const planPromise = generate ? loadPlan() : null;
  const ready = next('ready');
  worker.postMessage({ type: 'load', backend, model, threads, memory: params.get('memory') || 'fast', kernel: params.get('kernel') || 'auto' });
  const info = await ready;
  result.loadMs = performance.now();
  result.info = { backend: info.backend, kernel: info.kernel, threads: info.threads, crossOriginIsolated: info.crossOriginIsolated,
    model: info.model && info.model.id, workerLoadMs: info.loadMs, timings: info.timings, fromCache: info.fromCache };
  setState('ready');
  if (!generate) { setState('done'); return; }
  const plan = await planPromise;
  setState('generating');
  let id = 0;
  for (const p of plan.prompts) {
    // Forget the KV cache first: the prompts share the template's system prompt, and a reused
    // prefix would shorten the prefill.
    const reset = next('reset-done');
    worker.postMessage({ type: 'reset' });
    await reset;
    const deltaTimes = [];
    onDelta = () => { deltaTimes.push(performance.now()); };
    id += 1;
    const done = next('done');
    const t0 = performance.now();
    worker.postMessage({ type: 'chat', id, messages: [{ role: 'user', content: p.content }],
      options: { temperature: 0, max_tokens: p.max_tokens, ignore_eos: true } });
    const msg = await done;
    const tDone = performance.now();
    onDelta = null;
    const r = msg.result;
    const n = r.new_tokens;
    result.runs.push({
      name: p.name,
      prompt_tokens: r.prompt_tokens,
      new_tokens: n,
      // The engine's own timers (Python, perf_counter): TTFT from the start of generation (prompt
      // already tokenized) to token 1; decode = (n - 1) / (end - token 1).
      ttft_ms: r.ttft_ms,
      prefill_tok_s: r.prefill_tok_s,
      decode_tok_s: r.decode_tok_s,
      python_ms_per_token: r.python_ms_per_token,
      finish_reason: r.finish_reason,
      token_ids: Array.from(r.token_ids, Number),
      // Page-side: chat posted -> first 'delta' (tokenizing + template + messaging included),
      // and (n - 1) / ('done' - first delta).
      page: {
        ttft_ms: deltaTimes.length ? deltaTimes[0] - t0 : null,
        decode_tok_s: deltaTimes.length && n > 1 ? (n - 1) / ((tDone - deltaTimes[0]) / 1000) : null,
        total_ms: tDone - t0,
        deltas: deltaTimes.length,
      },
    });
  }
  setState('done');
}

main().catch(fail);
