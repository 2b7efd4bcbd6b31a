// Expand the shipped weights (weights.bin: the GGUF's blocks, byte for byte, of any kind in
// BLOCK_KINDS below) into the float32 bytes that model.onnx's external initializers point to
// (weights.f32), in memory, at load time. models/packed.py describes the format;
// py/intab_host/packed_weights.py is the numpy twin the tests compare against (and both against
// gguf-py, the dequantizer transformers uses).
//
// Exact: each value is computed in double and stored into a Float32Array, which rounds once. In
// gguf-py's float32 arithmetic every step but the last is exact (an fp16 scale times a small
// integer, times a 6-bit sub-block scale: at most 24 significant bits), and the last one (a
// product, or + m / - dmin*min) rounds once; a double result rounded to float32 is the correctly
// rounded float32 result of a single +, -, * (53 >= 2*24 + 2 bits), so the bits are gguf-py's.

let F16 = null;
let F16BITS = null;

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

/** fp16 bit pattern -> float32 bit pattern (NaN payloads as numpy converts them). */
function f16BitsTable() {
  if (F16BITS) return F16BITS;
  const f = f16Table();
  F16BITS = new Uint32Array(f.buffer.slice(0));
  for (let h = 0; h < 65536; h++) {
    if (((h >> 10) & 0x1f) === 31 && (h & 0x3ff)) F16BITS[h] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13);
  }
  return F16BITS;
}

/** kind -> [values per block, bytes per block]; py/intab/arch/base.py BLOCK_KINDS is the list of record. */
export const BLOCK_KINDS = {
  F32: [1, 4], F16: [1, 2], BF16: [1, 2],
  Q4_0: [32, 18], Q4_1: [32, 20], Q5_0: [32, 22], Q5_1: [32, 24], Q8_0: [32, 34],
  Q4_K: [256, 144], Q5_K: [256, 176], Q6_K: [256, 210],
};

const TILE = 16; // rows decoded together, so transposed writes land in runs of TILE floats

/** Q4_K/Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 bytes at p. */
function kScale(src, p, j) {
  if (j < 4) return [src[p + j] & 63, src[p + j + 4] & 63];
  return [(src[p + j + 4] & 0x0f) | ((src[p + j - 4] >> 6) << 4), (src[p + j + 4] >> 4) | ((src[p + j] >> 6) << 4)];
}

