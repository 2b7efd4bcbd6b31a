// A bare onnxruntime-web greedy loop in plain JS: the same ORT bundle as intab
// (vendor/ort/ort.wasm.min.mjs), the comparator model (fp32, head="logits"), argmax in JS,
// the KV cache (present.*) fed back as past_key_values.* each step. Prompt ids come from the
// plan (intab's tokenizer, chat template applied).
import * as ort from '/vendor/ort/ort.wasm.min.mjs';
import { fail, figures, generate, loadPlan, params, result, setState, threads } from './common.mjs';

result.runtime = 'bare ORT';
const modelId = params.get('model');
ort.env.wasm.wasmPaths = '/vendor/ort/';
ort.env.wasm.numThreads = threads;
ort.env.wasm.proxy = false;
ort.env.logLevel = 'error';

async function main() {
  const planPromise = generate ? loadPlan() : null;
  const base = `/cmp/${modelId}/`;
  const [config, bytes] = await Promise.all([
    fetch(base + 'config.json').then((r) => r.json()),
    fetch(base + 'onnx/model.onnx').then((r) => { if (!r.ok) throw new Error(`model.onnx: HTTP ${r.status}`); return r.arrayBuffer(); }),
  ]);
  const session = await ort.InferenceSession.create(new Uint8Array(bytes), {
    executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  result.loadMs = performance.now();
  result.info = { ortVersion: ort.env.versions && ort.env.versions.web, numThreads: ort.env.wasm.numThreads,
    crossOriginIsolated: self.crossOriginIsolated === true };
  setState('ready');
  if (!generate) { setState('done'); return; }
  const plan = await planPromise;
  setState('generating');

  const layers = config.num_hidden_layers;
  const kvHeads = config.num_key_value_heads;
  const headDim = config.head_dim || config.hidden_size / config.num_attention_heads;
  const vocab = config.vocab_size;

  for (const p of plan.prompts) {
    let past = {};
    for (let i = 0; i < layers; i++) {
      for (const k of ['key', 'value']) past[`past_key_values.${i}.${k}`] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
    }
    let pos = 0;
    const times = [];
    const ids = [];
    const t0 = performance.now();
    let input = p.ids;
    while (ids.length < p.max_tokens) {
      const n = input.length;
      const feeds = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(input, BigInt), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(pos + n).fill(1n), [1, pos + n]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, j) => BigInt(pos + j)), [1, n]),
        ...past,
      };
      const out = await session.run(feeds);
      const logits = out.logits.data; // [1, n, vocab]: argmax of the last row
      let best = 0;
      let bestV = -Infinity;
      for (let j = (n - 1) * vocab, v = 0; v < vocab; v++, j++) {
        if (logits[j] > bestV) { bestV = logits[j]; best = v; }
      }
      times.push(performance.now());
      ids.push(best);
      for (const t of Object.values(past)) t.dispose();
      out.logits.dispose();
      past = {};
      for (let i = 0; i < layers; i++) {
        for (const k of ['key', 'value']) past[`past_key_values.${i}.${k}`] = out[`present.${i}.${k}`];
      }
      pos += n;
      input = [best];
    }
    for (const t of Object.values(past)) t.dispose();
    result.runs.push(figures(p.name, p.ids.length, t0, times, ids));
  }
  setState('done');
}

main().catch(fail);
