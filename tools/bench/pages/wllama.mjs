// wllama (@wllama/wllama: llama.cpp compiled to wasm64 + JSPI, its server loop in a worker) on
// the very GGUF intab converts its weights from, served by the same local server (/gguf/<model>.gguf).
// Multi-thread build when the page is cross-origin isolated and threads > 1 (wllama picks it);
// WebGPU off (n_gpu_layers 0): this is the WASM comparison.
// The prompt: the plan's templated text (intab's chat template, special tokens written out), which
// llama.cpp tokenizes with special tokens parsed; wllama 3.8.1 crashes on llama-server's
// token-array prompt (RangeError in its worker's runAction), so ids cannot be passed. Whether its
// tokens are intab's is checked by count (prompt_n == the plan's ids) and the harness compares
// the generated ids (the first CHECK_TOKENS of the first prompt). Greedy (temperature 0, top_k 1),
// EOS ignored, no prompt cache across prompts (each prefill is whole, as intab's after resetChat).
import { Wllama } from '/wllama/index.js';
import { fail, figures, generate, loadPlan, result, setState, threads, params } from './common.mjs';

result.runtime = 'wllama';
const modelId = params.get('model');

const CHECK_TOKENS = 16;

/** One greedy generation of prompt p; the token ids only when withIds (logprobs, slow). */
async function complete(wllama, p, maxTokens, withIds) {
  const times = [];
  const ids = [];
  let timings = null;
  const t0 = performance.now();
  await wllama.createCompletion({
    prompt: p.text, max_tokens: maxTokens, temperature: 0, temp: 0, top_k: 1, ignore_eos: true,
    cache_prompt: false, ...(withIds ? { logprobs: 1, n_probs: 1 } : {}), stream: true,
    onData: (chunk) => {
      const now = performance.now();
      const c = chunk.choices && chunk.choices[0];
      if (withIds) {
        for (const t of (c && c.logprobs && c.logprobs.content) || []) { ids.push(t.id); times.push(now); }
      } else if (c && c.text !== undefined && !chunk.timings) {
        times.push(now);   // one chunk per sampled token (a final chunk carries the timings)
      }
      if (chunk.timings) timings = chunk.timings;
    },
  });
  const r = figures(p.name, p.ids.length, t0, times, withIds ? ids : []);
  r.prompt_ids_match = timings ? timings.prompt_n === p.ids.length : null;
  r.llama_timings = timings;   // llama.cpp's own prompt_ms / predicted_ms, kept in the JSON
  return r;
}

async function main() {
  const plan = await loadPlan();
  // The context holds the longest prompt and its new tokens: a bigger n_ctx would allocate a
  // bigger KV cache and inflate wllama's RSS against intab's.
  const need = Math.max(512, ...plan.prompts.map((p) => p.ids.length + p.max_tokens + 16));
  const nCtx = Math.ceil(need / 256) * 256;
  const wllama = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
  await wllama.loadModelFromUrl(`/gguf/${modelId}.gguf`, { n_threads: threads, n_ctx: nCtx, n_batch: 512, n_gpu_layers: 0 });
  result.loadMs = performance.now();
  result.info = { multithread: wllama.isMultithread(), numThreads: wllama.getNumThreads(), nCtx,
    libllama: Wllama.getLibllamaVersion(), crossOriginIsolated: self.crossOriginIsolated === true };
  setState('ready');
  if (!generate) { setState('done'); return; }
  setState('generating');
  for (const [i, p] of plan.prompts.entries()) {
    const r = await complete(wllama, p, p.max_tokens, false);
    if (i === 0) {
      // The ids, from a second, shorter generation of the first prompt with logprobs on: asking
      // for them costs wllama ~1 s a token here (0.7 against 15 tok/s, 2 threads, same load, 2026-12-02), so
      // the timed generations go without; greedy makes this one the timed one's prefix.
      r.token_ids = (await complete(wllama, p, Math.min(CHECK_TOKENS, p.max_tokens), true)).token_ids;
      r.token_ids_prefix = true;
    }
    result.runs.push(r);
  }
  setState('done');
}

main().catch(fail);
