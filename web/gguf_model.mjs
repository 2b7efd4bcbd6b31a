// A user's GGUF, opened in the worker (issue 13.5): `intab.create({model: file | blob | url})`.
// Nothing leaves the tab: a File or Blob is read in slices where it lies, a URL is fetched like any
// page resource. Python (py/intab/gguf_model.py, the arch modules the build uses) reads the header
// and describes the model folder the loader already runs (config.json, tokenizer files, the packed
// weights layout with where each tensor's bytes are in the file); this module assembles weights.bin
// from those slices (Q/K rows un-permuted, q/k/v and gate/up stacked where the kernel wants them,
// F16/BF16 vectors widened) and checks that intab's WASM kernel can run it, with a typed error
// naming what it cannot (web/capabilities.mjs is the table read, nothing is hard-coded here).
//
//   ggufSource(options.model)           -> {kind: 'blob'|'url'|'kept', name, blob?, href?} or null (a model id)
//   openGguf(source, {describe, progress, keep, tl}) -> {manifest, files, done, maxContext, kept} (model_store's shape)
//
// A GGUF runs on the kernel only: onnxruntime-web needs model.onnx, which the tab cannot build.

import { IntabError } from './errors.mjs';
import { KERNEL, kernelContext, kernelMemory, kernelMisfit, unknownKind } from './capabilities.mjs';
import { KEPT_PREFIX, keepModel, openKept } from './kept_models.mjs';

export const TEXT_FILES = ['tokenizer.json', 'tokenizer_config.json', 'config.json', 'generation_config.json'];
const HEAD_BYTES = 8 << 20;   // intab.gguf_model.HEAD_BYTES: SmolLM2's header is 1.7 MB, Gemma 3 270M's 6.5 MB
const MiB = 2 ** 20;
const size = (b) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / MiB).toFixed(0)} MiB`);

/** A .gguf the tab cannot open or run: `name` says why (NotGGUF, TruncatedFile,
 * UnsupportedArchitecture, UnsupportedBlockKind, ModelTooLarge, UnsupportedModel). */
export class ModelFileError extends IntabError {
  constructor(name, message, hint) { super(message, { name, hint, param: 'model' }); }
}

/** What create()'s `model` names: a Blob (a File), a URL of a .gguf, a kept model, or null (an id
 * of models/index.json). The client turns ArrayBuffers into Blobs and resolves relative URLs. */
export function ggufSource(model) {
  if (typeof Blob !== 'undefined' && model instanceof Blob) return { kind: 'blob', blob: model, name: model.name || 'model.gguf' };
  if (typeof model !== 'string') return null;
  if (model.startsWith(KEPT_PREFIX)) return { kind: 'kept', name: model.slice(KEPT_PREFIX.length) };
  if (/^(https?|blob|data):/.test(model)) {
    const path = model.startsWith('data:') ? 'model.gguf' : new URL(model).pathname;
    return { kind: 'url', href: model, name: decodeURIComponent(path.split('/').pop() || 'model.gguf') };
  }
  return null;
}

/** The URL's body as a Blob, with progress (the browser may keep a large Blob on disk). */
async function fetchBlob(src, progress) {
  let res;
  try {
    res = await fetch(src.href, { cache: 'no-store' });
  } catch (e) {
    throw new IntabError(`could not fetch ${src.href}: ${e.message}`, { name: 'LoadError', hint: "Check the address and the connection. Another origin's file must be allowed by this page's Content-Security-Policy (connect-src; the demo allows only its own origin) and by that server's CORS; or download it and open the file.", param: 'model' });
  }
  if (!res.ok) throw new IntabError(`could not fetch ${src.href}: HTTP ${res.status}`, { name: 'LoadError', hint: 'Check the address.', param: 'model' });
  const total = +res.headers.get('Content-Length') || 0;
  const chunks = [];
  let loaded = 0, last = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    if (performance.now() - last > 100) {
      last = performance.now();
      progress({ phase: 'download', message: `Downloading ${src.name}…`, loaded, total: total || loaded, files: [{ name: src.name, loaded, total: total || loaded, cached: false, source: 'network', done: false }] });
    }
  }
  return new Blob(chunks);
}

// ------------------------------------------------------------------ the kernel's fit
/** The context the kernel's memory leaves room for (capabilities.mjs kernelContext: the same
 * arithmetic the worker uses for prebuilt models), or a ModelTooLarge error with the sizes. The
 * kernel's module has KERNEL.memoryBytes of WebAssembly memory at most (wasm32 addresses 4 GiB);
 * besides the converted weights it holds the activations and the KV cache (decoder.c init_runtime). */
export function contextFit(config, layout, name) {
  const context = kernelContext(layout, config);
  if (!context) {
    const least = Math.min(512, config.max_position_embeddings || 2048);
    const need = kernelMemory(layout, config, least);
    throw new ModelFileError('ModelTooLarge',
      `${name} is too big for the tab: ${size(need.weights)} of weights, with ${size(need.activations)} of activations and ${size(need.kv)} of KV cache for ${least} tokens, exceed intab's kernel memory of ${size(KERNEL.memoryBytes)}`,
      `The kernel runs in ${size(KERNEL.memoryBytes)} of WebAssembly memory (wasm32 addresses 4 GiB at most): choose a smaller model or a smaller quantization.`);
  }
  return context;
}

