// Float kernels: f32/f16/bf16 weight rows against f32 activations, axpy, and f16 row
// conversion. AVX2+FMA+F16C versions (suffix _avx2, under a target attribute) with scalar
// tails, plus plain scalar `_ref` twins compiled for any x86-64.
#include <immintrin.h>

#include "ck_internal.h"
#include "ckernels.h"

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

static inline float hsum_f32x8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float bf16_to_f32(uint16_t h) { return pg_bits_to_f32((uint32_t)h << 16); }

static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint16_t *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

// Four independent accumulators over 32 values per iteration, then 8 at a time, then scalars.
#define PG_DOT_BODY(LOADW)                                                                        \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                               \
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();                               \
    int64_t i = 0;                                                                                \
    for (; i + 32 <= n; i += 32) {                                                                \
        acc0 = _mm256_fmadd_ps(LOADW(w + i), _mm256_loadu_ps(a + i), acc0);                       \
        acc1 = _mm256_fmadd_ps(LOADW(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);               \
        acc2 = _mm256_fmadd_ps(LOADW(w + i + 16), _mm256_loadu_ps(a + i + 16), acc2);             \
        acc3 = _mm256_fmadd_ps(LOADW(w + i + 24), _mm256_loadu_ps(a + i + 24), acc3);             \
    }                                                                                             \
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(LOADW(w + i), _mm256_loadu_ps(a + i), acc0); \
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));

float pg_vec_dot_f32_f32_avx2(int64_t n, const float *w, const float *a) {
    PG_DOT_BODY(_mm256_loadu_ps)
    for (; i < n; i++) sum += w[i] * a[i];
    return sum;
}

float pg_vec_dot_f16_f32_avx2(int64_t n, const uint16_t *w, const float *a) {
    PG_DOT_BODY(load_f16x8)
    for (; i < n; i++) sum += _cvtsh_ss(w[i]) * a[i];
    return sum;
}

float pg_vec_dot_bf16_f32_avx2(int64_t n, const uint16_t *w, const float *a) {
    PG_DOT_BODY(load_bf16x8)
    for (; i < n; i++) sum += bf16_to_f32(w[i]) * a[i];
    return sum;
}

#undef PG_DOT_BODY

void pg_axpy_f32_avx2(int64_t n, float a, const float *x, float *y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

void pg_f16_to_f32_row_avx2(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
}

void pg_f32_to_f16_row_avx2(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) y[i] = (uint16_t)_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

float pg_stream_sum_f32_avx2(const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    float lanes[8];
    _mm256_storeu_ps(lanes, a);
    float s = 0.0f;
    for (int k = 0; k < 8; k++) s += lanes[k];
    for (; i < n; i++) s += x[i];
    return s;
}

#pragma clang attribute pop

// ---- Scalar reference twins -----------------------------------------------------------------

float pg_vec_dot_f32_f32_ref(int64_t n, const float *w, const float *a) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += w[i] * a[i];
    return sum;
}

float pg_vec_dot_f16_f32_ref(int64_t n, const uint16_t *w, const float *a) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += pg_h2f_portable(w[i]) * a[i];
    return sum;
}

float pg_vec_dot_bf16_f32_ref(int64_t n, const uint16_t *w, const float *a) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += bf16_to_f32(w[i]) * a[i];
    return sum;
}

void pg_axpy_f32_ref(int64_t n, float a, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

void pg_f16_to_f32_row_ref(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = pg_h2f_portable(x[i]);
}

void pg_f32_to_f16_row_ref(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = pg_f2h_portable(x[i]);
}

float pg_stream_sum_f32_ref(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}
