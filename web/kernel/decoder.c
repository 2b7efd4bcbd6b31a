// intab's own WASM kernel for the decoders of py/intab/arch (llama incl. Llama 3's rope factors,
// qwen2, qwen3, gemma3; tied or untied output) whose weights are GGUF blocks of any kind
// (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K).
//
// Why it exists: onnxruntime-web's WASM build computes on float32 weights (538 MB read per token
// for SmolLM2-135M) and its 4-bit kernel is slower still. This kernel reads the blocks themselves
// (~100 MB a token) and dequantizes them in registers. At load, set_mat converts each kind into one
// of five layouts (the L_* below) whose every weight d*q + m is the float32 value gguf-py's
// dequantization gives (d*q is exact, the sum rounds once, fused or not: tests/test_kernel_kinds.py
// checks it bit for bit), so only the order of the sums differs from onnxruntime and transformers:
// logits agree to ~1e-4 (real model) and ~2e-6 (tiny synthetic GGUFs), greedy tokens are the
// golden ones (tests/test_kernel.py, tests/test_kernel_kinds.py, tests/browser).
//
// Freestanding C, compiled by `zig cc` to wasm32 with SIMD128 and relaxed-SIMD (for the FMA) and,
// for threads, shared memory + atomics. No libc: a bump allocator, our own expf. The JS side
// (web/kernel_bridge.mjs) places weights.bin in this module's memory (up to wasm32's 4 GiB: sizes
// and pointers are unsigned), describes each tensor with set_mat / set_vec, the family's constants
// with set_arch and each layer's rope tables and key window with set_layer (the tables are computed
// there, so Llama 3's factors and gemma3's two rope bases cost the kernel nothing), and calls
// forward(). Threads: other workers instantiate the same module on the same memory and park in
// worker_loop(); forward() hands them work items (16-row groups of each product, (token, head)
// pairs of attention) through run_parallel().

#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define MAX_LAYERS 64     // web/kernel_bridge.mjs refuses deeper models
#define MAX_THREADS 8
#define TILE 4            // prefill: tokens per register tile (and the fewest tokens that take the panel path)
#define KBLOCK 64         // attention: keys per block (see attend_block)
#define PANEL 8           // prefill: weight rows dequantized together into a thread's scratch

// Phase timers for tools/profile_kernel.mjs only (-DKERNEL_PROFILE adds the import env.now).
#ifdef KERNEL_PROFILE
__attribute__((import_module("env"), import_name("now"))) double now(void);
static double prof[10];
#define PROF_START double t_ = now()
#define PROF(i) do { double t2_ = now(); prof[i] += t2_ - t_; t_ = t2_; } while (0)
EXPORT(prof_take) double prof_take(int i) { double v = prof[i]; prof[i] = 0; return v; }
#else
#define PROF_START
#define PROF(i)
#endif

// GGUF block kinds (ggml_type ids: web/kernel_bridge.mjs KINDS passes them as they are).
enum { G_F32 = 0, G_F16 = 1, G_Q4_0 = 2, G_Q4_1 = 3, G_Q5_0 = 6, G_Q5_1 = 7, G_Q8_0 = 8, G_Q4_K = 12, G_Q5_K = 13,
       G_Q6_K = 14, G_BF16 = 30 };
// The layouts the product loops compute, every one in blocks of 32 values (w = q*d + m, one
// rounding: every q*d below is exact in float32, so the value is gguf-py's bit for bit):
//   L_Q4:  16 bytes of nibbles (values 0..15 low, 16..31 high) + float (d, m)    Q4_0 (m = -8d), Q4_1, Q4_K
//   L_Q8:  32 int8 + float d                                                    Q8_0, Q5_0 (q - 16)
//   L_Q8M: 32 int8 + float (d, m)                                               Q5_1, Q5_K
//   L_Q8S: 32 int8 + float (d0, d1), one scale per 16 values                    Q6_K (q - 32)
//   L_F32: 32 floats                                                            F32, F16, BF16
// K-quants' sub-block scales are folded in at load: d*sc and dmin*mn are f16 x 6-bit (8-bit for
// Q6_K) integers, exact in float32, which is how gguf-py computes them too.
enum { L_Q4 = 0, L_Q8 = 1, L_Q8M = 2, L_Q8S = 3, L_F32 = 4 };
typedef struct { const uint8_t *q; const float *s; int rows, kind; } Blocks;   // kind: an L_* layout
// A matrix is up to 3 row-stacked parts, each in its own layout: q, k and v (or gate and up) of a
// Q4_K_M file differ in kind, and each part keeps its own fast loop.
#define MAX_PARTS 3
typedef struct { Blocks part[MAX_PARTS]; int nparts, rows, cols; } Mat;

// One decoder layer. The llama block uses attn_norm, qkv (or q, k, v), o, ffn_norm, gate_up (or
// gate, up) and down; the other families add what their Recipe says (py/intab/arch): biases on q,
// k, v (qwen2), an RMSNorm per head of q and k before rope (qwen3, gemma3), RMSNorms on the
// attention and MLP outputs before the residual add (gemma3). A null vector is a step not taken.
typedef struct {
  const float *attn_norm, *ffn_norm;
  const float *q_bias, *k_bias, *v_bias, *q_norm, *k_norm, *post_attn_norm, *post_ffn_norm;
  Mat qkv, o, gate_up, down;   // q/k/v (gate/up) of different kinds are parts of one Mat
  const float *rope_cos, *rope_sin;   // this layer's tables [max_t][hd/2] (gemma3: local or global base)
  int window;             // keys a query sees, its own included (gemma3's sliding layers); 0: all
  float *k, *v;           // KV cache [nkv][max_t][hd], keys after rotary
} Layer;

enum { ACT_SILU = 0, ACT_GELU_TANH = 1 };

static struct {
  int H, I, nh, nkv, hd, L, V, max_t, chunk;
  float eps;
  Mat embed;              // [V, H], also the output layer when tied
  Mat lm_head;            // [V, H] of an untied output layer (rows 0: tied)
  const float *final_norm;
  int act;                // ACT_SILU or ACT_GELU_TANH (gemma3)
  float embed_scale;      // gemma3: embeddings times sqrt(hidden), rounded to float32 as the graph; 0: none
  float query_scale;      // the factor on q.k (head_dim^-0.5, gemma3 query_pre_attn_scalar^-0.5)
  Layer layer[MAX_LAYERS];
  float *x, *h, *qkv, *att, *gu, *act_buf, *tmp, *logits;
  float *att_scratch, *att_part;   // attention: per-thread scores and state; decode's per-block states
  float *scratch; int max_cols;     // MAX_THREADS panels of PANEL x max_cols floats
  float *cand_logits; int32_t *cand_ids; float lse, lse_max;
} M;

// Floats of one attention state: rep heads' sums of p*V, then their running maxima and sums (16-aligned).
static inline int att_stride(void) { return (M.nh / M.nkv * (M.hd + 2) + 15) & ~15; }
// Floats of a thread's attention scratch: rep x KBLOCK scores, rep rescale factors (16-aligned),
// one state. In memory rather than on the C stack: the threads share one linear memory and no
// stack of their own (__stack_pointer is the same in every instance), so the kernel keeps no
// arrays on the stack.
static inline int att_scratch_floats(void) { const int rep = M.nh / M.nkv; return rep * KBLOCK + ((rep + 15) & ~15) + att_stride(); }

// ------------------------------------------------------------------ memory

extern unsigned char __heap_base;
static uintptr_t heap_top;

/** Bytes from the module's heap, 64-aligned; 0 when memory cannot grow. Never freed: the model
 * lives as long as the module. In 64 bits: the memory may reach 4 GiB, where a 32-bit end wraps. */
EXPORT(alloc) void *alloc(uint32_t bytes) {
  if (!heap_top) heap_top = (uintptr_t)&__heap_base;
  const uint64_t p = ((uint64_t)heap_top + 63) & ~(uint64_t)63, end = p + bytes;
  const uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * 65536;
  if (end >= (1ull << 32)) return 0;   // the last byte stays unused, so heap_top never wraps to 0
  if (end > have && __builtin_wasm_memory_grow(0, (__SIZE_TYPE__)((end - have + 65535) / 65536)) == (__SIZE_TYPE__)-1) return 0;
  heap_top = (uintptr_t)end;
  return (void *)(uintptr_t)p;
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else {                           // subnormal: normalize
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; exp--; }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000 | (man << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  union { uint32_t u; float f; } c = { bits };
  return c.f;
}

// ------------------------------------------------------------------ model description (from JS)

EXPORT(set_config) void set_config(int H, int I, int nh, int nkv, int hd, int L, int V, int max_t, float eps, int chunk) {
  M.H = H; M.I = I; M.nh = nh; M.nkv = nkv; M.hd = hd; M.L = L; M.V = V; M.max_t = max_t; M.eps = eps; M.chunk = chunk;
  M.act = ACT_SILU; M.embed_scale = 0; M.query_scale = 1.0f / __builtin_sqrtf((float)hd);
}

/** What the family adds model-wide (after set_config): the MLP's activation, the embedding scale
 * (0: none) and the query scale, each as float32 as models/graph.py has them. */
EXPORT(set_arch) void set_arch(int act, float embed_scale, float query_scale) {
  M.act = act; M.embed_scale = embed_scale; M.query_scale = query_scale;
}

/** Layer `layer`'s rotary tables ([max_t][hd/2] cos and sin) and key window (0: every earlier key). */
EXPORT(set_layer) void set_layer(int layer, const float *cos, const float *sin, int window) {
  Layer *l = &M.layer[layer];
  l->rope_cos = cos; l->rope_sin = sin; l->window = window;
}

static float bf16_to_f32(uint16_t h) { union { uint32_t u; float f; } c = { (uint32_t)h << 16 }; return c.f; }
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

// One super-block of a K-quant, copied out before its bytes are rewritten in place.
static uint8_t kq_tmp[256];

/** Q4_K / Q5_K's 6-bit sub-block scale and min j of the 12 packed bytes (gguf-py get_scale_min). */
static inline void k_scale_min(const uint8_t *sc, int j, int *s, int *m) {
  if (j < 4) { *s = sc[j] & 63; *m = sc[j + 4] & 63; }
  else { *s = (sc[j + 4] & 0x0f) | ((sc[j - 4] >> 6) << 4); *m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4); }
}

