// transformers.js (@huggingface/transformers, its own bundled onnxruntime-web) on the comparator
// model (the same network, fp32, head="logits"), local files only, device 'wasm', greedy.
import { AutoModelForCausalLM, AutoTokenizer, env } from '/tjs/transformers.min.js';
import { fail, figures, generate, loadPlan, params, result, setState, threads } from './common.mjs';

result.runtime = 'transformers.js';
const modelId = params.get('model');

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/cmp/';
// Its onnxruntime-web files, served locally (by default it fetches them from a CDN); the same
// build it would pick by default (asyncify), numThreads as asked.
const ortEnv = env.backends.onnx;
ortEnv.wasm.wasmPaths = { mjs: '/tjs-ort/ort-wasm-simd-threaded.asyncify.mjs', wasm: '/tjs-ort/ort-wasm-simd-threaded.asyncify.wasm' };
ortEnv.wasm.numThreads = threads;

async function main() {
  const planPromise = generate ? loadPlan() : null;
  const [tokenizer, model] = await Promise.all([
    AutoTokenizer.from_pretrained(modelId),
    AutoModelForCausalLM.from_pretrained(modelId, { dtype: 'fp32', device: 'wasm' }),
  ]);
  result.loadMs = performance.now();
  result.info = { version: env.version, ortVersion: ortEnv.versions && ortEnv.versions.web, numThreads: ortEnv.wasm.numThreads,
    crossOriginIsolated: self.crossOriginIsolated === true };
  setState('ready');
  if (!generate) { setState('done'); return; }
  const plan = await planPromise;
  setState('generating');
  for (const p of plan.prompts) {
    const tT = performance.now();
    const inputs = tokenizer.apply_chat_template([{ role: 'user', content: p.content }],
      { add_generation_prompt: true, return_dict: true });
    const promptIds = Array.from(inputs.input_ids.data, Number);
    const templateMs = performance.now() - tT;
    const times = [];
    const ids = [];
    let first = true;
    const streamer = {
      put(value) {
        if (first) { first = false; return; } // the prompt
        times.push(performance.now());
        ids.push(Number(value[0][0]));
      },
      end() {},
    };
    const t0 = performance.now();
    // Greedy, exactly max_tokens: eos_token_id null drops the EOS stopping criterion without
    // touching the logits (the same as intab's ignore_eos; min_new_tokens would mask EOS instead).
    await model.generate({ ...inputs, max_new_tokens: p.max_tokens, do_sample: false, eos_token_id: null, streamer });
    const f = figures(p.name, promptIds.length, t0, times, ids);
    f.template_ms = templateMs;
    f.prompt_ids_match = JSON.stringify(promptIds) === JSON.stringify(p.ids);
    result.runs.push(f);
  }
  setState('done');
}

main().catch(fail);
