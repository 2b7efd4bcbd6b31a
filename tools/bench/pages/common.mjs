// Shared by the bench pages. Each page exposes its progress and result to the harness through
// `document.body.dataset.bench` ('loading' | 'ready' | 'generating' | 'done' | 'error') and
// `window.benchResult` (read with page.evaluate("() => window.benchResult")).
// Times are performance.now() values: milliseconds since the navigation started ("page open").

export const params = new URLSearchParams(location.search);
export const threads = Number(params.get('threads') || '1');
export const generate = params.get('gen') === '1';

export const result = { runtime: '', threads, generate, loadMs: null, runs: [], info: {}, error: null };
window.benchResult = result;

export function setState(s) { document.body.dataset.bench = s; }

export function fail(err) {
  result.error = `${(err && err.name) || 'Error'}: ${(err && err.message) || String(err)}`;
  setState('error');
}

/** The bench plan written by the harness: prompts, their token ids (intab's tokenizer, chat
 * template applied) and how many tokens to generate for each. */
export async function loadPlan() {
  // ?plan=<id>: bench-data/plan-<id>.json (--sizes: each model with its own tokenizer's ids).
  const name = params.get('plan');
  const res = await fetch(name ? `/bench-data/plan-${name}.json` : '/bench-data/plan.json');
  if (!res.ok) throw new Error(`plan.json: HTTP ${res.status}`);
  return res.json();
}

/** One generation's figures, from the prompt's start time and the time each new token was
 * known: TTFT = token 1 - start; decode tok/s = (n - 1) / (time of token n - time of token 1). */
export function figures(name, promptTokens, t0, tokenTimes, tokenIds) {
  const n = tokenTimes.length;
  const ttft = n ? tokenTimes[0] - t0 : null;
  return {
    name,
    prompt_tokens: promptTokens,
    new_tokens: n,
    ttft_ms: ttft,
    prefill_tok_s: ttft ? promptTokens / (ttft / 1000) : null,
    decode_tok_s: n > 1 ? (n - 1) / ((tokenTimes[n - 1] - tokenTimes[0]) / 1000) : null,
    token_ids: tokenIds,
    token_times: tokenTimes.map((t) => Math.round((t - t0) * 10) / 10),
  };
}