/**
 * Convert the GGUF blocks at `p` (rows x cols of `kind`) into one of the L_* layouts, in place
 * where the result is no larger (Q4_0, Q4_1, Q4_K, Q8_0, F32), else into new memory (the source
 * bytes then stay unused). Reads run ahead of writes in place. Returns 0 when out of memory or
 * the kind or shape is not one the kernel knows.
 */
static int convert(Blocks *out, int kind, uint8_t *p, int rows, int cols) {
  if (cols % 32) return 0;
  const uint32_t nb = (uint32_t)rows * (cols / 32);   // blocks of 32
  float *s = 0;
  uint8_t *q = p;
  int layout;
#ifdef Q4_AS_INT8
  // Issue 15's layout option: 4-bit blocks widened to int8 once at load (L_Q8M), which the loop
  // then only sign-extends. Measured on SmolLM2-135M (docs/performance.md): no faster, 1.7x the
  // bytes, so it is off by default (build with -DQ4_AS_INT8 to measure it again).
  if (kind == G_Q4_1 || kind == G_Q4_0) {
    const int per = kind == G_Q4_1 ? 20 : 18;
    if (!(s = alloc(nb * 8)) || !(q = alloc(nb * 32))) return 0;
    for (uint32_t b = 0; b < nb; b++) {
      const uint8_t *src = p + b * per, *qs = src + per - 16;
      const float d = f16_to_f32(rd16(src));
      s[2 * b] = d;
      s[2 * b + 1] = kind == G_Q4_1 ? f16_to_f32(rd16(src + 2)) : -8.0f * d;
      for (int i = 0; i < 16; i++) { q[b * 32 + i] = qs[i] & 15; q[b * 32 + 16 + i] = qs[i] >> 4; }
    }
    layout = L_Q8M;
  } else
#endif
  if (kind == G_Q4_1 || kind == G_Q4_0) {
    const int per = kind == G_Q4_1 ? 20 : 18;
    if (!(s = alloc(nb * 8))) return 0;
    for (uint32_t b = 0; b < nb; b++) {
      const uint8_t *src = p + b * per;
      const float d = f16_to_f32(rd16(src));
      s[2 * b] = d;
      s[2 * b + 1] = kind == G_Q4_1 ? f16_to_f32(rd16(src + 2)) : -8.0f * d;   // d*q - 8d = d*(q-8), exact
      wasm_v128_store(p + b * 16, wasm_v128_load(src + per - 16));
    }
    layout = L_Q4;
  } else if (kind == G_Q8_0) {
    if (!(s = alloc(nb * 4))) return 0;
    for (uint32_t b = 0; b < nb; b++) {
      const uint8_t *src = p + b * 34;
      s[b] = f16_to_f32(rd16(src));
      v128_t a = wasm_v128_load(src + 2), c = wasm_v128_load(src + 18);
      wasm_v128_store(p + b * 32, a); wasm_v128_store(p + b * 32 + 16, c);
    }
    layout = L_Q8;
  } else if (kind == G_Q5_0 || kind == G_Q5_1) {
    const int per = kind == G_Q5_1 ? 24 : 22, nsc = kind == G_Q5_1 ? 2 : 1;
    if (!(s = alloc(nb * 4 * nsc)) || !(q = alloc(nb * 32))) return 0;
    for (uint32_t b = 0; b < nb; b++) {
      const uint8_t *src = p + b * per;
      s[nsc * b] = f16_to_f32(rd16(src));
      if (nsc == 2) s[2 * b + 1] = f16_to_f32(rd16(src + 2));
      const uint8_t *h = src + 2 * nsc, *qs = h + 4;
      const uint32_t qh = h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24;
      int8_t *o = (int8_t *)q + b * 32;
      for (int i = 0; i < 16; i++) {
        const int lo = (qs[i] & 15) | ((qh >> i) & 1) << 4, hi = (qs[i] >> 4) | ((qh >> (i + 16)) & 1) << 4;
        o[i] = (int8_t)(nsc == 2 ? lo : lo - 16); o[i + 16] = (int8_t)(nsc == 2 ? hi : hi - 16);
      }
    }
    layout = nsc == 2 ? L_Q8M : L_Q8;
  } else if (kind == G_Q4_K || kind == G_Q5_K) {
    if (cols % 256) return 0;
    const uint32_t nsb = nb / 8;
    const int five = kind == G_Q5_K, per = five ? 176 : 144;
    if (!(s = alloc(nb * 8))) return 0;
    if (five && !(q = alloc(nb * 32))) return 0;
    for (uint32_t k = 0; k < nsb; k++) {
      for (int i = 0; i < per; i++) kq_tmp[i] = p[k * per + i];   // the in-place writes (Q4_K) overlap it
      const float d = f16_to_f32(rd16(kq_tmp)), dmin = f16_to_f32(rd16(kq_tmp + 2));
      const uint8_t *sc = kq_tmp + 4, *qh = kq_tmp + 16, *qs = kq_tmp + (five ? 48 : 16);
      for (int j = 0; j < 8; j++) {
        int a, m;
        k_scale_min(sc, j, &a, &m);
        const uint32_t b = k * 8 + j;
        s[2 * b] = d * (float)a;
        s[2 * b + 1] = -(dmin * (float)m);
        const uint8_t *src = qs + (j / 2) * 32;   // sub-block j: nibbles (j odd: high) of 32 bytes
        const int sh = (j & 1) * 4;
        if (five) {
          int8_t *o = (int8_t *)q + b * 32;
          for (int i = 0; i < 32; i++) o[i] = (int8_t)(((src[i] >> sh) & 15) | ((qh[i] >> j) & 1) << 4);
        } else {
          uint8_t *o = p + b * 16;
          for (int i = 0; i < 16; i++) o[i] = (uint8_t)(((src[i] >> sh) & 15) | ((src[i + 16] >> sh) & 15) << 4);
        }
      }
    }
    layout = five ? L_Q8M : L_Q4;
  } else if (kind == G_Q6_K) {
    if (cols % 256) return 0;
    const uint32_t nsb = nb / 8;
    if (!(s = alloc(nb * 8)) || !(q = alloc(nb * 32))) return 0;
    for (uint32_t k = 0; k < nsb; k++) {
      const uint8_t *src = p + k * 210, *ql = src, *qh = src + 128;
      const int8_t *sc = (const int8_t *)(src + 192);
      const float d = f16_to_f32(rd16(src + 208));
      for (int j = 0; j < 16; j++) s[k * 16 + j] = d * (float)sc[j];
      int8_t *o = (int8_t *)q + k * 256;
      for (int v = 0; v < 256; v++) {
        const int h = v / 128, r = v % 128;
        const int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 15, hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        o[v] = (int8_t)((lo | hi << 4) - 32);
      }
    }
    layout = L_Q8S;
  } else if (kind == G_F32) {
    layout = L_F32;
  } else if (kind == G_F16 || kind == G_BF16) {
    const uint32_t n = nb * 32;
    float *f = alloc(n * 4);
    if (!f) return 0;
    for (uint32_t i = 0; i < n; i++) f[i] = kind == G_F16 ? f16_to_f32(rd16(p + 2 * i)) : bf16_to_f32(rd16(p + 2 * i));
    q = (uint8_t *)f;
    layout = L_F32;
  } else {
    return 0;
  }
  *out = (Blocks){ q, s, rows, layout };
  return 1;
}

/**
 * Adopt the blocks at `p` (rows x cols of GGUF `kind`, a ggml_type id) as part `part` of matrix
 * `slot` of `layer` (slot 0 qkv, 1 o, 2 gate_up, 3 down, 4 the embedding, 5 lm_head). Parts stack
 * rows in order (part 0 starts the matrix anew): q, k, v or gate, up when their kinds differ.
 * Returns 0 when out of memory or when the kind, shape or part is not one the kernel computes.
 */
EXPORT(set_mat) int set_mat(int layer, int slot, int kind, uint8_t *p, int rows, int cols, int part) {
  if (layer < 0 || layer >= MAX_LAYERS || slot < 0 || slot > 5 || part < 0 || part >= MAX_PARTS) return 0;
  Mat *m = slot == 4 ? &M.embed : slot == 5 ? &M.lm_head : slot == 0 ? &M.layer[layer].qkv
         : slot == 1 ? &M.layer[layer].o : slot == 2 ? &M.layer[layer].gate_up : &M.layer[layer].down;
  if (part == 0) { m->nparts = 0; m->rows = 0; m->cols = cols; }
  if (part != m->nparts || cols != m->cols || (part && slot >= 4)) return 0;
  if (!convert(&m->part[part], kind, p, rows, cols)) return 0;
  m->nparts++;
  m->rows += rows;
  return 1;
}