/** Throws the typed error for the first thing intab's kernel cannot run in this description. */
export function checkKernel(manifest, config, name) {
  // Before kernelMisfit: its reason is one line for any model, this names the GGUF's tensors.
  const layout = manifest.weights;
  const odd = unknownKind(layout);
  if (odd) {
    throw new ModelFileError('UnsupportedBlockKind',
      `tensor ${odd.gguf.join(' + ')} of ${name} is ${odd.kind}, a block kind intab's kernel does not compute`,
      `The kernel computes ${KERNEL.kinds.join(', ')}: choose a GGUF quantized to one of them.`);
  }
  const maxContext = contextFit(config, layout, name);
  const misfit = kernelMisfit(manifest, config);
  if (misfit) throw new ModelFileError('UnsupportedModel', `intab's kernel cannot run ${name}: ${misfit}`, 'A GGUF opened in the tab runs on the WASM kernel only; choose a model it runs.');
  return maxContext;
}

// ------------------------------------------------------------------ weights.bin from the file
const f16 = (h) => {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
};

/** One piece of the file into `out` at `at` (rows reordered, vectors widened); returns its length there. */
function place(bytes, piece, t, out, at) {
  if (piece.order) {
    const rb = piece.row_bytes;
    piece.order.forEach((r, i) => out.set(bytes.subarray(r * rb, (r + 1) * rb), at + i * rb));
    return bytes.byteLength;
  }
  if (!t.convert && !t.plus_one) {
    out.set(bytes, at);
    return bytes.byteLength;
  }
  const n = t.convert ? bytes.byteLength / 2 : bytes.byteLength / 4;
  const dst = new Float32Array(out.buffer, out.byteOffset + at, n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) {
    let v = t.convert === 'F16' ? f16(dv.getUint16(2 * i, true))
      : t.convert === 'BF16' ? new Float32Array(new Uint32Array([dv.getUint16(2 * i, true) << 16]).buffer)[0]
        : dv.getFloat32(4 * i, true);
    if (t.plus_one) v = Math.fround(1 + Math.fround(Math.fround(v) - 1));   // models/weights.py gemma_norm
    dst[i] = v;
  }
  return n * 4;
}

