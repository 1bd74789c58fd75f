// Native CPU decode step for Llama-shaped decoders (and Gemma 3) with GGUF block weights (Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS).
//
// One call runs every layer for a batch of B requests that each add one token: RMSNorm, fused QKV
// projection (+ bias), optional RMSNorm of each q and k head, RoPE (rotate-half), K/V store into
// the paged float32 or bfloat16 cache, grouped-query attention over the request's pages
// (optionally a sliding window), output projection, RMSNorm, fused gate/up projection, SiLU (or
// GELU) * up, down projection, and Gemma 3's norms of each sub-block's output; a second call runs
// the LM head.
// Matrix-vector products quantize the activation to 16 bits per block of 32 (one float scale per
// block) and take integer dot products with the weight blocks. Work is split over OpenMP threads
// (rows of each matrix, (request, head) pairs in attention). Built and loaded by native.py.

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

// How a segment stores its codes: 4-bit (Q4_0, Q4_1, Q4_K), 8-bit (Q8_0, Q5_0, Q5_1, Q5_K, Q2_K; IQ4 levels) or
// 16-bit (Q6_K, Q3_K: codes stored multiplied by their 16-value sub-block scales).
enum { U4 = 4, I8 = 8, I16 = 16 };
#define QK 32
#define QH 16  // activation sums are kept per half block, for the per-16 minimums of Q2_K
#define MAXSEG 3

// Rows of one storage: w = code * scale + min, with a scale per block of 32 and a min per block of
// 32 (`min`) or of 16 (`min16`, Q2_K); no min: 0.
typedef struct {
    int type, rows;
    const uint8_t *codes;  // U4: [rows, cols / 32, 16] nibbles (value j < 16 low, 16 + j high); I8, I16: [rows, cols]
    const float *scale;    // [rows, cols / 32]
    const float *min;      // [rows, cols / 32] or NULL
    const float *min16;    // [rows, cols / 16] or NULL
} qseg_t;

// A matrix [rows, cols]: its segments stacked by rows (a fused projection may mix storages).
typedef struct {
    int rows, cols, nseg;
    qseg_t seg[MAXSEG];
    const float *bias;  // [rows] or NULL
} qmat_t;

typedef struct {
    const float *norm_in, *norm_post;
    const float *q_norm, *k_norm;  // [D] RMSNorm weights over each q / k head before RoPE, or NULL
    const float *norm_attn_out, *norm_mlp_out;  // RMSNorm of each sub-block's output (Gemma 3), or NULL
    const float *cos_sin;      // RoPE table [max positions, rot_dim]: cos of the rot_dim / 2 frequencies, then sin
    qmat_t qkv, o, gate_up, down;
    void *k_cache, *v_cache;   // [N, P, Hk, D], float32 or bfloat16 (model_t.kv_bf16)
    int window;                // attend to the last `window` keys only; 0: all
    int gelu;                  // gate activation: 0 SiLU, 1 GELU (tanh approximation)
} layer_t;

typedef struct {
    int n_layers, hidden, n_heads, n_kv_heads, head_dim, inter, vocab, page_size, rot_dim, max_len, kv_bf16;
    float eps, scale;
    const float *final_norm;
    qmat_t lm_head;
    const layer_t *layers;
    // scratch, sized for max_batch requests
    int max_batch;
    float *res, *x, *qkv, *attn, *gu, *act, *h, *scores;
    int16_t *xq;
    float *xd, *xs;  // per block of 32: activation scale; per half block: scale * sum of codes
} model_t;

// x [cols] -> 16-bit codes q, per-block scale d and d * sum(q) per half block (for the offset terms
// of weights with minimums). At 16 bits the rounding of the activation (<= max |x| / 65534 per block)
// stays far below float16/bfloat16's.
static void quantize_row(const float *x, int cols, int16_t *q, float *d, float *s) {
    for (int b = 0; b < cols / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0.f;
#pragma omp simd reduction(max : amax)
        for (int j = 0; j < QK; j++) amax = (fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax);
        float dd = amax / 32767.f, id = dd > 0.f ? 1.f / dd : 0.f;
        int sum0 = 0, sum1 = 0;
#pragma omp simd reduction(+ : sum0)
        for (int j = 0; j < QH; j++) {
            float v = xb[j] * id;
            int r = (int)(v + (v >= 0.f ? 0.5f : -0.5f));  // round half away from zero
            q[b * QK + j] = (int16_t)r;
            sum0 += r;
        }
#pragma omp simd reduction(+ : sum1)
        for (int j = QH; j < QK; j++) {
            float v = xb[j] * id;
            int r = (int)(v + (v >= 0.f ? 0.5f : -0.5f));
            q[b * QK + j] = (int16_t)r;
            sum1 += r;
        }
        d[b] = dd;
        s[2 * b] = dd * (float)sum0;
        s[2 * b + 1] = dd * (float)sum1;
    }
}