/** Vector `slot` of `layer` (float32, in the module's memory): 0 attn_norm, 1 ffn_norm,
 * 2 final_norm (model-wide), 3..5 q/k/v biases, 6 q_norm, 7 k_norm, 8 post_attn_norm, 9 post_ffn_norm. */
EXPORT(set_vec) void set_vec(int layer, int slot, const float *p) {
  Layer *l = &M.layer[layer];
  switch (slot) {
    case 0: l->attn_norm = p; break;
    case 1: l->ffn_norm = p; break;
    case 2: M.final_norm = p; break;
    case 3: l->q_bias = p; break;
    case 4: l->k_bias = p; break;
    case 5: l->v_bias = p; break;
    case 6: l->q_norm = p; break;
    case 7: l->k_norm = p; break;
    case 8: l->post_attn_norm = p; break;
    case 9: l->post_ffn_norm = p; break;
  }
}

/** Activations and the KV cache; call once, after set_config. Returns 0 when out of memory. */
EXPORT(init_runtime) int init_runtime(void) {
  int C = M.chunk, qkv = (M.nh + 2 * M.nkv) * M.hd;
  uint32_t kv = (uint32_t)M.nkv * M.max_t * M.hd * 4;
  M.x = alloc(C * M.H * 4); M.h = alloc(C * M.H * 4); M.tmp = alloc(C * M.H * 4);
  M.qkv = alloc(C * qkv * 4); M.att = alloc(C * M.nh * M.hd * 4); M.gu = alloc(C * 2 * M.I * 4); M.act_buf = alloc(C * M.I * 4);
  M.max_cols = M.H > M.I ? M.H : M.I;
  if (M.nh * M.hd > M.max_cols) M.max_cols = M.nh * M.hd;
  M.scratch = alloc((uint32_t)MAX_THREADS * PANEL * M.max_cols * 4);
  const int rep = M.nh / M.nkv, kblocks = (M.max_t + KBLOCK - 1) / KBLOCK;
  M.att_scratch = alloc((uint32_t)MAX_THREADS * att_scratch_floats() * 4);
  M.att_part = alloc((uint32_t)M.nkv * kblocks * att_stride() * 4);
  M.logits = alloc(M.V * 4);
  M.cand_logits = alloc(M.V * 4); M.cand_ids = alloc(M.V * 4);
  if (!M.x || !M.scratch || !M.h || !M.tmp || !M.qkv || !M.att || !M.gu || !M.act_buf || !M.att_scratch || !M.att_part || !M.logits || !M.cand_logits || !M.cand_ids) return 0;
  for (int l = 0; l < M.L; l++) {
    M.layer[l].k = alloc(kv); M.layer[l].v = alloc(kv);   // untouched pages cost no RAM
    if (!M.layer[l].k || !M.layer[l].v) return 0;
  }
  return 1;
}

EXPORT(cand_logits_ptr) float *cand_logits_ptr(void) { return M.cand_logits; }
EXPORT(cand_ids_ptr) int32_t *cand_ids_ptr(void) { return M.cand_ids; }
EXPORT(lse_value) float lse_value(void) { return M.lse; }

/** Where layer `layer`'s keys (which 0) or values (which 1) are: [nkv][max_t][hd] float32. The
 * bridge copies the first kvLength rows of each head out and back in to snapshot a conversation's
 * cache (kernel_bridge.mjs snapshot/restore); keep this layout or change both sides together. */
EXPORT(kv_ptr) float *kv_ptr(int layer, int which) {
  if (layer < 0 || layer >= M.L) return 0;
  return which ? M.layer[layer].v : M.layer[layer].k;
}

// ------------------------------------------------------------------ math

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

static inline v128_t fma4(v128_t a, v128_t b, v128_t c) { return wasm_f32x4_relaxed_madd(a, b, c); }

// e^x for 4 lanes: Cody-Waite reduction by ln 2, Cephes' degree-5 polynomial (~1 ulp), 2^n by
// building the exponent; 0 below -87.3 (masked scores), +inf above 88.7.
static inline v128_t exp4(v128_t x) {
  x = wasm_f32x4_min(x, wasm_f32x4_splat(88.7f));
  v128_t tiny = wasm_f32x4_lt(x, wasm_f32x4_splat(-87.3f));
  v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), r), wasm_f32x4_splat(1.0f));
  // 2^n in two steps so that n = 128 (x near 88.7) does not overflow the exponent field.
  v128_t ni = wasm_i32x4_trunc_sat_f32x4(n);
  v128_t half = wasm_i32x4_shr(ni, 1);
  v128_t s1 = wasm_i32x4_shl(wasm_i32x4_add(half, wasm_i32x4_splat(127)), 23);
  v128_t s2 = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_sub(ni, half), wasm_i32x4_splat(127)), 23);
  p = wasm_f32x4_mul(wasm_f32x4_mul(p, s1), s2);
  return wasm_v128_andnot(p, tiny);
}

static inline float exp1(float x) { return wasm_f32x4_extract_lane(exp4(wasm_f32x4_splat(x)), 0); }

/** out[i] = w[i] * (x[i] * 1/sqrt(mean(x^2) + eps)), the graph's order of operations. */
static void rmsnorm(float *out, const float *x, const float *w, int n) {
  v128_t acc = wasm_f32x4_splat(0);
  for (int i = 0; i < n; i += 4) { v128_t v = wasm_v128_load(x + i); acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v)); }
  float inv = 1.0f / __builtin_sqrtf(hsum(acc) / (float)n + M.eps);
  v128_t vi = wasm_f32x4_splat(inv);
  for (int i = 0; i < n; i += 4)
    wasm_v128_store(out + i, wasm_f32x4_mul(wasm_v128_load(w + i), wasm_f32x4_mul(wasm_v128_load(x + i), vi)));
}

// ------------------------------------------------------------------ quantized matrix products

static float dot(const float *a, const float *b, int n) {
  v128_t acc0 = wasm_f32x4_splat(0), acc1 = acc0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = fma4(wasm_v128_load(a + i), wasm_v128_load(b + i), acc0);
    acc1 = fma4(wasm_v128_load(a + i + 4), wasm_v128_load(b + i + 4), acc1);
  }
  for (; i < n; i += 4) acc0 = fma4(wasm_v128_load(a + i), wasm_v128_load(b + i), acc0);
  return hsum(wasm_f32x4_add(acc0, acc1));
}


// The 32 weights of a Q4_1 block as 8 vectors of 4 floats, d*q + m (weights 0..15 are the low
// nibbles, 16..31 the high ones).
#define Q4_WIDEN(raw, vd, vm, w)  /* defines w0..w7 */                                                                   \
  do {                                                                                             \
    v128_t lo_ = wasm_v128_and(raw, wasm_i8x16_splat(0x0f)), hi_ = wasm_u8x16_shr(raw, 4);         \
    v128_t a_ = wasm_u16x8_extend_low_u8x16(lo_), b_ = wasm_u16x8_extend_high_u8x16(lo_);          \
    v128_t c_ = wasm_u16x8_extend_low_u8x16(hi_), e_ = wasm_u16x8_extend_high_u8x16(hi_);          \
    w##0 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_low_u16x8(a_)), vd, vm);                \
    w##1 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_high_u16x8(a_)), vd, vm);               \
    w##2 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_low_u16x8(b_)), vd, vm);                \
    w##3 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_high_u16x8(b_)), vd, vm);               \
    w##4 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_low_u16x8(c_)), vd, vm);                \
    w##5 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_high_u16x8(c_)), vd, vm);               \
    w##6 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_low_u16x8(e_)), vd, vm);                \
    w##7 = fma4(wasm_f32x4_convert_i32x4(wasm_u32x4_extend_high_u16x8(e_)), vd, vm);               \
  } while (0)

// L_Q8 / L_Q8M / L_Q8S: q*d (+ m) for 32 signed bytes; vd for values 0..15, vd1 for 16..31.
#define Q8_WIDEN(p, vd, vd1, vm, MIN, w)  /* defines w0..w7 */                                       \
  do {                                                                                             \
    v128_t r0_ = wasm_v128_load(p), r1_ = wasm_v128_load((p) + 16);                                \
    v128_t a_ = wasm_i16x8_extend_low_i8x16(r0_), b_ = wasm_i16x8_extend_high_i8x16(r0_);          \
    v128_t c_ = wasm_i16x8_extend_low_i8x16(r1_), e_ = wasm_i16x8_extend_high_i8x16(r1_);          \
    w##0 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(a_)), vd, vm, MIN);         \
    w##1 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(a_)), vd, vm, MIN);        \
    w##2 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(b_)), vd, vm, MIN);         \
    w##3 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(b_)), vd, vm, MIN);        \
    w##4 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(c_)), vd1, vm, MIN);        \
    w##5 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(c_)), vd1, vm, MIN);       \
    w##6 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(e_)), vd1, vm, MIN);        \
    w##7 = Q8_MUL(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(e_)), vd1, vm, MIN);       \
  } while (0)
#define Q8_MUL(x, vd, vm, MIN) ((MIN) ? fma4(x, vd, vm) : wasm_f32x4_mul(x, vd))

