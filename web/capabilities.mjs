// What each runtime can run, decided from a model's manifest.json (its architecture and its
// weights layout: roles, block kinds, shapes) and config.json, in one place.
//
//   import { kernelMisfit, ortMisfit, roleTable } from './capabilities.mjs';
//   kernelMisfit(manifest, config)          // '' when intab's WASM kernel runs it, else why not
//   ortMisfit(manifest, config, backend)    // '' when onnxruntime-web can, else why not
//   roleTable(manifest.weights, config)     // the layout's tensors by role, per layer (the kernel
//                                           // bridge maps by it; models/graph.py writes the roles)
//   kernelMemory(layout, config, maxContext) // bytes the kernel needs: {weights, kv, activations, total}
//   kernelContext(layout, config)           // the longest context whose KV cache fits beside the weights
//   unknownKind(layout)                     // the first tensor in a block kind the kernel does not compute
//
// The rules are today's kernel (web/kernel/decoder.c, web/kernel_bridge.mjs): the llama, qwen2,
// qwen3 and gemma3 blocks (every part of LAYER_PARTS, q/k/v and gate/up fused or each its own
// tensor), a tied or untied output layer, rope from rope_theta with Llama 3's factors (rope_freqs)
// or linear / llama3 rope_scaling, matrices in every GGUF block kind of BLOCK_KINDS (set_mat
// converts each into the product loops' layouts) and F32 vectors, sizes in whole 32-value blocks,
// at most 64 layers, and the converted weights, the KV cache and the activations within the
// module's memory (kernelMemory). As the kernel learns more, this table changes, not the worker.
// Roles (docs/contracts.md §2): `embed`, `final_norm`, `lm_head`,
// `rope_freqs`, and per layer i `l{i}_<part>` with the parts of LAYER_PARTS.

/** Per-layer roles models/graph.py can write (py/intab/arch's LayerParts, fused or not). */
export const LAYER_PARTS = [
  'attn_norm', 'qkv', 'q', 'k', 'v', 'qkv_bias', 'q_bias', 'k_bias', 'v_bias', 'q_norm', 'k_norm', 'o',
  'post_attn_norm', 'ffn_norm', 'gate_up', 'gate', 'up', 'down', 'post_ffn_norm',
];
export const MODEL_PARTS = ['embed', 'final_norm', 'lm_head', 'rope_freqs'];