async function assemble(blob, layout, name, progress) {
  const out = new Uint8Array(layout.src_bytes);
  const total = layout.src_bytes;
  let loaded = 0, last = 0;
  for (const t of layout.tensors) {
    let at = t.src;
    for (const p of t.from) {
      const bytes = new Uint8Array(await blob.slice(p.at, p.at + p.nbytes).arrayBuffer());
      if (bytes.byteLength !== p.nbytes) throw new ModelFileError('TruncatedFile', `${name} ended while reading tensor ${t.gguf.join(' + ')}`, 'The file is incomplete: download it again.');
      at += place(bytes, p, t, out, at);
      loaded += p.nbytes;
    }
    if (performance.now() - last > 100) {
      last = performance.now();
      progress({ phase: 'download', message: `Reading ${name}…`, loaded, total, files: [{ name, loaded, total, cached: false, source: 'file', done: false }] });
    }
  }
  progress({ phase: 'download', message: `Read ${name}`, loaded: total, total, files: [{ name, loaded: total, total, cached: false, source: 'file', done: true }] });
  return out;
}

/** The header through Python, reading more of the file while it asks for more. */
async function header(blob, name, describe) {
  let n = Math.min(blob.size, HEAD_BYTES);
  for (;;) {
    const head = new Uint8Array(await blob.slice(0, n).arrayBuffer());
    const answer = await describe(head, blob.size, name, KERNEL.layerParts.filter((p) => p === 'qkv' || p === 'gate_up'), KERNEL.architectures);
    if (answer.ok) return answer.value;
    if (answer.needed && n < blob.size) { n = Math.min(blob.size, Math.max(answer.needed, 2 * n)); continue; }
    throw new ModelFileError(answer.error.name, answer.error.message, answer.error.hint);
  }
}

/**
 * Open a GGUF (or a kept model): the model folder as downloadModel gives one, plus `maxContext`
 * (what fits the kernel's memory). describe(head, size, name, stack, architectures) runs
 * intab.gguf_model.describe_json and resolves with its parsed answer. keep: false, true, or a
 * name to keep it under.
 */
export async function openGguf(source, { describe, progress, keep = false, tl = null }) {
  const span = (name, p) => (tl ? tl.span(name, p) : p);
  if (source.kind === 'kept') {
    const dl = await openKept(source.name, progress);
    const config = JSON.parse(new TextDecoder().decode(await dl.files['config.json']));
    return { ...dl, maxContext: checkKernel(dl.manifest, config, source.name) };
  }
  const blob = source.kind === 'url' ? await fetchBlob(source, progress) : source.blob;
  progress({ phase: 'download', message: `Reading the header of ${source.name}…`, loaded: 0, total: blob.size, files: [] });
  const { manifest, files: texts } = await span('gguf.header', header(blob, source.name, describe));
  const config = JSON.parse(texts['config.json']);
  const maxContext = checkKernel(manifest, config, source.name);
  const weights = await span('gguf.weights', assemble(blob, manifest.weights, source.name, progress));
  const stored = { ...manifest, weights: { ...manifest.weights, tensors: manifest.weights.tensors.map(({ from, ...t }) => t) } };
  const enc = new TextEncoder();
  const files = Object.fromEntries(TEXT_FILES.map((n) => [n, Promise.resolve(enc.encode(texts[n]).buffer)]));
  files[manifest.weights.transport] = Promise.resolve(weights.buffer);
  const name = typeof keep === 'string' && keep ? keep : source.name;
  const done = (async () => {
    if (!keep) return [];
    try {
      await keepModel(name, stored, { ...texts, [manifest.weights.transport]: weights });
    } catch (e) {
      const line = `Could not keep ${name} on this device (${(e && e.name) || 'Error'}: ${e && e.message}): it runs from memory for this visit.`;
      console.warn(`intab: ${line}`);
      progress({ phase: 'download', message: '', loaded: blob.size, total: blob.size, files: [], notices: [line] });
    }
    return [];
  })();
  return { manifest: { ...stored, model_id: keep ? KEPT_PREFIX + name : source.name }, files, done, maxContext, kept: keep ? name : null };
}