// Declares w0..w7: the 32 dequantized weights of block b of row r of Blocks m.
// KIND is a constant where it matters (matmul_rows_kind), so the branches fold away.
#define WIDEN(m, r, b, nb) WIDEN_K(m, r, b, nb, (m)->kind)
#define WIDEN_K(m, r, b, nb, KIND)                                                                 \
  v128_t w0, w1, w2, w3, w4, w5, w6, w7;                                                           \
  do {                                                                                             \
    uint32_t i_ = (uint32_t)(r) * (nb) + (b);                                                      \
    if ((KIND) == L_Q4) {                                                                          \
      v128_t raw_ = wasm_v128_load((m)->q + i_ * 16);                                              \
      Q4_WIDEN(raw_, wasm_f32x4_splat((m)->s[2 * i_]), wasm_f32x4_splat((m)->s[2 * i_ + 1]), w);   \
    } else if ((KIND) == L_Q8) {                                                                   \
      const v128_t d_ = wasm_f32x4_splat((m)->s[i_]);                                              \
      Q8_WIDEN((m)->q + i_ * 32, d_, d_, d_, 0, w);                                                \
    } else if ((KIND) == L_Q8M) {                                                                  \
      const v128_t d_ = wasm_f32x4_splat((m)->s[2 * i_]);                                          \
      Q8_WIDEN((m)->q + i_ * 32, d_, d_, wasm_f32x4_splat((m)->s[2 * i_ + 1]), 1, w);              \
    } else if ((KIND) == L_Q8S) {                                                                  \
      const v128_t d_ = wasm_f32x4_splat((m)->s[2 * i_]);                                          \
      Q8_WIDEN((m)->q + i_ * 32, d_, wasm_f32x4_splat((m)->s[2 * i_ + 1]), d_, 0, w);              \
    } else {                                                                                       \
      const float *f_ = (const float *)(m)->q + i_ * 32;                                           \
      w0 = wasm_v128_load(f_); w1 = wasm_v128_load(f_ + 4); w2 = wasm_v128_load(f_ + 8);           \
      w3 = wasm_v128_load(f_ + 12); w4 = wasm_v128_load(f_ + 16); w5 = wasm_v128_load(f_ + 20);    \
      w6 = wasm_v128_load(f_ + 24); w7 = wasm_v128_load(f_ + 28);                                  \
    }                                                                                              \
  } while (0)

/** Y[t][r] = sum_c W[r][c] * X[t][c] for rows r0..r1 of one part and n tokens (X: n x cols, Y: n
 * rows of ys floats, this part's row 0 at Y[0]).
 * Prefill (n >= TILE): PANEL rows at a time are dequantized into `scratch` (PANEL x cols floats,
 * in L1/L2) and multiplied with every token by a 2-row x 4-token register tile, so each block is
 * widened once per chunk instead of once per token. Decode (n < TILE): widen and multiply at once. */
static inline __attribute__((always_inline))
void matmul_rows_kind(const Blocks *m, int cols, const float *X, int n, float *Y, int ys, int r0, int r1, float *scratch, const int kind) {
  const int rows = ys, nb = cols / 32;
  int t0 = 0;
  if (n >= TILE) {
    for (int p0 = r0; p0 < r1; p0 += PANEL) {
      const int p1 = p0 + PANEL < r1 ? p0 + PANEL : r1;
      for (int r = p0; r < p1; r++)
        for (int b = 0; b < nb; b++) {
          WIDEN_K(m, r, b, nb, kind);
          float *o = scratch + (r - p0) * cols + b * 32;
          wasm_v128_store(o, w0); wasm_v128_store(o + 4, w1); wasm_v128_store(o + 8, w2); wasm_v128_store(o + 12, w3);
          wasm_v128_store(o + 16, w4); wasm_v128_store(o + 20, w5); wasm_v128_store(o + 24, w6); wasm_v128_store(o + 28, w7);
        }
      int t = 0;
      for (; t + TILE <= n; t += TILE) {
        const float *x0 = X + t * cols, *x1 = x0 + cols, *x2 = x1 + cols, *x3 = x2 + cols;
        int r = p0;
        for (; r + 2 <= p1; r += 2) {
          const float *s0 = scratch + (r - p0) * cols, *s1 = s0 + cols;
          v128_t a00 = wasm_f32x4_splat(0), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
          for (int c = 0; c < cols; c += 4) {
            v128_t u = wasm_v128_load(s0 + c), v = wasm_v128_load(s1 + c), x;
            x = wasm_v128_load(x0 + c); a00 = fma4(u, x, a00); a10 = fma4(v, x, a10);
            x = wasm_v128_load(x1 + c); a01 = fma4(u, x, a01); a11 = fma4(v, x, a11);
            x = wasm_v128_load(x2 + c); a02 = fma4(u, x, a02); a12 = fma4(v, x, a12);
            x = wasm_v128_load(x3 + c); a03 = fma4(u, x, a03); a13 = fma4(v, x, a13);
          }
          float *y = Y + t * rows + r;
          y[0] = hsum(a00); y[rows] = hsum(a01); y[2 * rows] = hsum(a02); y[3 * rows] = hsum(a03);
          y[1] = hsum(a10); y[rows + 1] = hsum(a11); y[2 * rows + 1] = hsum(a12); y[3 * rows + 1] = hsum(a13);
        }
        for (; r < p1; r++) {
          const float *s0 = scratch + (r - p0) * cols;
          Y[t * rows + r] = dot(s0, x0, cols); Y[(t + 1) * rows + r] = dot(s0, x1, cols);
          Y[(t + 2) * rows + r] = dot(s0, x2, cols); Y[(t + 3) * rows + r] = dot(s0, x3, cols);
        }
      }
      for (; t < n; t++)
        for (int r = p0; r < p1; r++) Y[t * rows + r] = dot(scratch + (r - p0) * cols, X + t * cols, cols);
    }
    return;
  }
  for (; t0 < n; t0++) {                       // decode: one token (or a few)
    const float *x = X + t0 * cols;
    for (int r = r0; r < r1; r++) {
      v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
      for (int b = 0; b < nb; b++) {
        WIDEN_K(m, r, b, nb, kind);
        const float *xc = x + b * 32;
        a0 = fma4(w0, wasm_v128_load(xc), a0);      a1 = fma4(w1, wasm_v128_load(xc + 4), a1);
        a2 = fma4(w2, wasm_v128_load(xc + 8), a2);  a3 = fma4(w3, wasm_v128_load(xc + 12), a3);
        a0 = fma4(w4, wasm_v128_load(xc + 16), a0); a1 = fma4(w5, wasm_v128_load(xc + 20), a1);
        a2 = fma4(w6, wasm_v128_load(xc + 24), a2); a3 = fma4(w7, wasm_v128_load(xc + 28), a3);
      }
      Y[t0 * rows + r] = hsum(wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3)));
    }
  }
}

// One copy of the loops per layout: V8 keeps the hot loop's vectors in registers only when
// it is small and branch-free (measured: a shared kind branch cost ~30% of a decode step).
#define ROWS_FN(name, KIND)                                                                                    \
  static void __attribute__((noinline)) name(const Blocks *m, int cols, const float *X, int n, float *Y, int ys, \
                                             int r0, int r1, float *sc) {                                     \
    matmul_rows_kind(m, cols, X, n, Y, ys, r0, r1, sc, KIND);                                                  \
  }
ROWS_FN(matmul_rows_q4, L_Q4)
ROWS_FN(matmul_rows_q8, L_Q8)
ROWS_FN(matmul_rows_q8m, L_Q8M)
ROWS_FN(matmul_rows_q8s, L_Q8S)
ROWS_FN(matmul_rows_f32, L_F32)

/** Rows r0..r1 of a product, on thread `thread` (which picks its scratch panel), part by part. */
static void matmul_rows(const Mat *m, const float *X, int n, float *Y, int r0, int r1, int thread) {
  float *sc = M.scratch + (uint32_t)thread * PANEL * M.max_cols;
  int base = 0;
  for (int k = 0; k < m->nparts && base < r1; base += m->part[k++].rows) {
    const Blocks *p = &m->part[k];
    const int lo = r0 > base ? r0 - base : 0, hi = r1 - base < p->rows ? r1 - base : p->rows;
    if (lo >= hi) continue;
    float *y = Y + base;
    switch (p->kind) {
      case L_Q4: matmul_rows_q4(p, m->cols, X, n, y, m->rows, lo, hi, sc); break;
      case L_Q8: matmul_rows_q8(p, m->cols, X, n, y, m->rows, lo, hi, sc); break;
      case L_Q8M: matmul_rows_q8m(p, m->cols, X, n, y, m->rows, lo, hi, sc); break;
      case L_Q8S: matmul_rows_q8s(p, m->cols, X, n, y, m->rows, lo, hi, sc); break;
      default: matmul_rows_f32(p, m->cols, X, n, y, m->rows, lo, hi, sc);
    }
  }
}

/** For tests/test_kernel_kinds.py: the GGUF blocks at p (rewritten, as set_mat does) as rows x
 * cols float32 at out, widened by the same macro as the products and the embedding lookup. */
EXPORT(dequantize) int dequantize(int kind, uint8_t *p, int rows, int cols, float *out) {
  Blocks m;
  if (!convert(&m, kind, p, rows, cols)) return 0;
  const int nb = cols / 32;
  for (int r = 0; r < rows; r++)
    for (int b = 0; b < nb; b++) {
      WIDEN(&m, r, b, nb);
      float *o = out + (uint32_t)r * cols + b * 32;
      wasm_v128_store(o, w0); wasm_v128_store(o + 4, w1); wasm_v128_store(o + 8, w2); wasm_v128_store(o + 12, w3);
      wasm_v128_store(o + 16, w4); wasm_v128_store(o + 20, w5); wasm_v128_store(o + 24, w6); wasm_v128_store(o + 28, w7);
    }
  return 1;
}