/** Block kinds the transport format carries and web/weights.mjs expands (py/intab/arch BLOCK_KINDS). */
export const BLOCK_KINDS = ['F32', 'F16', 'BF16', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q4_K', 'Q5_K', 'Q6_K'];

/** What intab's WASM kernel runs today. */
export const KERNEL = {
  architectures: ['llama', 'qwen2', 'qwen3', 'gemma3'],
  kinds: BLOCK_KINDS,     // every one (decoder.c's convert)
  layerParts: LAYER_PARTS,   // each where the layer has it (pairs whole: q_norm/k_norm, both post-norms, all q/k/v biases)
  ropeScaling: ['linear', 'llama3'],
  activations: ['silu', 'gelu_pytorch_tanh'],
  maxLayers: 64,          // decoder.c's MAX_LAYERS
  block: 32,              // hidden, intermediate and head sizes in whole blocks
  memoryBytes: 2 ** 32 - 65536,   // the module is linked with --max-memory=4 GiB less a page (wasm32: 4 GiB)
  chunk: 128,             // kernel_bridge.mjs's CHUNK: tokens per pass (sizes the activations)
};

// Bytes per 32 values that set_mat adds to a matrix's GGUF bytes (which stay in memory): the
// float32 scales (and mins) of the in-place layouts, or the int8 / float32 copy and its scales.
const CONVERT_EXTRA = { F32: 0, F16: 128, BF16: 128, Q4_0: 8, Q4_1: 8, Q4_K: 8, Q8_0: 4, Q5_0: 36, Q5_1: 40, Q5_K: 40, Q6_K: 40 };

/** What the kernel's memory holds for this model at a context of maxContext tokens (default: the
 * bridge's, config.max_position_embeddings): weights (weights.bin plus set_mat's conversions), kv
 * (float32 keys and values, reserved for the whole context), activations (a chunk's, the head's,
 * the rotary tables). */
export function kernelMemory(layout, config, maxContext) {
  const c = config || {};
  const H = c.hidden_size, I = c.intermediate_size, L = c.num_hidden_layers, nh = c.num_attention_heads;
  const nkv = c.num_key_value_heads ?? nh, hd = c.head_dim ?? H / nh, V = c.vocab_size;
  const maxT = Math.min(maxContext || c.max_position_embeddings || 2048, c.max_position_embeddings || Infinity);
  let weights = layout.src_bytes || 0;
  for (const t of layout.tensors || []) if (t.rows > 1) weights += (CONVERT_EXTRA[t.kind] ?? 0) * (t.rows * t.cols / 32);
  const kv = L * 2 * nkv * maxT * hd * 4;
  const C = KERNEL.chunk, cols = Math.max(H, I, nh * hd);
  const activations = 4 * (C * (3 * H + (nh + 2 * nkv) * hd + nh * hd + 3 * I) + 8 * 8 * cols + 4 * V + maxT * (hd + 1))
    + (8 << 20);   // the bridge's slack above weights.bin
  return { weights, kv, activations, total: weights + kv + activations };
}

/** The longest context (tokens, a multiple of 256 up to max_position_embeddings) for which the
 * kernel's memory holds the weights, activations and KV cache; 0 when not even the least one
 * (512 tokens, or the model's maximum if smaller) fits. Llama 3.2 1B lists 131,072 positions, a
 * 16 GiB KV cache at float32: the kernel runs it with what fits rather than refusing it, and the
 * engine's context window says how much that is. */
export function kernelContext(layout, config) {
  const c = config || {};
  const maxPos = c.max_position_embeddings || 2048;
  const fits = (t) => kernelMemory(layout, c, t).total <= KERNEL.memoryBytes;
  if (fits(maxPos)) return maxPos;
  const least = Math.min(512, maxPos);
  if (!fits(least)) return 0;
  let lo = least, hi = maxPos;   // fits(lo), !fits(hi)
  while (hi - lo > 256) {
    const mid = Math.floor((lo + hi) / 2 / 256) * 256;
    if (mid <= lo) break;
    if (fits(mid)) lo = mid; else hi = mid;
  }
  return lo;
}

// onnxruntime-web's WASM build addresses 4 GiB; the float32 weights share it with the KV cache,
// activations and (unless ?memory=low) onnxruntime's pre-packed copies of the matrices.
const ORT_WASM_F32_LIMIT = 3 * 2 ** 30;

const ROLE = /^l(\d+)_([a-z_]+)$/;

/** The layout's tensors by role: {embed, final_norm, lm_head, rope_freqs, layers: [{part: tensor}],
 * unknown: [tensor], missing: [role]}; `missing` lists the required roles absent (the llama parts
 * each layer needs in some form, and embed / final_norm). */
export function roleTable(layout, config = {}) {
  const table = { layers: [], unknown: [], missing: [] };
  for (const t of (layout && layout.tensors) || []) {
    const role = t.role || '';
    const m = ROLE.exec(role);
    if (MODEL_PARTS.includes(role)) table[role] = t;
    else if (m && LAYER_PARTS.includes(m[2])) (table.layers[+m[1]] ??= {})[m[2]] = t;
    else table.unknown.push(t);
  }
  const n = config.num_hidden_layers ?? table.layers.length;
  for (const r of ['embed', 'final_norm']) if (!table[r]) table.missing.push(r);
  for (let i = 0; i < n; i++) {
    const l = table.layers[i] || {};
    const need = [['attn_norm'], ['qkv', 'q'], ['o'], ['ffn_norm'], ['gate_up', 'gate'], ['down']];
    for (const alts of need) if (!alts.some((p) => l[p])) table.missing.push(`l${i}_${alts[0]}`);
  }
  return table;
}

/** The first tensor of the layout in a block kind the kernel does not compute, or undefined. */
export const unknownKind = (layout) => layout.tensors.find((t) => !KERNEL.kinds.includes(t.kind));

/** Why intab's WASM kernel cannot run this model, or '' when it can (config null: the manifest's facts only). */
export function kernelMisfit(manifest, config) {
  const layout = manifest && manifest.weights;
  if (!layout || !Array.isArray(layout.tensors) || !layout.tensors.length || !layout.tensors.every((t) => t.role)) {
    return 'the model has no packed weights layout with roles';
  }
  const arch = manifest.architecture || 'llama';   // manifests before architectures were all llama
  if (!KERNEL.architectures.includes(arch)) return `the kernel runs ${KERNEL.architectures.join(', ')} models, not ${arch}`;
  const odd = unknownKind(layout);
  if (odd) return `the kernel cannot compute ${odd.kind} blocks (${odd.role || odd.name})`;
  const table = roleTable(layout, config || {});
  if (table.unknown.length) return `the kernel does not know tensor ${table.unknown[0].name} (role '${table.unknown[0].role}')`;
  if (table.missing.length) return `the weights layout lacks ${table.missing.slice(0, 3).join(', ')}${table.missing.length > 3 ? '…' : ''}`;
  for (const [i, layer] of table.layers.entries()) {
    const l = layer || {};
    const extra = Object.keys(l).find((p) => !KERNEL.layerParts.includes(p));
    if (extra) return `the kernel does not compute l${i}_${extra}`;
    // Split matrices come whole: q, k and v (or gate and up) all there, and not beside the fused one.
    for (const [fused, split] of [['qkv', ['q', 'k', 'v']], ['gate_up', ['gate', 'up']]]) {
      const have = split.filter((p) => l[p]);
      if (have.length && (l[fused] || have.length < split.length)) {
        return `the kernel needs l${i}_${fused} as one tensor or as ${split.map((p) => `l${i}_${p}`).join(', ')} (this model has ${[...(l[fused] ? [fused] : []), ...have].map((p) => `l${i}_${p}`).join(', ')})`;
      }
    }
    // The family's extra vectors come whole too.
    const has = (p) => p in l;
    for (const group of [['q_bias', 'k_bias', 'v_bias'], ['q_norm', 'k_norm'], ['post_attn_norm', 'post_ffn_norm']]) {
      const some = group.filter(has);
      if (some.length && some.length < group.length) return `the kernel needs all of ${group.map((p) => `l${i}_${p}`).join(', ')} (this model has ${some.map((p) => `l${i}_${p}`).join(', ')})`;
    }
  }
  // Without config.json (the download's skip rule runs on the manifest alone) the shape checks wait.
  if (!config) return '';
  const c = config;
  const scaling = c.rope_scaling && (c.rope_scaling.rope_type ?? c.rope_scaling.type ?? 'default');
  if (scaling && scaling !== 'default' && !KERNEL.ropeScaling.includes(scaling)) return `the kernel has no rope scaling of type '${scaling}'`;
  const act = c.hidden_activation ?? c.hidden_act ?? 'silu';
  if (!KERNEL.activations.includes(act)) return `the kernel has no activation '${act}'`;
  if (c.final_logit_softcapping || c.attn_logit_softcapping) return 'the kernel does not cap logits (final_logit_softcapping, attn_logit_softcapping)';
  const H = c.hidden_size, I = c.intermediate_size, L = c.num_hidden_layers, nh = c.num_attention_heads;
  const nkv = c.num_key_value_heads ?? nh, hd = c.head_dim ?? (H / nh), V = c.vocab_size;
  if (![H, I, L, nh, nkv, hd, V].every(Number.isInteger) || nh % nkv) return 'config.json does not describe whole attention heads and KV groups';
  for (const [name, v] of [['hidden_size', H], ['intermediate_size', I], ['head_dim', hd]]) {
    if (v % KERNEL.block) return `the kernel needs ${name} a multiple of ${KERNEL.block} (it is ${v})`;
  }
  if (L > KERNEL.maxLayers) return `the kernel runs at most ${KERNEL.maxLayers} layers (this model has ${L})`;
  if (!kernelContext(layout, c)) {
    const least = Math.min(512, c.max_position_embeddings || 2048);
    const need = kernelMemory(layout, c, least);
    const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    return `the kernel's ${Math.round(KERNEL.memoryBytes / 2 ** 30)} GiB of memory cannot hold the converted weights (${mib(need.weights)}), `
      + `the KV cache for ${least} tokens (${mib(need.kv)}) and the activations (${mib(need.activations)})`;
  }
  return '';
}

/** Why onnxruntime-web cannot run this model on `backend` ('wasm' | 'webgpu'), or '' when it can. */
export function ortMisfit(manifest, config, backend = 'wasm') {
  if (!manifest || !Array.isArray(manifest.files) || !manifest.files.some((f) => f.name === 'model.onnx')) {
    return 'the model has no model.onnx';
  }
  const layout = manifest.weights;
  if (!layout) return '';   // weights inside model.onnx
  const odd = (layout.tensors || []).find((t) => !BLOCK_KINDS.includes(t.kind));
  if (odd) return `${odd.kind} blocks cannot be expanded (${odd.name})`;
  if (backend === 'wasm' && layout.f32_bytes > ORT_WASM_F32_LIMIT) {
    return `its float32 weights (${(layout.f32_bytes / 2 ** 30).toFixed(2)} GiB) do not fit onnxruntime-web's 4 GiB of WASM memory`;
  }
  return '';
}