// A weight block widened to 32 16-bit values (`widen_q4`, `widen_q8`), and its integer dot product
// with 32 activation codes (`dot`) as partial sums in a vector; `ACC_ADD` scales and accumulates them.
#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
typedef __m512i wide_t;
typedef __m512 acc_t;
static inline wide_t widen_q4(const uint8_t *qs) {  // codes 0..15: value j < 16 low nibble, 16 + j high
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    return _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4)));
}
static inline wide_t widen_q8(const uint8_t *qs) { return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)qs)); }
static inline wide_t widen_i16(const uint8_t *qs) { return _mm512_loadu_si512(qs); }
static inline __m512i dot(wide_t w, const int16_t *y) {
    return _mm512_dpwssd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(y));
}
#define ACC_ZERO _mm512_setzero_ps()
#define ACC_ADD(acc, isum, s) acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(s), acc)
#define ACC_SUM(a) _mm512_reduce_add_ps(a)
#define ACC_PLUS(a, b) _mm512_add_ps(a, b)
#elif defined(__AVX2__) && defined(__FMA__)
typedef struct { __m256i lo, hi; } wide_t;
typedef __m256 acc_t;
static inline wide_t widen_q4(const uint8_t *qs) {
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    wide_t w = {_mm256_cvtepu8_epi16(_mm_and_si128(raw, m4)), _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4))};
    return w;
}
static inline wide_t widen_q8(const uint8_t *qs) {
    wide_t w = {_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)qs)),
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qs + 16)))};
    return w;
}
static inline wide_t widen_i16(const uint8_t *qs) {
    wide_t w = {_mm256_loadu_si256((const __m256i *)qs), _mm256_loadu_si256((const __m256i *)(qs + 32))};
    return w;
}
static inline __m256i dot(wide_t w, const int16_t *y) {
    return _mm256_add_epi32(_mm256_madd_epi16(w.lo, _mm256_loadu_si256((const __m256i *)y)),
                            _mm256_madd_epi16(w.hi, _mm256_loadu_si256((const __m256i *)(y + 16))));
}
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define ACC_ZERO _mm256_setzero_ps()
#define ACC_ADD(acc, isum, s) acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(s), acc)
#define ACC_SUM(a) hsum(a)
#define ACC_PLUS(a, b) _mm256_add_ps(a, b)
#else
typedef struct { int16_t v[QK]; } wide_t;
typedef float acc_t;
static inline wide_t widen_q4(const uint8_t *qs) {
    wide_t w;
    for (int j = 0; j < 16; j++) { w.v[j] = qs[j] & 0x0f; w.v[j + 16] = qs[j] >> 4; }
    return w;
}
static inline wide_t widen_q8(const uint8_t *qs) {
    wide_t w;
    for (int j = 0; j < QK; j++) w.v[j] = (int8_t)qs[j];
    return w;
}
static inline wide_t widen_i16(const uint8_t *qs) {
    wide_t w;
    memcpy(w.v, qs, sizeof w.v);
    return w;
}
static inline int64_t dot(wide_t w, const int16_t *y) {  // 16-bit codes: 32 products overflow 32 bits
    int64_t sum = 0;
    for (int j = 0; j < QK; j++) sum += (int32_t)w.v[j] * y[j];
    return sum;
}
#define ACC_ZERO 0.f
#define ACC_ADD(acc, isum, s) acc += (float)(isum) * (s)
#define ACC_SUM(a) (a)
#define ACC_PLUS(a, b) ((a) + (b))
#endif

#define TILE 4  // requests whose activations share each widened weight block

// sum_k scale[k] * xd[k] * dot(block k, codes of block k) for one request: two accumulators (even and
// odd blocks) keep two multiply-add chains in flight.
#define ROW_DOT1(NAME, WIDEN, BYTES)                                                                     \
    static inline float NAME(const uint8_t *c, const float *sc, int nb, const int16_t *xq, const float *xd) { \
        acc_t a0 = ACC_ZERO, a1 = ACC_ZERO;                                                              \
        int k = 0;                                                                                       \
        for (; k + 1 < nb; k += 2) {                                                                     \
            ACC_ADD(a0, dot(WIDEN(c + k * BYTES), xq + k * QK), sc[k] * xd[k]);                          \
            ACC_ADD(a1, dot(WIDEN(c + (k + 1) * BYTES), xq + (k + 1) * QK), sc[k + 1] * xd[k + 1]);      \
        }                                                                                                \
        if (k < nb) ACC_ADD(a0, dot(WIDEN(c + k * BYTES), xq + k * QK), sc[k] * xd[k]);                  \
        return ACC_SUM(ACC_PLUS(a0, a1));                                                                \
    }