// ------------------------------------------------------------------ threads
//
// Worker threads park in worker_loop() (memory.atomic.wait). A job is `items` units of work
// (row groups of a product, (token, head) pairs of attention); every thread, the caller included,
// claims `grain` of them at a time until none are left, and the caller waits until all are done.
// Claiming rather than fixed halves: on 2 cores shared with the browser's own threads, a thread
// that is descheduled simply claims less, instead of holding up the barrier.

typedef void (*item_fn)(int lo, int hi, int thread);

#define CLOSED 0xffffffffu        // job number that matches no job: between jobs nothing can be claimed

static struct {
  item_fn fn;
  int nthreads, items, grain;
  volatile int32_t job_seq;       // bumped per job: wakes the workers
  volatile uint64_t next;         // (job number << 32) | next unclaimed item
  volatile int32_t done;          // items finished in the current job
} J;

/** Claim the next items of job `seq`: [lo, *hi), or -1 when none are left or the job is over. */
static int claim(uint32_t seq, int *hi) {
  uint64_t c = __atomic_load_n(&J.next, __ATOMIC_ACQUIRE);
  for (;;) {
    if ((uint32_t)(c >> 32) != seq) return -1;
    const int lo = (int)(uint32_t)c, items = J.items;
    if (lo >= items) return -1;
    const int h = lo + J.grain < items ? lo + J.grain : items;
    if (__atomic_compare_exchange_n(&J.next, (uint64_t *)&c, ((uint64_t)seq << 32) | (uint32_t)h, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) { *hi = h; return lo; }
  }
}

/** Claim and run items of job `seq` until none are left. */
static void work(uint32_t seq, int thread) {
  int lo, hi;
  while ((lo = claim(seq, &hi)) >= 0) {
    J.fn(lo, hi, thread);          // fields stay put while any claimed item is unfinished
    __atomic_add_fetch(&J.done, hi - lo, __ATOMIC_ACQ_REL);
  }
}

#ifdef __wasm_atomics__
EXPORT(set_threads) void set_threads(int n) { J.nthreads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n; }

/** A worker thread's life: wait for a job, claim items of it, repeat. Never returns. */
EXPORT(worker_loop) void worker_loop(int index) {
  int32_t seen = __atomic_load_n(&J.job_seq, __ATOMIC_ACQUIRE);
  for (;;) {
    int32_t seq;
    int spins = 0;
    while ((seq = __atomic_load_n(&J.job_seq, __ATOMIC_ACQUIRE)) == seen) {
      if (++spins > 20000) __builtin_wasm_memory_atomic_wait32((int32_t *)&J.job_seq, seen, -1);
    }
    seen = seq;
    work((uint32_t)seq, index);
  }
}

static void run_parallel(item_fn fn, int items, int grain) {
  if (J.nthreads <= 1 || items <= grain) { fn(0, items, 0); return; }
  // Close the last job before touching the fields, so a late worker cannot claim with them.
  __atomic_store_n(&J.next, (uint64_t)CLOSED << 32, __ATOMIC_RELEASE);
  J.fn = fn; J.items = items; J.grain = grain;
  __atomic_store_n(&J.done, 0, __ATOMIC_RELEASE);
  const uint32_t seq = (uint32_t)(J.job_seq + 1) & 0x7fffffff;
  __atomic_store_n(&J.next, (uint64_t)seq << 32, __ATOMIC_RELEASE);
  __atomic_store_n(&J.job_seq, (int32_t)seq, __ATOMIC_RELEASE);
  __builtin_wasm_memory_atomic_notify((int32_t *)&J.job_seq, J.nthreads - 1);
  work(seq, 0);
  int32_t d, spins = 0;
  while ((d = __atomic_load_n(&J.done, __ATOMIC_ACQUIRE)) != items) {
    if (++spins > 20000) __builtin_wasm_memory_atomic_wait32((int32_t *)&J.done, d, 100000);  // 0.1 ms naps
  }
}
#else   // decoder-st.wasm: one thread
EXPORT(set_threads) void set_threads(int n) { (void)n; J.nthreads = 1; }
static void run_parallel(item_fn fn, int items, int grain) { (void)grain; fn(0, items, 0); }
#endif

static struct { const Mat *m; const float *X; float *Y; int n; } MM;

// Items of a product are groups of 16 rows (whole prefill panels; threads never share Y's lines).
static void matmul_items(int lo, int hi, int thread) {
  const int rows = MM.m->rows, r1 = hi * 16 < rows ? hi * 16 : rows;
  matmul_rows(MM.m, MM.X, MM.n, MM.Y, lo * 16, r1, thread);
}

static void matmul(const Mat *m, const float *X, int n, float *Y) {
  MM.m = m; MM.X = X; MM.Y = Y; MM.n = n;
  const int groups = (m->rows + 15) / 16;
  // About 4 claims per thread: few enough to cost nothing, enough to even out a slow thread.
  int grain = (groups + J.nthreads * 4 - 1) / (J.nthreads * 4);
  run_parallel(matmul_items, groups, grain < 1 ? 1 : grain);
}

// ------------------------------------------------------------------ the decoder

/** Rotary embedding (rotate_half) of one head vector at position pos, with a layer's tables. */
static void rope(float *v, int pos, const Layer *L) {
  const int half = M.hd / 2;
  const float *c = L->rope_cos + pos * half, *s = L->rope_sin + pos * half;
  for (int i = 0; i < half; i += 4) {
    v128_t x1 = wasm_v128_load(v + i), x2 = wasm_v128_load(v + half + i);
    v128_t vc = wasm_v128_load(c + i), vs = wasm_v128_load(s + i);
    // x*cos + rotate_half(x)*sin, rotate_half(x) = [-x2, x1]: the graph's Mul, Mul, Add.
    wasm_v128_store(v + i, wasm_f32x4_add(wasm_f32x4_mul(x1, vc), wasm_f32x4_mul(wasm_f32x4_neg(x2), vs)));
    wasm_v128_store(v + half + i, wasm_f32x4_add(wasm_f32x4_mul(x2, vc), wasm_f32x4_mul(x1, vs)));
  }
}

// Attention, as the fast kernels do it (llama.cpp's flash-attention path, FlashDecoding):
// - the `rep` query heads of a KV head are computed together, so each key and value row comes
//   from memory once for all of them (SmolLM2-135M: 3 heads a row, 92 MB of cache a token at a
//   2k context; before, each head read its group's rows again, partly from L2);
// - keys go in blocks of KBLOCK with an online softmax (a running max and sum per head that the
//   next block rescales), so no T-long score row is kept and a block's rows stay in L1 while
//   every head uses them (64 keys x 64 dims x 4 B = 16 KB of keys and 16 KB of values);
// - a decode step's work is (KV head, key block) pairs, merged afterwards in block order, so a
//   long context spreads over all threads (before: 9 heads over 2 threads, 4.5 each at best).
// The split depends only on the context length, never on the thread count, so threads change
// no bit of the result (tests/test_kernel.py). Measured so far only on a 2-core machine loaded 4-10
// deep by other jobs (tools/profile_kernel.py --contexts, build.py bench --contexts): no gain
// beyond that noise yet; the KV cache stays float32 [nkv][max_t][hd] (exact, and the layout
// kernel_bridge.mjs snapshots), f16 rows being the next thing to measure.

// Scores of NG (1 or 2) query heads against keys 4 at a time: 4 x NG independent FMA chains per
// loop, 4 + NG loads for 4 x NG FMAs (one head alone: 5 loads for 4 FMAs, load- and latency-bound).
static inline __attribute__((always_inline))
void qk_heads(const float *q, const float *K, int B, float *s, const int NG) {
  const int hd = M.hd;
  const v128_t scale = wasm_f32x4_splat(M.query_scale), zero = wasm_f32x4_splat(0);
  int j = 0;
  for (; j + 4 <= B; j += 4) {
    const float *k0 = K + j * hd, *k1 = k0 + hd, *k2 = k1 + hd, *k3 = k2 + hd;
    v128_t a[2][4];
    for (int g = 0; g < NG; g++) for (int u = 0; u < 4; u++) a[g][u] = zero;
    for (int i = 0; i < hd; i += 4) {
      v128_t x0 = wasm_v128_load(k0 + i), x1 = wasm_v128_load(k1 + i), x2 = wasm_v128_load(k2 + i), x3 = wasm_v128_load(k3 + i);
      for (int g = 0; g < NG; g++) {
        v128_t qv = wasm_v128_load(q + g * hd + i);
        a[g][0] = fma4(qv, x0, a[g][0]); a[g][1] = fma4(qv, x1, a[g][1]);
        a[g][2] = fma4(qv, x2, a[g][2]); a[g][3] = fma4(qv, x3, a[g][3]);
      }
    }
    for (int g = 0; g < NG; g++) {   // four horizontal sums at once, each (l0 + l1) + (l2 + l3) as hsum() does
      v128_t s01 = wasm_f32x4_add(wasm_i32x4_shuffle(a[g][0], a[g][1], 0, 4, 2, 6), wasm_i32x4_shuffle(a[g][0], a[g][1], 1, 5, 3, 7));
      v128_t s23 = wasm_f32x4_add(wasm_i32x4_shuffle(a[g][2], a[g][3], 0, 4, 2, 6), wasm_i32x4_shuffle(a[g][2], a[g][3], 1, 5, 3, 7));
      wasm_v128_store(s + g * KBLOCK + j, wasm_f32x4_mul(wasm_f32x4_add(wasm_i32x4_shuffle(s01, s23, 0, 1, 4, 5),
                                                                       wasm_i32x4_shuffle(s01, s23, 2, 3, 6, 7)), scale));
    }
  }
  for (; j < B; j++)
    for (int g = 0; g < NG; g++) s[g * KBLOCK + j] = dot(q + g * hd, K + j * hd, hd) * wasm_f32x4_extract_lane(scale, 0);
}

// acc[g] = acc[g] * c[g] + sum_j p[g][j] V[j] for NG (1..3) heads, 16 output floats a pass: 4 x NG
// accumulators, and per key 4 loads of V and NG splats for 4 x NG FMAs (one head: 1 load an FMA).
static inline __attribute__((always_inline))
void pv_heads(float *acc, const float *p, const float *V, int B, const float *c, const int NG) {
  const int hd = M.hd;
  for (int i0 = 0; i0 < hd; i0 += 16) {
    v128_t o[3][4];
    for (int g = 0; g < NG; g++) {
      const v128_t vc = wasm_f32x4_splat(c[g]);
      for (int u = 0; u < 4; u++) o[g][u] = wasm_f32x4_mul(wasm_v128_load(acc + g * hd + i0 + 4 * u), vc);
    }
    const float *vj = V + i0;
    for (int j = 0; j < B; j++, vj += hd) {
      v128_t x0 = wasm_v128_load(vj), x1 = wasm_v128_load(vj + 4), x2 = wasm_v128_load(vj + 8), x3 = wasm_v128_load(vj + 12);
      for (int g = 0; g < NG; g++) {
        v128_t pv = wasm_v128_load32_splat(p + g * KBLOCK + j);
        o[g][0] = fma4(pv, x0, o[g][0]); o[g][1] = fma4(pv, x1, o[g][1]);
        o[g][2] = fma4(pv, x2, o[g][2]); o[g][3] = fma4(pv, x3, o[g][3]);
      }
    }
    for (int g = 0; g < NG; g++)
      for (int u = 0; u < 4; u++) wasm_v128_store(acc + g * hd + i0 + 4 * u, o[g][u]);
  }
}

/**
 * Fold keys [j0, j1) (at most KBLOCK) into the running state of the rep query heads q[rep][hd]:
 * acc[rep][hd] = sum of p * V, then mx[rep] (the largest score so far) and sum[rep] (the sum of
 * p), with p = e^(score - mx). s: the thread's scratch (att_scratch_floats).
 */
static void attend_block(const float *q, const float *K, const float *V, int j0, int j1, float *acc, float *s) {
  const int hd = M.hd, rep = M.nh / M.nkv, B = j1 - j0;
  float *mx = acc + rep * hd, *sum = mx + rep, *c = s + rep * KBLOCK;
  K += j0 * hd; V += j0 * hd;
  int r = 0;
  for (; r + 2 <= rep; r += 2) qk_heads(q + r * hd, K, B, s + r * KBLOCK, 2);
  if (r < rep) qk_heads(q + r * hd, K, B, s + r * KBLOCK, 1);
  for (r = 0; r < rep; r++) {           // the online softmax: new maximum, rescale factor, p
    float *sr = s + r * KBLOCK;
    int j;
    v128_t vmx = wasm_f32x4_splat(mx[r]);
    for (j = 0; j + 4 <= B; j += 4) vmx = wasm_f32x4_max(vmx, wasm_v128_load(sr + j));
    float m = wasm_f32x4_extract_lane(vmx, 0);
    for (int l = 1; l < 4; l++) { float v = l == 1 ? wasm_f32x4_extract_lane(vmx, 1) : l == 2 ? wasm_f32x4_extract_lane(vmx, 2) : wasm_f32x4_extract_lane(vmx, 3); if (v > m) m = v; }
    for (; j < B; j++) if (sr[j] > m) m = sr[j];
    c[r] = exp1(mx[r] - m);             // rescales the earlier blocks: 0 on the first (mx = -3.4e38)
    vmx = wasm_f32x4_splat(m);
    v128_t va = wasm_f32x4_splat(0);
    for (j = 0; j + 4 <= B; j += 4) { v128_t e = exp4(wasm_f32x4_sub(wasm_v128_load(sr + j), vmx)); wasm_v128_store(sr + j, e); va = wasm_f32x4_add(va, e); }
    float ps = hsum(va);
    for (; j < B; j++) { sr[j] = exp1(sr[j] - m); ps += sr[j]; }
    sum[r] = sum[r] * c[r] + ps;
    mx[r] = m;
  }
  for (r = 0; r + 3 <= rep; r += 3) pv_heads(acc + r * hd, s + r * KBLOCK, V, B, c + r, 3);
  if (rep - r == 2) pv_heads(acc + r * hd, s + r * KBLOCK, V, B, c + r, 2);
  else if (rep - r == 1) pv_heads(acc + r * hd, s + r * KBLOCK, V, B, c + r, 1);
}

static void att_state_init(float *acc) {
  const int rep = M.nh / M.nkv, n = rep * M.hd;
  for (int i = 0; i < n; i++) acc[i] = 0;
  for (int r = 0; r < rep; r++) { acc[n + r] = -3.4e38f; acc[n + rep + r] = 0; }
}

// The attention of one layer for a chunk of n tokens at positions start.., split among the threads.
static struct { const Layer *L; int n, start, nblk, lo; } AT;

/** The first key a query at position pos sees: 0, or in a sliding layer the window's first
 * (transformers' mask: pos - key < window). */
static inline int first_key(const Layer *L, int pos) { return L->window && pos + 1 > L->window ? pos + 1 - L->window : 0; }

/** Prefill: items are (token, KV head); each folds all its causal keys, block after block. */
static void attention_items(int lo, int hi, int thread) {
  const int nh = M.nh, nkv = M.nkv, hd = M.hd, rep = nh / nkv, qkv_w = (nh + 2 * nkv) * hd;
  float *s = M.att_scratch + (uint32_t)thread * att_scratch_floats(), *acc = s + att_scratch_floats() - att_stride();
  for (int item = lo; item < hi; item++) {
    const int t = item / nkv, g = item % nkv, T = AT.start + t + 1;
    const float *K = AT.L->k + (uint32_t)g * M.max_t * hd, *V = AT.L->v + (uint32_t)g * M.max_t * hd;
    att_state_init(acc);
    for (int j0 = first_key(AT.L, T - 1); j0 < T; j0 += KBLOCK) attend_block(M.qkv + t * qkv_w + g * rep * hd, K, V, j0, j0 + KBLOCK < T ? j0 + KBLOCK : T, acc, s);
    float *out = M.att + (t * nh + g * rep) * hd;
    for (int r = 0; r < rep; r++) {
      const v128_t inv = wasm_f32x4_splat(1.0f / acc[rep * hd + rep + r]);
      for (int i = 0; i < hd; i += 4) wasm_v128_store(out + r * hd + i, wasm_f32x4_mul(wasm_v128_load(acc + r * hd + i), inv));
    }
  }
}

/** Decode: items are (KV head, key block), each into its own state in M.att_part. */
static void attention_block_items(int lo, int hi, int thread) {
  const int nkv = M.nkv, hd = M.hd, rep = M.nh / nkv, T = AT.start + 1, nblk = AT.nblk;
  float *s = M.att_scratch + (uint32_t)thread * att_scratch_floats();
  for (int item = lo; item < hi; item++) {
    const int g = item / nblk, b = item % nblk, j0 = AT.lo + b * KBLOCK;
    float *acc = M.att_part + (uint32_t)item * att_stride();
    att_state_init(acc);
    attend_block(M.qkv + g * rep * hd, AT.L->k + (uint32_t)g * M.max_t * hd, AT.L->v + (uint32_t)g * M.max_t * hd,
                 j0, j0 + KBLOCK < T ? j0 + KBLOCK : T, acc, s);
  }
}

/** Decode: the blocks' states merged in block order, out = sum_b e^(mx_b - m) acc_b / sum_b e^(mx_b - m) sum_b. */
static void attention_merge(void) {
  const int nkv = M.nkv, hd = M.hd, rep = M.nh / nkv, nblk = AT.nblk, st = att_stride();
  for (int g = 0; g < nkv; g++)
    for (int r = 0; r < rep; r++) {
      const float *first = M.att_part + (uint32_t)g * nblk * st;
      float m = -3.4e38f, total = 0;
      for (int b = 0; b < nblk; b++) { float v = first[b * st + rep * hd + r]; if (v > m) m = v; }
      float *out = M.att + (g * rep + r) * hd;
      for (int i = 0; i < hd; i += 4) wasm_v128_store(out + i, wasm_f32x4_splat(0));
      for (int b = 0; b < nblk; b++) {
        const float *a = first + b * st;
        const float c = exp1(a[rep * hd + r] - m);
        total += c * a[rep * hd + rep + r];
        const v128_t vc = wasm_f32x4_splat(c);
        for (int i = 0; i < hd; i += 4) wasm_v128_store(out + i, fma4(vc, wasm_v128_load(a + r * hd + i), wasm_v128_load(out + i)));
      }
      const v128_t inv = wasm_f32x4_splat(1.0f / total);
      for (int i = 0; i < hd; i += 4) wasm_v128_store(out + i, wasm_f32x4_mul(wasm_v128_load(out + i), inv));
    }
}

static void attention(const Layer *L, int n, int start) {
  AT.L = L; AT.n = n; AT.start = start;
  if (n == 1) {
    AT.lo = first_key(L, start);
    AT.nblk = (start + 1 - AT.lo + KBLOCK - 1) / KBLOCK;
    run_parallel(attention_block_items, M.nkv * AT.nblk, 1);
    attention_merge();
  } else {
    run_parallel(attention_items, n * M.nkv, 1);   // one (token, KV head) at a time: causal rows differ in length
  }
}

static inline void add_vec(float *y, const float *b, int n) {
  for (int i = 0; i < n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_v128_load(b + i)));
}

