// intab, as a page embeds it: the public client (static/intab.mjs) over the real worker
// (Pyodide + intab's kernel or onnxruntime-web), driven through Engine.generate.
import * as intab from '/intab.mjs';
import { fail, generate, loadPlan, params, result, setState, threads } from './common.mjs';

result.runtime = 'intab';
const model = params.get('model');
const backend = params.get('backend') || 'wasm';

async function main() {
  const planPromise = generate ? loadPlan() : null;
  const engine = await intab.create({ backend, model: model || undefined, threads, memory: params.get('memory') || 'fast', kernel: params.get('kernel') || 'auto' });
  const info = engine.info;
  result.loadMs = performance.now();
  result.info = { backend: info.backend, kernel: info.kernel, threads: info.threads, crossOriginIsolated: info.crossOriginIsolated,
    model: info.model && info.model.id, workerLoadMs: info.loadMs, timings: info.timings, fromCache: info.fromCache };
  setState('ready');
  if (!generate) { setState('done'); return; }
  const plan = await planPromise;
  setState('generating');
  for (const p of plan.prompts) {
    // Forget the KV cache first: the prompts share the template's system prompt, and a reused
    // prefix would shorten the prefill.
    await engine.resetChat();
    const deltaTimes = [];
    const t0 = performance.now();
    // kind 'complete': a base model without a chat template (the plan says so), plain text.
    const r = await engine.generate(p.kind || 'chat', p.kind === 'complete' ? p.content : [{ role: 'user', content: p.content }],
      { temperature: 0, max_tokens: p.max_tokens, ignore_eos: true }, { onDelta: () => { deltaTimes.push(performance.now()); } });
    const tDone = performance.now();
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
      // Page-side: generate called -> first delta (tokenizing + template + messaging included),
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