ROW_DOT1(row_dot1_q4, widen_q4, 16)
ROW_DOT1(row_dot1_q8, widen_q8, 32)
ROW_DOT1(row_dot1_i16, widen_i16, 64)

// The same for TILE requests at once (activation rows `stride` codes apart): each block is widened once.
#define ROW_DOTS(NAME, WIDEN, BYTES)                                                                     \
    static inline void NAME(const uint8_t *c, const float *sc, int nb, const int16_t *xq, const float *xd, \
                            int stride, float *out) {                                                    \
        acc_t a[TILE];                                                                                   \
        for (int b = 0; b < TILE; b++) a[b] = ACC_ZERO;                                                  \
        for (int k = 0; k < nb; k++) {                                                                   \
            wide_t w = WIDEN(c + k * BYTES);                                                             \
            for (int b = 0; b < TILE; b++)                                                               \
                ACC_ADD(a[b], dot(w, xq + (size_t)b * stride + k * QK), sc[k] * xd[(size_t)b * nb + k]); \
        }                                                                                                \
        for (int b = 0; b < TILE; b++) out[b] = ACC_SUM(a[b]);                                           \
    }
ROW_DOTS(row_dots_q4, widen_q4, 16)
ROW_DOTS(row_dots_q8, widen_q8, 32)
ROW_DOTS(row_dots_i16, widen_i16, 64)

// Activation row b of a matrix with `cols` inputs: where its codes and block scales live.
#define XQ(md, b, cols) (md)->xq + (size_t)(b) * (cols), (md)->xd + (size_t)(b) * ((cols) / QK), (md)->xs + (size_t)(b) * ((cols) / QH)

// Writes y[b, r] for the dot product `v` of segment row `row` (matrix row r) with request b: the
// blocks' mins times the activation sums, and the bias, added.
static inline void put(const model_t *md, const qmat_t *m, const qseg_t *g, int row, int r, int b, float v, float *y) {
    int nb = m->cols / QK;
    const float *xs = md->xs + (size_t)b * 2 * nb;
    if (g->min) {
        const float *mn = g->min + (size_t)row * nb;
        float offset = 0.f;
#pragma omp simd reduction(+ : offset)
        for (int j = 0; j < nb; j++) offset += mn[j] * (xs[2 * j] + xs[2 * j + 1]);
        v += offset;
    }
    if (g->min16) {
        const float *mn = g->min16 + (size_t)row * 2 * nb;
        float offset = 0.f;
#pragma omp simd reduction(+ : offset)
        for (int j = 0; j < 2 * nb; j++) offset += mn[j] * xs[j];
        v += offset;
    }
    y[(size_t)b * m->rows + r] = m->bias ? v + m->bias[r] : v;
}

// The rows of one segment (matrix rows row0 ..) against all B requests, in tiles of TILE requests
// and then one at a time. Work-shared without a closing barrier: segments write disjoint rows, and
// `matvec` waits once at its end.
#define SEGMENT_ROWS(NAME, DOT1, DOTS, BYTES)                                                            \
    static void NAME(const model_t *md, const qmat_t *m, const qseg_t *g, int row0, int B, float *y) { \
        int nb = m->cols / QK;                                                                          \
        _Pragma("omp for schedule(static) nowait")                                                    \
        for (int row = 0; row < g->rows; row++) {                                                      \
            const uint8_t *c = g->codes + (size_t)row * nb * BYTES;                                     \
            const float *sc = g->scale + (size_t)row * nb;                                              \
            int b0 = 0;                                                                                 \
            for (; b0 + TILE <= B; b0 += TILE) {                                                        \
                float out[TILE];                                                                        \
                DOTS(c, sc, nb, md->xq + (size_t)b0 * m->cols, md->xd + (size_t)b0 * nb, m->cols, out);  \
                for (int b = 0; b < TILE; b++) put(md, m, g, row, row0 + row, b0 + b, out[b], y);      \
            }                                                                                           \
            for (; b0 < B; b0++)                                                                        \
                put(md, m, g, row, row0 + row, b0,                                                      \
                    DOT1(c, sc, nb, md->xq + (size_t)b0 * m->cols, md->xd + (size_t)b0 * nb), y);       \
        }                                                                                               \
    }