/** gemma3's gelu_pytorch_tanh, as models/graph.py writes it: 0.5x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
 * tanh(y) = 1 - 2 / (e^(2y) + 1) (e^(2y) is +inf or 0 at the ends: tanh is then exactly +-1). */
static inline v128_t gelu_tanh4(v128_t x) {
  const v128_t one = wasm_f32x4_splat(1.0f), two = wasm_f32x4_splat(2.0f);
  v128_t x3 = wasm_f32x4_mul(wasm_f32x4_mul(x, x), x);
  v128_t inner = wasm_f32x4_mul(wasm_f32x4_splat(0.7978845608028654f), wasm_f32x4_add(x, wasm_f32x4_mul(wasm_f32x4_splat(0.044715f), x3)));
  v128_t th = wasm_f32x4_sub(one, wasm_f32x4_div(two, wasm_f32x4_add(exp4(wasm_f32x4_mul(two, inner)), one)));
  return wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_splat(0.5f), x), wasm_f32x4_add(one, th));
}

/** One chunk of n tokens at positions start..start+n-1 through every layer; returns the row of
 * M.x that holds the last token's output. last_only: only that output is wanted (the head's
 * chunk), so the last layer, once its keys and values are cached, runs the rest for one token.
 * The steps beyond the llama block (biases, QK-norm, post-norms, GeGLU, windows) are taken where
 * the layer has them, in models/graph.py's order. */
