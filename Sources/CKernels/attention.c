// Fused attention for one query head: scores, softmax and the weighted sum of values in one
// call, so the per-key work is a few vector instructions instead of two calls.
#include <immintrin.h>
#include <math.h>
#include "ckernels.h"

// The package compiles the kernels with -ffp-contract=fast. Here a multiply fused into a later
// add would make the AVX2 and AVX-512 kernels round differently, so only the explicit FMAs fuse.
#pragma clang fp contract(on)

static float softmax_in_place_ref(float *s, int64_t n);

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

// Softmax numerators in place and 1 / their sum. The maximum is taken 8 at a time (exact in
// any order); the exponentials stay libm's expf, summed in double in order: a vectorized e^x
// within 2 ulp was tried and moved SmolLM2's greedy text off llama.cpp's at a 0.11 margin.
static float softmax_in_place(float *s, int64_t n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + j));
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    float m = -INFINITY;
    for (int i = 0; i < 8; i++) m = lanes[i] > m ? lanes[i] : m;
    for (; j < n; j++) m = s[j] > m ? s[j] : m;
    double sum = 0.0;
    for (j = 0; j < n; j++) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    return (float)(1.0 / sum);
}

// The reference twin's softmax, one score at a time throughout.
// The body for NV vectors of 8 per head. Called with a constant NV, the query and the output
// accumulators live in registers; with a run-time count the compiler keeps the arrays on the
// stack, and every value update becomes a load, an FMA and a store chained through memory.
// The arithmetic (its order included) is the same for every NV, so are the results.
static inline __attribute__((always_inline)) void attend(const float *q, const float *k, const float *v,
                                                          int64_t stride, int64_t span, const int64_t nv,
                                                          float scale, float *scores, float *out) {
    __m256 qv[32];
    for (int64_t i = 0; i < nv; i++) qv[i] = _mm256_loadu_ps(q + 8 * i);
    for (int64_t j = 0; j < span; j++) {
        const float *kr = k + j * stride;
        __m256 acc0 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kr));
        __m256 acc1 = _mm256_setzero_ps();
        int64_t i = 1;
        for (; i + 1 < nv; i += 2) {
            acc1 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(kr + 8 * i), acc1);
            acc0 = _mm256_fmadd_ps(qv[i + 1], _mm256_loadu_ps(kr + 8 * i + 8), acc0);
        }
        if (i < nv) acc1 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(kr + 8 * i), acc1);
        scores[j] = hsum256(_mm256_add_ps(acc0, acc1)) * scale;
    }
    const float inv = softmax_in_place(scores, span);
    // Values in slices of up to 8 vectors, each slice's accumulators in registers for the whole
    // span (each output lane still sums its terms in key order).
    for (int64_t i0 = 0; i0 < nv; i0 += 8) {
        const int64_t m = nv - i0 < 8 ? nv - i0 : 8;
        __m256 o[8];
        for (int64_t i = 0; i < m; i++) o[i] = _mm256_setzero_ps();
        for (int64_t j = 0; j < span; j++) {
            const __m256 p = _mm256_set1_ps(scores[j]);
            const float *vr = v + j * stride + 8 * i0;
            for (int64_t i = 0; i < m; i++) o[i] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + 8 * i), o[i]);
        }
        const __m256 vinv = _mm256_set1_ps(inv);
        for (int64_t i = 0; i < m; i++) _mm256_storeu_ps(out + 8 * (i0 + i), _mm256_mul_ps(o[i], vinv));
    }
}

void pg_attend_head_f32_avx2(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                        int64_t hd, float scale, float *scores, float *out) {
    switch (hd) {
    case 64: attend(q, k, v, stride, span, 8, scale, scores, out); return;
    case 128: attend(q, k, v, stride, span, 16, scale, scores, out); return;
    case 32: attend(q, k, v, stride, span, 4, scale, scores, out); return;
    case 80: attend(q, k, v, stride, span, 10, scale, scores, out); return;
    case 96: attend(q, k, v, stride, span, 12, scale, scores, out); return;
    default:
        if (hd % 8 != 0 || hd > 256) {
            pg_attend_head_f32_ref(q, k, v, stride, span, hd, scale, scores, out);
            return;
        }
        attend(q, k, v, stride, span, hd / 8, scale, scores, out);
    }
}