SEGMENT_ROWS(segment_rows_q4, row_dot1_q4, row_dots_q4, 16)
SEGMENT_ROWS(segment_rows_q8, row_dot1_q8, row_dots_q8, 32)
SEGMENT_ROWS(segment_rows_i16, row_dot1_i16, row_dots_i16, 64)

// y[B, rows] = x[B, cols] @ W.T (+ bias) for activations already quantized into md->xq, inside a
// parallel region. Every step that produces a matrix input quantizes it on the way out, so that
// each stage costs one barrier.
static void matvec(const model_t *md, const qmat_t *m, int B, float *y) {
    int row0 = 0;
    for (int s = 0; s < m->nseg; s++) {
        const qseg_t *g = &m->seg[s];
        if (g->type == U4)
            segment_rows_q4(md, m, g, row0, B, y);
        else if (g->type == I8)
            segment_rows_q8(md, m, g, row0, B, y);
        else
            segment_rows_i16(md, m, g, row0, B, y);
        row0 += g->rows;
    }
#pragma omp barrier
}

// 1 / sqrt(mean(x^2) + eps), the sum taken in double.
static inline float rms_scale(const float *x, int n, float eps) {
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    return 1.f / sqrtf((float)(ss / n) + eps);
}

// res += add (when given; first normalized with `add_w` when that is given); then
// out = rms_norm(res) * w, quantized for the next matrix when `out` is NULL. One request per thread,
// inside a parallel region.
static void add_norm(const model_t *md, int B, const float *add, const float *add_w, const float *w, float *out) {
    int n = md->hidden;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++) {
        float *x = md->res + (size_t)b * n;
        if (add) {
            const float *a = add + (size_t)b * n;
            float r = add_w ? rms_scale(a, n, md->eps) : 1.f;
            for (int i = 0; i < n; i++) x[i] += add_w ? a[i] * r * add_w[i] : a[i];
        }
        float r = rms_scale(x, n, md->eps);
        float *y = out ? out + (size_t)b * n : md->x + (size_t)b * n;
        for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
        if (!out) quantize_row(y, n, XQ(md, b, n));
    }
}

// KV cache entries: float32, or bfloat16 (rounded to nearest even, as torch casts).
static inline float bf16_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline void kv_store(void *cache, int bf16, int64_t at, const float *x, int n) {
    if (!bf16) {
        memcpy((float *)cache + at, x, sizeof(float) * n);
        return;
    }
    uint16_t *dst = (uint16_t *)cache + at;
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        dst[i] = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    }
}

static void attention(const model_t *md, const layer_t *L, int B, const int *seq_lens, const int64_t *slots,
                      const int *block_tables, int bt_stride) {
    int Hq = md->n_heads, Hk = md->n_kv_heads, D = md->head_dim, P = md->page_size, G = Hq / Hk;
    int row = (Hq + 2 * Hk) * D, half = md->rot_dim / 2, cols = Hq * D;
    // RoPE on q and k, then store k and v.
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++) {
        float *qkv = md->qkv + (size_t)b * row;
        const float *cs = L->cos_sin + (size_t)(seq_lens[b] - 1) * md->rot_dim;
        for (int h = 0; h < Hq + Hk; h++) {
            float *v = qkv + h * D;
            const float *w = h < Hq ? L->q_norm : L->k_norm;
            if (w) {
                float r = rms_scale(v, D, md->eps);
                for (int i = 0; i < D; i++) v[i] = v[i] * r * w[i];
            }
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half], c = cs[i], s = cs[half + i];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
        int64_t slot = slots[b];
        kv_store(L->k_cache, md->kv_bf16, slot * Hk * D, qkv + Hq * D, Hk * D);
        kv_store(L->v_cache, md->kv_bf16, slot * Hk * D, qkv + (Hq + Hk) * D, Hk * D);
    }