/** One block of `kind` at byte p of src into out[o..o+values). */
function decodeBlock(kind, src, p, out, o, f16) {
  const half = (at) => f16[src[at] | (src[at + 1] << 8)];
  switch (kind) {
    case 'Q8_0': {
      const d = half(p);
      for (let j = 0; j < 32; j++) out[o + j] = ((src[p + 2 + j] << 24) >> 24) * d;
      return;
    }
    case 'Q4_0': {
      const d = half(p);
      for (let j = 0; j < 16; j++) {
        const q = src[p + 2 + j];
        out[o + j] = d * ((q & 15) - 8);
        out[o + j + 16] = d * ((q >> 4) - 8);
      }
      return;
    }
    case 'Q4_1': {
      const d = half(p), m = half(p + 2);
      for (let j = 0; j < 16; j++) {
        const q = src[p + 4 + j];
        out[o + j] = d * (q & 15) + m;
        out[o + j + 16] = d * (q >> 4) + m;
      }
      return;
    }
    case 'Q5_0':
    case 'Q5_1': {
      const one = kind === 'Q5_1';
      const d = half(p), m = one ? half(p + 2) : 0;
      const h = p + (one ? 4 : 2), qs = h + 4;
      const qh = (src[h] | (src[h + 1] << 8) | (src[h + 2] << 16) | (src[h + 3] << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const q = src[qs + j];
        const lo = (q & 15) | (((qh >>> j) & 1) << 4), hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
        if (one) { out[o + j] = d * lo + m; out[o + j + 16] = d * hi + m; }
        else { out[o + j] = d * (lo - 16); out[o + j + 16] = d * (hi - 16); }
      }
      return;
    }
    case 'Q4_K':
    case 'Q5_K': {
      // 8 sub-blocks of 32: (d * scale) * q - (dmin * min); each 32-byte group gives two sub-blocks
      // (low nibbles, then high); Q5_K's fifth bits: bit j of qh byte k is value k of sub-block j
      const five = kind === 'Q5_K';
      const d = half(p), dmin = half(p + 2), qs = p + (five ? 48 : 16), qh = p + 16;
      for (let j = 0; j < 8; j++) {
        const [sc, mn] = kScale(src, p + 4, j);
        const dd = d * sc, dm = dmin * mn, g = qs + (j >> 1) * 32, shift = (j & 1) * 4;
        for (let k = 0; k < 32; k++) {
          let q = (src[g + k] >> shift) & 15;
          if (five) q |= ((src[qh + k] >> j) & 1) << 4;
          out[o + j * 32 + k] = dd * q - dm;
        }
      }
      return;
    }
    case 'Q6_K': {
      // 16 sub-blocks of 16 with an int8 scale; value = (d * scale) * (q - 32), q = 4 bits of ql | 2 of qh
      const d = half(p + 208);
      for (let j = 0; j < 8; j++) {   // 32-value runs
        const ql = p + (j >> 2) * 64 + (j & 1) * 32, lshift = ((j >> 1) & 1) * 4;
        const qh = p + 128 + (j >> 2) * 32, hshift = (j & 3) * 2;
        for (let k = 0; k < 32; k++) {
          const q = ((src[ql + k] >> lshift) & 15) | (((src[qh + k] >> hshift) & 3) << 4);
          const ds = d * ((src[p + 192 + j * 2 + (k >> 4)] << 24) >> 24);
          out[o + j * 32 + k] = ds * (q - 32);
        }
      }
      return;
    }
    default:
      throw Object.assign(new Error(`weights layout: cannot expand ${kind} blocks`), { name: 'LoadError' });
  }
}

/** Rows [r0, r1) of a tensor, decoded into `rows` (row-major, cols floats each). */
function decodeRows(src, t, r0, r1, rows, f16) {
  const { cols, kind } = t;
  const [per, bb] = BLOCK_KINDS[kind];
  const rowBytes = (cols / per) * bb;
  if (per === 1) { // F32, F16, BF16: bit patterns, so every value (NaN payloads too) is numpy's
    const out = new Uint32Array(rows.buffer, rows.byteOffset, (r1 - r0) * cols);
    const at = t.src + r0 * rowBytes, n = (r1 - r0) * cols;
    if (kind === 'F32') {
      out.set(new Uint32Array(src.buffer.slice(src.byteOffset + at, src.byteOffset + at + n * 4)));
    } else if (kind === 'F16') {
      const bits = f16BitsTable();
      for (let i = 0; i < n; i++) out[i] = bits[src[at + 2 * i] | (src[at + 2 * i + 1] << 8)];
    } else {
      for (let i = 0; i < n; i++) out[i] = ((src[at + 2 * i] | (src[at + 2 * i + 1] << 8)) << 16) >>> 0;
    }
    return;
  }
  const nb = cols / per;
  for (let r = r0; r < r1; r++) {
    let p = t.src + r * rowBytes;
    let o = (r - r0) * cols;
    for (let b = 0; b < nb; b++, p += bb, o += per) decodeBlock(kind, src, p, rows, o, f16);
  }
}

/** One tensor of the layout into `dst` (a Float32Array of rows*cols), transposed if asked. */
function expandTensor(src, t, dst) {
  const f16 = f16Table();
  const { rows: R, cols: C, transpose } = t;
  if (!transpose) {
    decodeRows(src, t, 0, R, dst, f16); // straight into place
    return;
  }
  const tile = new Float32Array(TILE * C);
  // Moved as bits: a NaN read into a JS number may come back with another payload.
  const tileBits = new Uint32Array(tile.buffer), dstBits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let r0 = 0; r0 < R; r0 += TILE) {
    const n = Math.min(TILE, R - r0);
    decodeRows(src, t, r0, r0 + n, tile, f16);
    for (let c = 0; c < C; c++) {
      const base = c * R + r0;
      for (let i = 0; i < n; i++) dstBits[base + i] = tileBits[i * C + c];
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
    const kind = BLOCK_KINDS[t.kind];
    if (!kind || t.cols % kind[0]) {
      throw Object.assign(new Error(`weights layout: cannot expand ${t.kind} tensor ${t.name}`), { name: 'LoadError' });
    }
    if (t.src + t.rows * (t.cols / kind[0]) * kind[1] > src.length) {
      throw Object.assign(new Error(`weights layout: tensor ${t.name} lies beyond the end of weights.bin`), { name: 'LoadError' });
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