#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512vl"))), apply_to = function)

// The AVX-512 body for NZ vectors of 16 (an even count of the AVX2 body's vectors of 8). It does
// the AVX2 body's arithmetic in half the instructions: a score's two accumulators (even and odd
// vectors of 8) are the two halves of one register, and every value lane sums its terms in key
// order, so the results are the same bit for bit.
static inline __attribute__((always_inline)) void attend512(const float *q, const float *k, const float *v,
                                                             int64_t stride, int64_t span, const int64_t nz,
                                                             float scale, float *scores, float *out) {
    __m512 qz[16];
    for (int64_t i = 0; i < nz; i++) qz[i] = _mm512_loadu_ps(q + 16 * i);
    for (int64_t j = 0; j < span; j++) {
        const float *kr = k + j * stride;
        __m512 acc = _mm512_mul_ps(qz[0], _mm512_loadu_ps(kr));
        for (int64_t i = 1; i < nz; i++) acc = _mm512_fmadd_ps(qz[i], _mm512_loadu_ps(kr + 16 * i), acc);
        const __m256 even = _mm512_castps512_ps256(acc);
        const __m256 odd = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
        scores[j] = hsum256(_mm256_add_ps(even, odd)) * scale;
    }
    const float inv = softmax_in_place(scores, span);
    for (int64_t i0 = 0; i0 < nz; i0 += 8) {
        const int64_t m = nz - i0 < 8 ? nz - i0 : 8;
        __m512 o[8];
        for (int64_t i = 0; i < m; i++) o[i] = _mm512_setzero_ps();
        for (int64_t j = 0; j < span; j++) {
            const __m512 p = _mm512_set1_ps(scores[j]);
            const float *vr = v + j * stride + 16 * i0;
            for (int64_t i = 0; i < m; i++) o[i] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vr + 16 * i), o[i]);
        }
        const __m512 vinv = _mm512_set1_ps(inv);
        for (int64_t i = 0; i < m; i++) _mm512_storeu_ps(out + 16 * (i0 + i), _mm512_mul_ps(o[i], vinv));
    }
}

void pg_attend_head_f32_avx512(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                               int64_t hd, float scale, float *scores, float *out) {
    switch (hd) {
    case 64: attend512(q, k, v, stride, span, 4, scale, scores, out); return;
    case 128: attend512(q, k, v, stride, span, 8, scale, scores, out); return;
    case 32: attend512(q, k, v, stride, span, 2, scale, scores, out); return;
    case 80: attend512(q, k, v, stride, span, 5, scale, scores, out); return;
    case 96: attend512(q, k, v, stride, span, 6, scale, scores, out); return;
    default:
        if (hd % 16 != 0 || hd > 256) {
            pg_attend_head_f32_avx2(q, k, v, stride, span, hd, scale, scores, out);
            return;
        }
        attend512(q, k, v, stride, span, hd / 16, scale, scores, out);
    }
}

#pragma clang attribute pop

static float softmax_in_place_ref(float *s, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    return (float)(1.0 / sum);
}

void pg_attend_head_f32_ref(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                            int64_t hd, float scale, float *scores, float *out) {
    for (int64_t j = 0; j < span; j++) {
        float d = 0.0f;
        for (int64_t i = 0; i < hd; i++) d += q[i] * k[j * stride + i];
        scores[j] = d * scale;
    }
    const float inv = softmax_in_place_ref(scores, span);
    for (int64_t i = 0; i < hd; i++) out[i] = 0.0f;
    for (int64_t j = 0; j < span; j++)
        for (int64_t i = 0; i < hd; i++) out[i] += scores[j] * v[j * stride + i];
    for (int64_t i = 0; i < hd; i++) out[i] *= inv;
}