static int layers(const int32_t *ids, int n, int start, int last_only) {
  const int H = M.H, hd = M.hd, nh = M.nh, nkv = M.nkv, I = M.I;
  const int qkv_w = (nh + 2 * nkv) * hd;
  const int nbE = H / 32;
  PROF_START;
  for (int t = 0; t < n; t++)                  // embedding rows, d*q exactly as the graph's Gather
    for (int b = 0; b < nbE; b++) {
      WIDEN(&M.embed.part[0], ids[t], b, nbE);
      float *o = M.x + t * H + b * 32;
      wasm_v128_store(o, w0); wasm_v128_store(o + 4, w1); wasm_v128_store(o + 8, w2); wasm_v128_store(o + 12, w3);
      wasm_v128_store(o + 16, w4); wasm_v128_store(o + 20, w5); wasm_v128_store(o + 24, w6); wasm_v128_store(o + 28, w7);
    }
  if (M.embed_scale != 0) {                    // gemma3: times sqrt(hidden) (the graph's float32 constant)
    const v128_t sc = wasm_f32x4_splat(M.embed_scale);
    for (int i = 0; i < n * H; i += 4) wasm_v128_store(M.x + i, wasm_f32x4_mul(wasm_v128_load(M.x + i), sc));
  }
  for (int l = 0; l < M.L; l++) {
    Layer *L = &M.layer[l];
    for (int t = 0; t < n; t++) rmsnorm(M.h + t * H, M.x + t * H, L->attn_norm, H);
    PROF(0);
    matmul(&L->qkv, M.h, n, M.qkv);
    PROF(1);
    for (int t = 0; t < n; t++) {
      float *row = M.qkv + t * qkv_w;
      const int pos = start + t;
      if (L->q_bias) {                         // qwen2
        add_vec(row, L->q_bias, nh * hd); add_vec(row + nh * hd, L->k_bias, nkv * hd); add_vec(row + (nh + nkv) * hd, L->v_bias, nkv * hd);
      }
      for (int h = 0; h < nh; h++) {
        if (L->q_norm) rmsnorm(row + h * hd, row + h * hd, L->q_norm, hd);   // qwen3, gemma3: per head, before rope
        rope(row + h * hd, pos, L);
      }
      for (int g = 0; g < nkv; g++) {
        float *k = row + (nh + g) * hd, *v = row + (nh + nkv + g) * hd;
        if (L->k_norm) rmsnorm(k, k, L->k_norm, hd);
        rope(k, pos, L);
        float *kc = L->k + ((uint32_t)g * M.max_t + pos) * hd, *vc = L->v + ((uint32_t)g * M.max_t + pos) * hd;
        for (int i = 0; i < hd; i += 4) { wasm_v128_store(kc + i, wasm_v128_load(k + i)); wasm_v128_store(vc + i, wasm_v128_load(v + i)); }
      }
    }
    if (last_only && l == M.L - 1 && n > 1) {
      const float *q = M.qkv + (n - 1) * qkv_w, *x = M.x + (n - 1) * H;
      for (int i = 0; i < nh * hd; i += 4) wasm_v128_store(M.qkv + i, wasm_v128_load(q + i));
      for (int i = 0; i < H; i += 4) wasm_v128_store(M.x + i, wasm_v128_load(x + i));
      start += n - 1;
      n = 1;
    }
    PROF(0);
    attention(L, n, start);
    PROF(2);
    matmul(&L->o, M.att, n, M.tmp);
    PROF(3);
    if (L->post_attn_norm) for (int t = 0; t < n; t++) rmsnorm(M.tmp + t * H, M.tmp + t * H, L->post_attn_norm, H);   // gemma3
    for (int i = 0; i < n * H; i += 4) wasm_v128_store(M.x + i, wasm_f32x4_add(wasm_v128_load(M.x + i), wasm_v128_load(M.tmp + i)));
    for (int t = 0; t < n; t++) rmsnorm(M.h + t * H, M.x + t * H, L->ffn_norm, H);
    PROF(0);
    matmul(&L->gate_up, M.h, n, M.gu);
    PROF(4);
    for (int t = 0; t < n; t++) {             // act = silu(gate) * up (gemma3: gelu_tanh(gate) * up), from the gate half
      float *g = M.gu + t * 2 * I, *u = g + I;
      if (M.act == ACT_GELU_TANH) {
        for (int i = 0; i < I; i += 4)
          wasm_v128_store(M.act_buf + t * I + i, wasm_f32x4_mul(gelu_tanh4(wasm_v128_load(g + i)), wasm_v128_load(u + i)));
        continue;
      }
      for (int i = 0; i < I; i += 4) {
        v128_t gv = wasm_v128_load(g + i);
        v128_t sig = wasm_f32x4_div(wasm_f32x4_splat(1.0f), wasm_f32x4_add(wasm_f32x4_splat(1.0f), exp4(wasm_f32x4_neg(gv))));
        wasm_v128_store(M.act_buf + t * I + i, wasm_f32x4_mul(wasm_f32x4_mul(gv, sig), wasm_v128_load(u + i)));
      }
    }
    PROF(5);
    matmul(&L->down, M.act_buf, n, M.tmp);
    PROF(6);
    if (L->post_ffn_norm) for (int t = 0; t < n; t++) rmsnorm(M.tmp + t * H, M.tmp + t * H, L->post_ffn_norm, H);   // gemma3
    for (int i = 0; i < n * H; i += 4) wasm_v128_store(M.x + i, wasm_f32x4_add(wasm_v128_load(M.x + i), wasm_v128_load(M.tmp + i)));
  }
  return n - 1;
}

// Top-K as a min-heap of (logit, id): the root is the weakest kept candidate. Ties go to the
// lower id, as onnxruntime's TopK orders them.
static inline int weaker(float la, int ia, float lb, int ib) { return la < lb || (la == lb && ia > ib); }

static void sift_down(float *hl, int32_t *hi, int n, int i) {
  for (;;) {
    int c = 2 * i + 1, m = i;
    if (c < n && weaker(hl[c], hi[c], hl[m], hi[m])) m = c;
    if (c + 1 < n && weaker(hl[c + 1], hi[c + 1], hl[m], hi[m])) m = c + 1;
    if (m == i) return;
    float tl = hl[i]; hl[i] = hl[m]; hl[m] = tl;
    int32_t ti = hi[i]; hi[i] = hi[m]; hi[m] = ti;
    i = m;
  }
}

// The sampling head's request and answer (docs/contracts.md §1), in a block the bridge writes
// before forward() and reads after: IN_* floats in, OUT_* floats out; the mask (V/32 words) and
// the penalized token ids live in their own arrays (head_mask_ptr, head_pen_ptr).
enum { IN_TEMP, IN_TOP_P, IN_MIN_P, IN_TOP_K, IN_PENALTY, IN_DRAW, IN_HAS_MASK, IN_SKIP, IN_NPEN,
       OUT_RAW_MAX = 16, OUT_RAW_SUM, OUT_ALLOWED_MAX, OUT_ALLOWED_SUM, OUT_T_MAX, OUT_T_SUM, OUT_KEPT_SUM,
       OUT_TAIL, OUT_COUNT, HEAD_IO = 32 };
#define NUCLEUS_BUCKETS 512
#define BUCKETS_PER_LN 23.083120654223414f   // 16 / ln 2: buckets of a factor 2^(1/16) in probability
static struct { float io[HEAD_IO]; uint32_t *mask; int32_t *pen; float *w; float bmass[NUCLEUS_BUCKETS]; int bcount[NUCLEUS_BUCKETS]; } HD;

/** The head's arrays (call once after init_runtime); 0 when out of memory. Without it (or with
 * io all zero) the head is the plain top-K of the logits. */
