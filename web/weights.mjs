// Expand the shipped weights (weights.bin: the GGUF's Q4_1 / Q8_0 blocks) into the float32 bytes
// that model.onnx's external initializers point to (weights.f32), in memory, at load time.
// models/packed.py describes the format; py/intab/packed_weights.py is the numpy twin the tests
// compare against.
//
// Exact: a block's scale d is an fp16, so d*q (q a 4-bit or 8-bit integer) is exact, and d*q + m
// computed in double then stored in a Float32Array rounds once, as float32 arithmetic does.

let F16 = null;

/** fp16 bit pattern -> float value, for all 65,536 patterns. */
function f16Table() {
  if (F16) return F16;
  F16 = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    let v;
    if (exp === 0) v = man * 2 ** -24;
    else if (exp === 31) v = man ? NaN : Infinity;
    else v = (1024 + man) * 2 ** (exp - 25);
    F16[h] = sign * v;
  }
  return F16;
}

const BLOCK_BYTES = { Q4_1: 20, Q8_0: 34 };

const TILE = 16; // rows decoded together, so transposed writes land in runs of TILE floats

/** Rows [r0, r1) of a tensor, decoded into `rows` (row-major, cols floats each). */
function decodeRows(src, t, r0, r1, rows, f16) {
  const { cols, kind } = t;
  const nb = cols / 32;
  const bb = BLOCK_BYTES[kind];
  for (let r = r0; r < r1; r++) {
    let p = t.src + r * nb * bb;
    let o = (r - r0) * cols;
    for (let b = 0; b < nb; b++, p += bb, o += 32) {
      const d = f16[src[p] | (src[p + 1] << 8)];
      if (kind === 'Q4_1') {
        const m = f16[src[p + 2] | (src[p + 3] << 8)];
        for (let j = 0; j < 16; j++) {
          const q = src[p + 4 + j];
          rows[o + j] = d * (q & 15) + m;
          rows[o + j + 16] = d * (q >> 4) + m;
        }
      } else {
        for (let j = 0; j < 32; j++) rows[o + j] = ((src[p + 2 + j] << 24) >> 24) * d;
      }
    }
  }
}

/** One tensor of the layout into `dst` (a Float32Array of rows*cols), transposed if asked. */
function expandTensor(src, t, dst) {
  if (t.kind === 'F32') { // a float32 vector stored as is (the RMSNorm weights)
    dst.set(new Float32Array(src.buffer.slice(src.byteOffset + t.src, src.byteOffset + t.src + t.cols * 4)));
    return;
  }
  const f16 = f16Table();
  const { rows: R, cols: C, transpose } = t;
  if (!transpose) {
    decodeRows(src, t, 0, R, dst, f16); // straight into place
    return;
  }
  const tile = new Float32Array(TILE * C);
  for (let r0 = 0; r0 < R; r0 += TILE) {
    const n = Math.min(TILE, R - r0);
    decodeRows(src, t, r0, r0 + n, tile, f16);
    for (let c = 0; c < C; c++) {
      const base = c * R + r0;
      for (let i = 0; i < n; i++) dst[base + i] = tile[i * C + c];
    }
  }
}

/**
 * layout: manifest.json's "weights" ({f32_bytes, src_bytes, tensors: [{name, kind, rows, cols,
 * transpose, src, dst}]}); src: the bytes of weights.bin. Returns a Uint8Array of f32_bytes.
 */
export function expandWeights(layout, src) {
  src = checkedSource(layout, src);
  const out = new Uint8Array(layout.f32_bytes);
  for (const t of layout.tensors) expandTensor(src, t, new Float32Array(out.buffer, t.dst, t.rows * t.cols));
  return out;
}

/** weights.bin as a Uint8Array, once the layout is known to fit it and to hold only known kinds. */
function checkedSource(layout, src) {
  if (!(src instanceof Uint8Array)) src = new Uint8Array(src);
  if (src.length < layout.src_bytes) {
    throw Object.assign(new Error(`weights.bin has ${src.length} bytes; its layout needs ${layout.src_bytes}`), { name: 'LoadError' });
  }
  for (const t of layout.tensors) {
    if (!(BLOCK_BYTES[t.kind] || t.kind === 'F32') || t.cols % 32) {
      throw Object.assign(new Error(`weights layout: cannot expand ${t.kind} tensor ${t.name}`), { name: 'LoadError' });
    }
  }
  return src;
}

/**
 * The same bytes as expandWeights(), produced one tensor at a time as onnxruntime-web asks for
 * them. onnxruntime-web keeps `externalData` in a Map and copies each initializer out of it with
 * `data.subarray(offset, offset + length)` while it creates the session; this object answers that
 * call by expanding just that tensor. So the 538 MB of float32 never exist in JS at once: peak
 * memory is the wasm heap plus one tensor (the 113 MB embedding at most). The answer is only valid
 * until the next call (onnxruntime copies it at once). It is a Uint8Array (that
 * is what onnxruntime-web accepts) whose byteLength is the virtual file's. Any other range is
 * served too, from the tensors it overlaps.
 */
export function lazyWeights(layout, src) {
  src = checkedSource(layout, src);
  const tensors = [...layout.tensors].sort((a, b) => a.dst - b.dst);
  const bytes = (t) => t.rows * t.cols * 4;
  // One scratch buffer of the largest tensor, reused: onnxruntime copies each answer into the wasm
  // heap before it asks for the next, so no tensor-sized garbage piles up for the collector.
  let scratch = null;
  const expanded = (t) => {
    scratch ??= new Float32Array(Math.max(...tensors.map((x) => x.rows * x.cols)));
    const n = t.rows * t.cols;
    expandTensor(src, t, scratch.subarray(0, n));
    return new Uint8Array(scratch.buffer, 0, n * 4);
  };
  class LazyWeights extends Uint8Array {
    get byteLength() { return layout.f32_bytes; }
    get length() { return layout.f32_bytes; }
    subarray(begin = 0, end = layout.f32_bytes) {
      const exact = tensors.find((t) => t.dst === begin && bytes(t) === end - begin);
      if (exact) return expanded(exact);
      const out = new Uint8Array(Math.max(0, end - begin)); // padding between tensors stays 0
      for (const t of tensors) {
        const lo = Math.max(begin, t.dst), hi = Math.min(end, t.dst + bytes(t));
        if (lo < hi) out.set(expanded(t).subarray(lo - t.dst, hi - t.dst), lo - begin); // a copy: scratch is reused
      }
      return out;
    }
  }
  return new LazyWeights(0);
}