#pragma omp for schedule(static)
    for (int bh = 0; bh < B * Hq; bh++) {
        int b = bh / Hq, h = bh % Hq, kh = h / G, n = seq_lens[b];
        int first = L->window > 0 && n > L->window ? n - L->window : 0;
        const float *q = md->qkv + (size_t)b * row + h * D;
        const int *table = block_tables + (size_t)b * bt_stride;
        float *sc = md->scores + (size_t)bh * md->max_len, mx = -INFINITY;
        for (int t = first; t < n; t++) {
            int64_t k = (((int64_t)table[t / P] * P + t % P) * Hk + kh) * D;
            float dot = 0.f;
            if (md->kv_bf16) {
                const uint16_t *kb = (const uint16_t *)L->k_cache + k;
#pragma omp simd reduction(+ : dot)
                for (int i = 0; i < D; i++) dot += q[i] * bf16_float(kb[i]);
            } else {
                const float *kf = (const float *)L->k_cache + k;
#pragma omp simd reduction(+ : dot)
                for (int i = 0; i < D; i++) dot += q[i] * kf[i];
            }
            sc[t] = dot * md->scale;
            mx = fmaxf(mx, sc[t]);
        }
        float sum = 0.f;
        for (int t = first; t < n; t++) { sc[t] = expf(sc[t] - mx); sum += sc[t]; }
        float *out = md->attn + (size_t)b * cols + h * D;
        for (int i = 0; i < D; i++) out[i] = 0.f;
        for (int t = first; t < n; t++) {
            int64_t v = (((int64_t)table[t / P] * P + t % P) * Hk + kh) * D;
            float p = sc[t] / sum;
            if (md->kv_bf16) {
                const uint16_t *vb = (const uint16_t *)L->v_cache + v;
                for (int i = 0; i < D; i++) out[i] += p * bf16_float(vb[i]);
            } else {
                const float *vf = (const float *)L->v_cache + v;
                for (int i = 0; i < D; i++) out[i] += p * vf[i];
            }
        }
        if (D % QK == 0) {  // this head's blocks of the output projection's input
            int16_t *xq = md->xq + (size_t)b * cols + h * D;
            float *xd = md->xd + (size_t)b * (cols / QK) + h * D / QK, *xs = md->xs + (size_t)b * (cols / QH) + h * D / QH;
            quantize_row(out, D, xq, xd, xs);
        }
    }
    if (D % QK) {
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) quantize_row(md->attn + (size_t)b * cols, cols, XQ(md, b, cols));
    }
}

// act = activation(gate) * up, quantized for the down projection: a block of 32 per iteration.
static void gate_mul(const model_t *md, const layer_t *L, int B) {
    int I = md->inter, nb = I / QK;
#pragma omp for schedule(static)
    for (int i = 0; i < B * nb; i++) {
        int b = i / nb, j0 = (i % nb) * QK;
        const float *g = md->gu + (size_t)b * 2 * I + j0, *u = g + I;
        float *a = md->act + (size_t)b * I + j0;
        if (L->gelu)
            for (int j = 0; j < QK; j++)
                a[j] = 0.5f * g[j] * (1.f + tanhf(0.7978845608028654f * (g[j] + 0.044715f * g[j] * g[j] * g[j]))) * u[j];
        else
            for (int j = 0; j < QK; j++) a[j] = g[j] / (1.f + expf(-g[j])) * u[j];
        quantize_row(a, QK, md->xq + (size_t)b * I + j0, md->xd + (size_t)b * nb + j0 / QK, md->xs + (size_t)b * 2 * nb + j0 / QH);
    }
}

// emb [B, hidden]: the new tokens' embeddings. Runs every layer and the final norm; writes the
// final normed hidden states hidden_out [B, hidden].
void decode_layers(const model_t *md, int B, const float *emb, const int *seq_lens, const int64_t *slots,
                   const int *block_tables, int bt_stride, float *hidden_out) {
    memcpy(md->res, emb, sizeof(float) * B * md->hidden);
#pragma omp parallel
    {
        for (int l = 0; l < md->n_layers; l++) {
            const layer_t *L = md->layers + l;
            // the last MLP output joins the stream
            add_norm(md, B, l == 0 ? NULL : md->h, l == 0 ? NULL : L[-1].norm_mlp_out, L->norm_in, NULL);
            matvec(md, &L->qkv, B, md->qkv);
            attention(md, L, B, seq_lens, slots, block_tables, bt_stride);
            matvec(md, &L->o, B, md->h);
            add_norm(md, B, md->h, L->norm_attn_out, L->norm_post, NULL);
            matvec(md, &L->gate_up, B, md->gu);
            gate_mul(md, L, B);
            matvec(md, &L->down, B, md->h);
        }
        const layer_t *last = md->layers + md->n_layers - 1;
        add_norm(md, B, md->n_layers ? md->h : NULL, md->n_layers ? last->norm_mlp_out : NULL, md->final_norm, hidden_out);
    }
}

// logits [B, vocab] = hidden [B, hidden] @ lm_head.T
void lm_head(const model_t *md, int B, const float *hidden, float *logits) {
    int n = md->lm_head.cols;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) quantize_row(hidden + (size_t)b * n, n, XQ(md, b, n));
        matvec(md, &md->lm_head, B, logits);
    }
}