EXPORT(head_init) int head_init(void) {
  HD.mask = alloc(((M.V + 31) / 32) * 4); HD.pen = alloc(M.max_t * 4); HD.w = alloc(M.V * 4);
  HD.io[IN_TEMP] = 1; HD.io[IN_TOP_P] = 1; HD.io[IN_PENALTY] = 1; HD.io[IN_DRAW] = -1;
  return HD.mask && HD.pen && HD.w;
}
EXPORT(head_io_ptr) float *head_io_ptr(void) { return HD.io; }
EXPORT(head_mask_ptr) uint32_t *head_mask_ptr(void) { return HD.mask; }
EXPORT(head_pen_ptr) int32_t *head_pen_ptr(void) { return HD.pen; }

static inline int allowed(int i) { return !HD.io[IN_HAS_MASK] || (HD.mask[i >> 5] >> (i & 31) & 1); }

/** Top-K of lg (descending; ties to the lower id) into cand_*; lg holds -inf for masked tokens. */
static void top_k(const float *lg, int V, int K) {
  float *hl = M.cand_logits; int32_t *hi = M.cand_ids;
  for (int i = 0; i < K; i++) { hl[i] = lg[i]; hi[i] = i; }
  for (int i = K / 2 - 1; i >= 0; i--) sift_down(hl, hi, K, i);
  for (int i = K; i < V; i++)
    if (weaker(hl[0], hi[0], lg[i], i)) { hl[0] = lg[i]; hi[0] = i; sift_down(hl, hi, K, 0); }
  for (int n = K - 1; n > 0; n--) {            // heap sort: weakest to the end, so descending order
    float tl = hl[0]; hl[0] = hl[n]; hl[n] = tl;
    int32_t ti = hi[0]; hi[0] = hi[n]; hi[n] = ti;
    sift_down(hl, hi, n, 0);
  }
}

/**
 * The sampling head on hidden state x (the same function as models/graph.py's sampling_head):
 * s = logits with the repetition penalty and the mask; the top K of s (more with top_p < 1: the
 * whole nucleus at the temperature, found with a histogram of the probabilities); the maxima and
 * sums the bridge turns into log-sum-exps; and, with top_p 1 and no top_k, the token the uniform
 * draw lands on beyond the candidates (id order), or -1. With a sparse mask and IN_SKIP, only the
 * allowed rows of the output product are computed (the unconstrained sum is then NaN).
 */
static void head(const float *x, int K) {
  const int V = M.V;
  float *io = HD.io, *lg = M.logits;
  const int has_mask = io[IN_HAS_MASK] != 0 && HD.mask;
  const Mat *out = M.lm_head.rows ? &M.lm_head : &M.embed;   // untied, or the embedding (tied)
  rmsnorm(M.h, x, M.final_norm, M.H);
  PROF_START;
  int n_allowed = V;
  if (has_mask) {
    n_allowed = 0;
    for (int w = 0; w < (V + 31) / 32; w++) n_allowed += __builtin_popcount(HD.mask[w]);
  }
  const float NEG = -__builtin_inff();
  if (has_mask && io[IN_SKIP] != 0 && n_allowed * 16 < V) {
    // Sparse: the allowed rows only, run by run (~0.1 ms for tens of tokens against ~3.4 ms for all).
    for (int i = 0; i < V; ) {
      if (!allowed(i)) { lg[i++] = NEG; continue; }
      int j = i + 1;
      while (j < V && allowed(j)) j++;
      matmul_rows(out, M.h, 1, lg, i, j, 0);
      i = j;
    }
    io[OUT_RAW_MAX] = 0; io[OUT_RAW_SUM] = __builtin_nanf("");
  } else {
    matmul(out, M.h, 1, lg);
    float mx = -3.4e38f;
    for (int i = 0; i < V; i++) if (lg[i] > mx) mx = lg[i];
    v128_t vmx = wasm_f32x4_splat(mx), acc = wasm_f32x4_splat(0);
    for (int i = 0; i < V; i += 4) acc = wasm_f32x4_add(acc, exp4(wasm_f32x4_sub(wasm_v128_load(lg + i), vmx)));
    io[OUT_RAW_MAX] = mx; io[OUT_RAW_SUM] = hsum(acc);
    if (has_mask) for (int i = 0; i < V; i++) if (!allowed(i)) lg[i] = NEG;
  }
  M.lse_max = io[OUT_RAW_MAX]; M.lse = io[OUT_RAW_SUM];
  PROF(7);
  const float pen = io[IN_PENALTY];
  if (pen != 1.0f) {
    const int np = (int)io[IN_NPEN];
    for (int j = 0; j < np; j++) {
      const int t = HD.pen[j];
      if (t >= 0 && t < V && lg[t] != NEG) lg[t] = lg[t] > 0 ? lg[t] / pen : lg[t] * pen;
    }
  }
  // maxima and sums: allowed at temperature 1, and at T
  float amx = NEG;
  for (int i = 0; i < V; i++) if (lg[i] > amx) amx = lg[i];
  const float invT = 1.0f / (io[IN_TEMP] > 0 ? io[IN_TEMP] : 1.0f), tmx = amx * invT;
  float *w = HD.w;
  v128_t va = wasm_f32x4_splat(amx), vt = wasm_f32x4_splat(tmx), vi = wasm_f32x4_splat(invT);
  v128_t accA = wasm_f32x4_splat(0), accT = wasm_f32x4_splat(0);
  for (int i = 0; i < V; i += 4) {
    v128_t l = wasm_v128_load(lg + i);
    accA = wasm_f32x4_add(accA, exp4(wasm_f32x4_sub(l, va)));
    v128_t e = exp4(wasm_f32x4_sub(wasm_f32x4_mul(l, vi), vt));   // p / p_max; 0 when masked
    wasm_v128_store(w + i, e);
    accT = wasm_f32x4_add(accT, e);
  }
  const float tsum = hsum(accT);
  io[OUT_ALLOWED_MAX] = amx; io[OUT_ALLOWED_SUM] = hsum(accA); io[OUT_T_MAX] = tmx; io[OUT_T_SUM] = tsum;
  // the nucleus: every token up to the end of the bucket where the running mass reaches top_p
  int want = K;
  const float top_p = io[IN_TOP_P];
  if (top_p < 1.0f) {
    for (int b = 0; b < NUCLEUS_BUCKETS; b++) { HD.bmass[b] = 0; HD.bcount[b] = 0; }
    for (int i = 0; i < V; i++) {
      float d = (tmx - lg[i] * invT) * BUCKETS_PER_LN;
      int b = d < (float)(NUCLEUS_BUCKETS - 1) ? (int)d : NUCLEUS_BUCKETS - 1;
      HD.bmass[b] += w[i]; HD.bcount[b]++;
    }
    float run = 0; int upto = 0;
    for (int b = 0; b < NUCLEUS_BUCKETS; b++) {
      upto += HD.bcount[b];
      if (run >= top_p * tsum) { upto -= HD.bcount[b]; break; }
      run += HD.bmass[b];
    }
    if (upto > want) want = upto;
  }
  if (want > n_allowed) want = n_allowed < K ? K : n_allowed;
  if (want > V) want = V;
  top_k(lg, V, want);
  int count = 0;
  while (count < want && M.cand_logits[count] != NEG) count++;
  io[OUT_COUNT] = (float)count;
  // the kept distribution (min_p) and the draw beyond the candidates
  const float floor = io[IN_MIN_P] > 1e-38f ? io[IN_MIN_P] : 1e-38f;
  double kept = 0;
  for (int i = 0; i < V; i++) if (w[i] >= floor) kept += w[i];
  io[OUT_KEPT_SUM] = (float)kept;
  io[OUT_TAIL] = -1;
  const float draw = io[IN_DRAW];
  if (draw >= 0 && top_p >= 1.0f && io[IN_TOP_K] <= 0) {
    double rest = (double)draw * kept;
    for (int c = 0; c < count; c++) {
      const float wc = w[M.cand_ids[c]];
      if (wc >= floor) rest -= wc;
    }
    if (rest >= 0) {
      for (int c = 0; c < count; c++) w[M.cand_ids[c]] = -w[M.cand_ids[c]] - 1;   // mark the candidates
      int last = -1;
      for (int i = 0; i < V; i++) {
        if (w[i] >= floor) { rest -= w[i]; last = i; if (rest < 0) break; }
      }
      io[OUT_TAIL] = (float)last;
      for (int c = 0; c < count; c++) w[M.cand_ids[c]] = -(w[M.cand_ids[c]] + 1);
    }
  }
  PROF(8);
}

EXPORT(lse_max) float lse_max(void) { return M.lse_max; }

/**
 * Run n tokens (ids) at positions start.., writing their keys and values into the cache, and the
 * head's K candidates for the last one. Chunks of M.chunk tokens bound the activations' memory.
 * Returns 0 on bad arguments (the caller checks them first; this is the last line of defence).
 */
EXPORT(forward) int forward(const int32_t *ids, int n, int start, int K) {
  if (n < 1 || start < 0 || start + n > M.max_t || K < 1 || K > M.V) return 0;
  for (int i = 0; i < n; i++) if (ids[i] < 0 || ids[i] >= M.V) return 0;
  for (int done = 0; done < n; ) {
    int c = n - done < M.chunk ? n - done : M.chunk;
    const int last = layers(ids + done, c, start + done, done + c == n);
    done += c;
    if (done == n) head(M.x + last * M.H, K);
  }
  return 1;
}
