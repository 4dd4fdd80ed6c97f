// The x86 SIMD kernels for quantized dot products and activation quantizers, written once and
// compiled once per instruction-set level: quants_avx2.c, quants_avxvnni.c and quants_avx512.c
// include this file under their own target attribute, with PG_FN naming each function for its
// level (pg_vec_dot_q4_0_q8_0_avx2, …) and PG_VNNI choosing the int8 dot instruction. No
// package-wide -m flag is involved, so a CPU without AVX2 runs the plain C twins instead.
//
// Scheme: per block, multiply weight bytes by activation bytes with _mm256_maddubs_epi16
// (unsigned x signed -> pairwise int16 sums), widen with _mm256_madd_epi16 (to int32, applying a
// per-sub-block scale where the format has one) or use one vpdpbusd for both, convert to float
// and accumulate with one FMA per block (per super-block for K-quants). Float accumulators stay
// in registers for the whole row; a single horizontal sum happens at the end. All loads are
// unaligned.
//
// Saturation: maddubs saturates at int16. Largest pair sums used here: Q4 15*127*2=3810,
// signed Q4/Q5 16*127*2=4064, Q5 31*127*2=7874, Q8 128*127*2=32512, Q6 63*127*2=16002; all below
// 32767 given activations in [-127, 127], which every quantizer in this file guarantees.
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#include "ck_internal.h"
#include "ckernels.h"

static inline uint16_t f2h(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

static inline float hsum_f32x8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hsum_f32x4(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline float hmax_f32x8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// 16 packed bytes -> 32 bytes in [0,15]: low nibbles in bytes 0..15, high nibbles in 16..31,
// matching the value order of Q4/Q5 blocks (y[j] low nibble, y[j+16] high nibble).
// (Broadcast load + per-lane variable shift keeps this off the shuffle port.)
static inline __m256i nibbles_32(const uint8_t *qs) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i shifted = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
}

// 32 bits (little-endian) -> 32 bytes, byte i = 0xFF when bit i is set, else 0x00.
static inline __m256i bits_to_bytes_32(const uint8_t *p) {
    uint32_t bits;
    memcpy(&bits, p, 4);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)bits),
        _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0));
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, sel), sel);
}

// Unsigned int8 x signed int8 -> 8 int32 lane sums of 4 products each: maddubs then madd, or
// one vpdpbusd where the instantiation has VNNI (PG_VNNI 1: AVX-VNNI, 2: AVX512-VNNI on ymm).
// Both sum the same four products per lane, and maddubs never saturates here (every unsigned
// operand is at most 128 and every signed one at most 127 in magnitude: a pair is at most
// 32512), so every instantiation gives the same integers and, with the same float steps after
// them, the same results bit for bit.
#if PG_VNNI == 1
#define PG_IDOT(U, S) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), U, S)
#elif PG_VNNI == 2
#define PG_IDOT(U, S) _mm256_dpbusd_epi32(_mm256_setzero_si256(), U, S)
#else
#define PG_IDOT(U, S) _mm256_madd_epi16(_mm256_maddubs_epi16(U, S), _mm256_set1_epi16(1))
#endif

// Signed int8 x signed int8 -> 8 int32 sums of 4 products each. Uses |w| * (a with w's sign)
// so the left operand is unsigned.
static inline __m256i dot_i8_i8(__m256i w, __m256i a) {
    return PG_IDOT(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

// Unsigned int8 (weights) x signed int8 (activations) -> 8 int32 sums.
static inline __m256i dot_u8_i8(__m256i w, __m256i a) { return PG_IDOT(w, a); }

// Pack 32 int32 (four vectors of 8, in order) into 32 int8 with saturation, preserving order.
static inline __m256i pack_i32x32_to_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i p01 = _mm256_packs_epi32(i0, i1);  // [i0 0-3, i1 0-3 | i0 4-7, i1 4-7] as i16
    const __m256i p23 = _mm256_packs_epi32(i2, i3);
    const __m256i p = _mm256_packs_epi16(p01, p23);  // dwords: i0a i1a i2a i3a | i0b i1b i2b i3b
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// ---- Activation quantizers ------------------------------------------------------------------

// Shared by Q8_0 and Q8_1: quantizes one 32-value block, returns d (unrounded) and writes qs.
// Rounding is cvtps2dq's round-half-to-even (the scalar reference uses roundf, half away from 0).
static inline float quantize_block_32(const float *x, int8_t *qs, int *sum_out) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(x);
    __m256 v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16);
    __m256 v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_bit, v0), _mm256_andnot_ps(sign_bit, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign_bit, v2), _mm256_andnot_ps(sign_bit, v3)));
    const float amax = hmax_f32x8(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
    if (sum_out) {
        *sum_out = hsum_i32x8(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    }
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32_to_i8(i0, i1, i2, i3));
    return d;
}

void PG_FN(pg_quantize_row_q8_0)(const float *x, void *vy, int64_t n) {
    pg_block_q8_0 *y = (pg_block_q8_0 *)vy;
    const int64_t nb = n / PG_QK;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float d = quantize_block_32(x + ib * PG_QK, y[ib].qs, NULL);
        y[ib].d = f2h(d);
    }
}

void PG_FN(pg_quantize_row_q8_1)(const float *x, void *vy, int64_t n) {
    pg_block_q8_1 *y = (pg_block_q8_1 *)vy;
    const int64_t nb = n / PG_QK;
    for (int64_t ib = 0; ib < nb; ib++) {
        int sum = 0;
        const float d = quantize_block_32(x + ib * PG_QK, y[ib].qs, &sum);
        y[ib].d = f2h(d);
        y[ib].s = f2h(d * (float)sum);
    }
}

void PG_FN(pg_quantize_row_q8_K)(const float *x, void *vy, int64_t n) {
    pg_block_q8_K *y = (pg_block_q8_K *)vy;
    const int64_t nb = n / PG_QK_K;
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    for (int64_t ib = 0; ib < nb; ib++) {
        const float *xb = x + ib * PG_QK_K;
        __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
        for (int j = 0; j < PG_QK_K; j += 16) {
            m0 = _mm256_max_ps(m0, _mm256_andnot_ps(sign_bit, _mm256_loadu_ps(xb + j)));
            m1 = _mm256_max_ps(m1, _mm256_andnot_ps(sign_bit, _mm256_loadu_ps(xb + j + 8)));
        }
        const float amax = hmax_f32x8(_mm256_max_ps(m0, m1));
        if (amax == 0.0f) {
            memset(&y[ib], 0, sizeof(pg_block_q8_K));
            continue;
        }
        // Signed value of the first element whose magnitude is amax (same choice as the reference).
        float max = 0.0f;
        const __m256 vamax = _mm256_set1_ps(amax);
        for (int j = 0; j < PG_QK_K; j += 8) {
            const __m256 v = _mm256_loadu_ps(xb + j);
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign_bit, v), vamax, _CMP_EQ_OQ));
            if (mask) { max = xb[j + __builtin_ctz((unsigned)mask)]; break; }
        }
        const float iscale = -127.0f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i q127 = _mm256_set1_epi32(127);
        int16_t bsums[16];
        for (int j = 0; j < PG_QK_K; j += 32) {
            // Nearest, ties to even (as ggml's nearest_int); clamp +127.5 style overshoot to 127.
            const __m256i i0 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j), vs)), q127);
            const __m256i i1 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 8), vs)), q127);
            const __m256i i2 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 16), vs)), q127);
            const __m256i i3 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 24), vs)), q127);
            bsums[j / 16] = (int16_t)hsum_i32x8(_mm256_add_epi32(i0, i1));
            bsums[j / 16 + 1] = (int16_t)hsum_i32x8(_mm256_add_epi32(i2, i3));
            _mm256_storeu_si256((__m256i *)(y[ib].qs + j), pack_i32x32_to_i8(i0, i1, i2, i3));
        }
        memcpy((void *)y[ib].bsums, bsums, sizeof(bsums));
        y[ib].d = 1.0f / iscale;
    }
}

// ---- 32-wide formats ------------------------------------------------------------------------

// The two f16 values at p (p[0..1], p[2..3]) as float lanes 0 and 1; lanes 2 and 3 are zero.
// A 4-byte load into a zeroed register (vmovd) keeps the conversion free of false dependencies
// (clang lowers _cvtsh_ss through an insert into an undefined register, which it happily
// allocates to a live accumulator, serializing the whole loop).
static inline __m128 load_f16x2(const void *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
}

// For the "_1" pairings, [d_w * d_a, m_w * s_a, 0, 0] from {d, m} and {d, s}.
static inline __m128 block_scale_min(const void *w, const void *a) {
    return _mm_mul_ps(load_f16x2(w), load_f16x2(a));
}

// One block with a min (Q4_1, Q5_1): SM receives [d_w*d_a, m_w*s_a, 0, 0], and the block adds d_w*d_a times the lane sums.
#define PG_STEP_MIN(ACC, SM, IB, WEIGHTS)                                                         \
    const __m128 SM = block_scale_min(&w[IB], &a[IB]);                                            \
    ACC = _mm256_fmadd_ps(_mm256_broadcastss_ps(SM),                                              \
                          _mm256_cvtepi32_ps(dot_u8_i8(WEIGHTS(&w[IB]), _mm256_loadu_si256((const __m256i *)a[IB].qs))), \
                          ACC)

// The min terms m_w*s_a accumulate in lane 1 of acc_m, one add per two blocks.
#define PG_DOT32_WITH_MIN(NAME, WBLOCK, WEIGHTS)                                                  \
    float NAME(int64_t n, const void *vw, const void *va) {                                       \
        const WBLOCK *w = (const WBLOCK *)vw;                                                      \
        const pg_block_q8_1 *a = (const pg_block_q8_1 *)va;                                        \
        const int64_t nb = n / PG_QK;                                                             \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                           \
        __m128 acc_m = _mm_setzero_ps();                                                          \
        int64_t ib = 0;                                                                           \
        for (; ib + 1 < nb; ib += 2) {                                                            \
            PG_STEP_MIN(acc0, s0, ib, WEIGHTS);                                                   \
            PG_STEP_MIN(acc1, s1, ib + 1, WEIGHTS);                                               \
            acc_m = _mm_add_ps(acc_m, _mm_add_ps(s0, s1));                                        \
        }                                                                                         \
        if (ib < nb) {                                                                            \
            PG_STEP_MIN(acc0, s0, ib, WEIGHTS);                                                   \
            acc_m = _mm_add_ps(acc_m, s0);                                                        \
        }                                                                                         \
        return hsum_f32x8(_mm256_add_ps(acc0, acc1)) +                                            \
               _mm_cvtss_f32(_mm_movehdup_ps(acc_m));                                             \
    }

// Q4_0 weights stay unsigned nibbles; the -8 offset is folded into the dot below.
static inline __m256i q4_0_weights(const pg_block_q4_0 *b) { return nibbles_32(b->qs); }

// sum (q - 8) * a over pairs as maddubs(q, a) - maddubs(8, a): both terms are at most
// 15*127*2 in magnitude, so neither saturates and the int16 difference is exact.
static inline __m256i dot_q4_0(__m256i q, __m256i a) {
#if PG_VNNI
    return _mm256_sub_epi32(PG_IDOT(q, a), PG_IDOT(_mm256_set1_epi8(8), a));
#else
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, a), _mm256_maddubs_epi16(_mm256_set1_epi8(8), a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
#endif
}

// Q4_1 weights as unsigned bytes in [0, 15].
static inline __m256i q4_1_weights(const pg_block_q4_1 *b) { return nibbles_32(b->qs); }

// Q5_0 weights as unsigned bytes in [0, 31]; the -16 offset is folded into the dot below.
static inline __m256i q5_0_weights(const pg_block_q5_0 *b) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes_32(b->qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_32(b->qs), hi);
}

// As dot_q4_0 with offset 16: terms at most 31*127*2 and 16*127*2, no saturation.
static inline __m256i dot_q5_0(__m256i q, __m256i a) {
#if PG_VNNI
    return _mm256_sub_epi32(PG_IDOT(q, a), PG_IDOT(_mm256_set1_epi8(16), a));
#else
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, a), _mm256_maddubs_epi16(_mm256_set1_epi8(16), a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
#endif
}

// Q5_1 weights as unsigned bytes in [0, 31].
static inline __m256i q5_1_weights(const pg_block_q5_1 *b) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes_32(b->qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_32(b->qs), hi);
}

// Q8_0 weights as they are.
static inline __m256i q8_0_weights(const pg_block_q8_0 *b) {
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

// ---- The Q8_0-paired formats (Q4_0, Q5_0, Q8_0): one float order for every kernel -----------
// Every kernel of these formats computes, for a weight row w and an activation row a,
//     acc = 0;  for each block b in order:  acc = fma((float)isum_b, d_w[b] * d_a[b], acc)
// where isum_b is the block's exact integer dot product. Decode (one row, or eight rows at a
// time), prefill (eight interleaved rows against many tokens) and the C twin all follow it, so
// they agree bit for bit whatever the batch and whatever the level. Because a block's sum is
// exact, eight weight rows can share one vector with a row per lane: the conversion, the scale
// product and the FMA are then paid once per eight rows, not once per row (llama.cpp's repacked
// layouts rest on the same observation).
#if PG_VNNI == 1
#define PG_DPBUSD(ACC, U, S) _mm256_dpbusd_avx_epi32(ACC, U, S)
#elif PG_VNNI == 2
#define PG_DPBUSD(ACC, U, S) _mm256_dpbusd_epi32(ACC, U, S)
#endif

// Signed weights of one block as 32 bytes in value order.
static inline __m256i q4_0_signed(const pg_block_q4_0 *b) { return _mm256_sub_epi8(nibbles_32(b->qs), _mm256_set1_epi8(8)); }
static inline __m256i q5_0_signed(const pg_block_q5_0 *b) { return _mm256_sub_epi8(q5_0_weights(b), _mm256_set1_epi8(16)); }

static inline float f16_at(const void *p) { return _mm_cvtss_f32(load_f16x2(p)); }

// The eight f16 values found at p, p + stride, ..., p + 7 * stride, as floats.
static inline __m256 f16x8_strided(const char *p, int64_t stride) {
    return _mm256_cvtph_ps(_mm_setr_epi16((short)pg_load_u16(p), (short)pg_load_u16(p + stride),
                                          (short)pg_load_u16(p + 2 * stride), (short)pg_load_u16(p + 3 * stride),
                                          (short)pg_load_u16(p + 4 * stride), (short)pg_load_u16(p + 5 * stride),
                                          (short)pg_load_u16(p + 6 * stride), (short)pg_load_u16(p + 7 * stride)));
}

// Eight vectors of int32 lane sums -> one vector whose lane r is the total of p_r's lanes.
static inline __m256i sum_lanes_8(__m256i p0, __m256i p1, __m256i p2, __m256i p3, __m256i p4, __m256i p5, __m256i p6,
                                  __m256i p7) {
    const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(p4, p5), _mm256_hadd_epi32(p6, p7));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20), _mm256_permute2x128_si256(h0123, h4567, 0x31));
}

// One weight row: the block sums reduced across lanes, then the scalar fold.
#define PG_DOT32_BLOCKWISE(NAME, WBLOCK, WEIGHTS, DOT)                                            \
    float NAME(int64_t n, const void *vw, const void *va) {                                       \
        const WBLOCK *w = (const WBLOCK *)vw;                                                      \
        const pg_block_q8_0 *a = (const pg_block_q8_0 *)va;                                        \
        const int64_t nb = n / PG_QK;                                                             \
        float acc = 0.0f;                                                                         \
        for (int64_t ib = 0; ib < nb; ib++) {                                                     \
            const int isum = hsum_i32x8(DOT(WEIGHTS(&w[ib]), _mm256_loadu_si256((const __m256i *)a[ib].qs))); \
            const float s = f16_at(&w[ib]) * f16_at(&a[ib]);                                      \
            acc = fmaf((float)isum, s, acc);                                                      \
        }                                                                                         \
        return acc;                                                                               \
    }

PG_DOT32_BLOCKWISE(PG_FN(pg_vec_dot_q4_0_q8_0), pg_block_q4_0, q4_0_weights, dot_q4_0)
PG_DOT32_BLOCKWISE(PG_FN(pg_vec_dot_q5_0_q8_0), pg_block_q5_0, q5_0_weights, dot_q5_0)
PG_DOT32_BLOCKWISE(PG_FN(pg_vec_dot_q8_0_q8_0), pg_block_q8_0, q8_0_weights, dot_i8_i8)

// Decode: eight weight rows (w_stride bytes apart) against one activation row, out[0..7]. Each
// row's lane sums are reduced across lanes per block, so lane r of the accumulator is row r.
// Eight rows read side by side are eight slow streams, which the hardware prefetchers follow
// worse than the one long stream of row-by-row decode, so the kernel prefetches the next eight
// rows (the caller's next call, usually) a few lines per block. The address is formed as an
// integer: past a matrix's last group it points beyond the matrix, which a prefetch may do.
#define PG_DOT8(NAME, WBLOCK, WEIGHTS, DOT)                                                       \
    void NAME(int64_t n, const void *vw, int64_t w_stride, const void *va, float *out) {          \
        const char *w = (const char *)vw;                                                         \
        const pg_block_q8_0 *a = (const pg_block_q8_0 *)va;                                        \
        const int64_t nb = n / PG_QK;                                                             \
        __m256 acc = _mm256_setzero_ps();                                                         \
        const uintptr_t next = (uintptr_t)w + (uintptr_t)(8 * w_stride);                          \
        const int64_t lines = (8 * w_stride + 63) / 64, per_block = nb > 0 ? (lines + nb - 1) / nb : 0; \
        for (int64_t ib = 0; ib < nb; ib++) {                                                     \
            const char *blk = w + ib * (int64_t)sizeof(WBLOCK);                                    \
            for (int64_t l = ib * per_block; l < (ib + 1) * per_block && l < lines; l++)          \
                _mm_prefetch((const char *)(next + 64 * (uintptr_t)l), _MM_HINT_T0);               \
            const __m256i av = _mm256_loadu_si256((const __m256i *)a[ib].qs);                     \
            const __m256i s = sum_lanes_8(                                                        \
                DOT(WEIGHTS((const WBLOCK *)blk), av), DOT(WEIGHTS((const WBLOCK *)(blk + w_stride)), av), \
                DOT(WEIGHTS((const WBLOCK *)(blk + 2 * w_stride)), av), DOT(WEIGHTS((const WBLOCK *)(blk + 3 * w_stride)), av), \
                DOT(WEIGHTS((const WBLOCK *)(blk + 4 * w_stride)), av), DOT(WEIGHTS((const WBLOCK *)(blk + 5 * w_stride)), av), \
                DOT(WEIGHTS((const WBLOCK *)(blk + 6 * w_stride)), av), DOT(WEIGHTS((const WBLOCK *)(blk + 7 * w_stride)), av)); \
            const __m256 sc = _mm256_mul_ps(f16x8_strided(blk, w_stride), _mm256_set1_ps(f16_at(&a[ib])));      \
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc);                                \
        }                                                                                         \
        _mm256_storeu_ps(out, acc);                                                               \
    }

PG_DOT8(PG_FN(pg_vec_dot8_q4_0_q8_0), pg_block_q4_0, q4_0_weights, dot_q4_0)
PG_DOT8(PG_FN(pg_vec_dot8_q5_0_q8_0), pg_block_q5_0, q5_0_weights, dot_q5_0)
PG_DOT8(PG_FN(pg_vec_dot8_q8_0_q8_0), pg_block_q8_0, q8_0_weights, dot_i8_i8)

// Prefill layout of eight weight rows, PG_PACK8_BYTES (ckernels.h) per block: 8 x 32 bytes where vector k
// holds values 4k..4k+3 of rows 0..7 (four bytes per row, row r in lane r); then eight int32
// corrections, -128 * (sum of row r's values in the block), which the VNNI levels start from
// because they read the activations biased to a + 128; then the eight rows' scales as floats.

// In place: q[r] holds dwords 0..7 of row r -> q[k] holds dword k of rows 0..7.
static inline void transpose_8x8_i32(__m256i q[8]) {
    const __m256i t0 = _mm256_unpacklo_epi32(q[0], q[1]), t1 = _mm256_unpackhi_epi32(q[0], q[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(q[2], q[3]), t3 = _mm256_unpackhi_epi32(q[2], q[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(q[4], q[5]), t5 = _mm256_unpackhi_epi32(q[4], q[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(q[6], q[7]), t7 = _mm256_unpackhi_epi32(q[6], q[7]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    q[0] = _mm256_permute2x128_si256(u0, u4, 0x20); q[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    q[1] = _mm256_permute2x128_si256(u1, u5, 0x20); q[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    q[2] = _mm256_permute2x128_si256(u2, u6, 0x20); q[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    q[3] = _mm256_permute2x128_si256(u3, u7, 0x20); q[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

// G groups of eight rows (G = 1, or 2 for the AVX-512 sixteen-row layout, where each 64-byte
// vector holds group 0's 32 bytes and then group 1's, so lane r of a zmm is row r).
#define PG_PACK_ROWS(NAME, WBLOCK, WEIGHTS, G)                                                   \
    void NAME(const void *vw, int64_t w_stride, int64_t nb, void *packed) {                       \
        const char *w = (const char *)vw;                                                         \
        uint8_t *o = (uint8_t *)packed;                                                           \
        const uintptr_t next = (uintptr_t)w + (uintptr_t)(8 * (G) * w_stride);                    \
        const int64_t lines = (8 * (G) * w_stride + 63) / 64, per_block = nb > 0 ? (lines + nb - 1) / nb : 0; \
        for (int64_t ib = 0; ib < nb; ib++) {                                                     \
            for (int64_t l = ib * per_block; l < (ib + 1) * per_block && l < lines; l++)          \
                _mm_prefetch((const char *)(next + 64 * (uintptr_t)l), _MM_HINT_T1);               \
            uint8_t *ob = o + PG_PACK8_BYTES * (G) * ib;                                          \
            for (int g = 0; g < (G); g++) {                                                       \
                const char *blk = w + ib * (int64_t)sizeof(WBLOCK) + 8 * g * w_stride;            \
                __m256i q[8];                                                                     \
                for (int r = 0; r < 8; r++) q[r] = WEIGHTS((const WBLOCK *)(blk + r * w_stride)); \
                transpose_8x8_i32(q);                                                             \
                __m256i c = _mm256_setzero_si256();                                               \
                for (int k = 0; k < 8; k++) {                                                     \
                    _mm256_storeu_si256((__m256i *)(ob + 32 * ((G) * k + g)), q[k]);              \
                    c = _mm256_add_epi32(c, PG_IDOT(_mm256_set1_epi8((char)0x80), q[k]));         \
                }                                                                                 \
                _mm256_storeu_si256((__m256i *)(ob + 256 * (G) + 32 * g), _mm256_sub_epi32(_mm256_setzero_si256(), c)); \
                _mm256_storeu_ps((float *)(ob + 288 * (G) + 32 * g), f16x8_strided(blk, w_stride)); \
            }                                                                                     \
        }                                                                                         \
    }

PG_PACK_ROWS(PG_FN(pg_pack8_q4_0), pg_block_q4_0, q4_0_signed, 1)
PG_PACK_ROWS(PG_FN(pg_pack8_q5_0), pg_block_q5_0, q5_0_signed, 1)
PG_PACK_ROWS(PG_FN(pg_pack8_q8_0), pg_block_q8_0, q8_0_weights, 1)
#if PG_VNNI == 2
PG_PACK_ROWS(PG_FN(pg_pack16_q4_0), pg_block_q4_0, q4_0_signed, 2)
PG_PACK_ROWS(PG_FN(pg_pack16_q5_0), pg_block_q5_0, q5_0_signed, 2)
PG_PACK_ROWS(PG_FN(pg_pack16_q8_0), pg_block_q8_0, q8_0_weights, 2)
#endif

// Eight packed weight rows against `tokens` activation rows: out[t * out_stride + r]. The VNNI
// levels read the activations biased (pg_q8_0_bias_rows: 32 bytes per block, a_stride bytes per
// row) and start each block's sum from the corrections, so one vpdpbusd per four values of
// eight rows gives the exact sums; the others read the Q8_0 rows themselves and multiply |w| by
// a with w's sign. Two partial sums per block shorten the dependency chains.
#if PG_VNNI
#define PG_ABLOCK(T, B) ((const uint8_t *)va + (T) * a_stride + 32 * (B))
#define PG_DPBUSD8(ACC, AB, PB, K)                                                                \
    ACC = PG_DPBUSD(ACC, _mm256_set1_epi32((int)pg_load_u32((AB) + 4 * (K))), _mm256_loadu_si256((const __m256i *)((PB) + 32 * (K))))
#define PG_BLOCK_SUM(S, AB, PB)                                                                   \
    __m256i S;                                                                                    \
    {                                                                                             \
        __m256i s0 = _mm256_loadu_si256((const __m256i *)((PB) + 256)), s1 = _mm256_setzero_si256(); \
        PG_DPBUSD8(s0, AB, PB, 0); PG_DPBUSD8(s1, AB, PB, 1);                                    \
        PG_DPBUSD8(s0, AB, PB, 2); PG_DPBUSD8(s1, AB, PB, 3);                                    \
        PG_DPBUSD8(s0, AB, PB, 4); PG_DPBUSD8(s1, AB, PB, 5);                                    \
        PG_DPBUSD8(s0, AB, PB, 6); PG_DPBUSD8(s1, AB, PB, 7);                                    \
        S = _mm256_add_epi32(s0, s1);                                                             \
    }
#else
#define PG_ABLOCK(T, B) ((const uint8_t *)va + (T) * a_stride + (int64_t)sizeof(pg_block_q8_0) * (B) + 2)
#define PG_SIGNED_STEP(ACC, AB, PB, K)                                                            \
    {                                                                                             \
        const __m256i wk = _mm256_loadu_si256((const __m256i *)((PB) + 32 * (K)));                \
        const __m256i ak = _mm256_set1_epi32((int)pg_load_u32((AB) + 4 * (K)));                 \
        ACC = _mm256_add_epi32(ACC, PG_IDOT(_mm256_sign_epi8(wk, wk), _mm256_sign_epi8(ak, wk))); \
    }
#define PG_BLOCK_SUM(S, AB, PB)                                                                   \
    __m256i S;                                                                                    \
    {                                                                                             \
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();                         \
        PG_SIGNED_STEP(s0, AB, PB, 0) PG_SIGNED_STEP(s1, AB, PB, 1)                               \
        PG_SIGNED_STEP(s0, AB, PB, 2) PG_SIGNED_STEP(s1, AB, PB, 3)                               \
        PG_SIGNED_STEP(s0, AB, PB, 4) PG_SIGNED_STEP(s1, AB, PB, 5)                               \
        PG_SIGNED_STEP(s0, AB, PB, 6) PG_SIGNED_STEP(s1, AB, PB, 7)                               \
        S = _mm256_add_epi32(s0, s1);                                                             \
    }
#endif

#define PG_TOKEN_STEP(ACC, T)                                                                     \
    {                                                                                             \
        PG_BLOCK_SUM(s, PG_ABLOCK(T, ib), pb)                                                     \
        ACC = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(scales[(T) * scale_stride + ib])), ACC); \
    }

// The token loop of the packed kernels, four tokens at a time and then one: VT is the vector
// type, GROUP_BYTES a block's packed bytes, DW(pb) loads its weight scales, STEP(acc, t) adds
// token t's block, STORE writes a token's results.
#define PG_PACKED_TOKENS(VT, ZERO, GROUP_BYTES, DW, STEP, STORE)                                  \
    const uint8_t *p = (const uint8_t *)packed;                                                   \
    int64_t t = 0;                                                                                \
    for (; t + 4 <= tokens; t += 4) {                                                             \
        VT acc0 = ZERO, acc1 = ZERO, acc2 = ZERO, acc3 = ZERO;                                    \
        for (int64_t ib = 0; ib < nb; ib++) {                                                     \
            const uint8_t *pb = p + (GROUP_BYTES) * ib;                                           \
            const VT dw = DW(pb);                                                                 \
            STEP(acc0, t) STEP(acc1, t + 1) STEP(acc2, t + 2) STEP(acc3, t + 3)                   \
        }                                                                                         \
        STORE(out + t * out_stride, acc0);                                                        \
        STORE(out + (t + 1) * out_stride, acc1);                                                  \
        STORE(out + (t + 2) * out_stride, acc2);                                                  \
        STORE(out + (t + 3) * out_stride, acc3);                                                  \
    }                                                                                             \
    for (; t < tokens; t++) {                                                                     \
        VT acc = ZERO;                                                                            \
        for (int64_t ib = 0; ib < nb; ib++) {                                                     \
            const uint8_t *pb = p + (GROUP_BYTES) * ib;                                           \
            const VT dw = DW(pb);                                                                 \
            STEP(acc, t)                                                                          \
        }                                                                                         \
        STORE(out + t * out_stride, acc);                                                         \
    }

#define PG_DW8(PB) _mm256_loadu_ps((const float *)((PB) + 288))

void PG_FN(pg_gemm8_q8_0)(int64_t nb, const void *packed, const void *va, int64_t a_stride, int64_t tokens,
                          const float *scales, int64_t scale_stride, float *out, int64_t out_stride) {
    PG_PACKED_TOKENS(__m256, _mm256_setzero_ps(), PG_PACK8_BYTES, PG_DW8, PG_TOKEN_STEP, _mm256_storeu_ps)
}

#if PG_VNNI == 2
// Sixteen packed rows (pg_pack16_*) in zmm registers: the same integer sums and the same float
// steps per lane as pg_gemm8_q8_0, so the same results, with each broadcast activation word
// serving sixteen rows.
#define PG_DPBUSD16(ACC, AB, PB, K)                                                               \
    _mm512_dpbusd_epi32(ACC, _mm512_set1_epi32((int)pg_load_u32((AB) + 4 * (K))), _mm512_loadu_si512((const void *)((PB) + 64 * (K))))
#define PG_TOKEN_STEP16(ACC, T)                                                                   \
    {                                                                                             \
        const uint8_t *ab = PG_ABLOCK(T, ib);                                                     \
        __m512i s0 = _mm512_loadu_si512((const void *)(pb + 512)), s1 = _mm512_setzero_si512();   \
        s0 = PG_DPBUSD16(s0, ab, pb, 0); s1 = PG_DPBUSD16(s1, ab, pb, 1);                         \
        s0 = PG_DPBUSD16(s0, ab, pb, 2); s1 = PG_DPBUSD16(s1, ab, pb, 3);                         \
        s0 = PG_DPBUSD16(s0, ab, pb, 4); s1 = PG_DPBUSD16(s1, ab, pb, 5);                         \
        s0 = PG_DPBUSD16(s0, ab, pb, 6); s1 = PG_DPBUSD16(s1, ab, pb, 7);                         \
        ACC = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)),                       \
                              _mm512_mul_ps(dw, _mm512_set1_ps(scales[(T) * scale_stride + ib])), ACC); \
    }

#define PG_DW16(PB) _mm512_loadu_ps((const float *)((PB) + 576))

void PG_FN(pg_gemm16_q8_0)(int64_t nb, const void *packed, const void *va, int64_t a_stride, int64_t tokens,
                           const float *scales, int64_t scale_stride, float *out, int64_t out_stride) {
    PG_PACKED_TOKENS(__m512, _mm512_setzero_ps(), 2 * PG_PACK8_BYTES, PG_DW16, PG_TOKEN_STEP16, _mm512_storeu_ps)
}
#undef PG_TOKEN_STEP16
#undef PG_DW16
#undef PG_DPBUSD16
#endif

#undef PG_TOKEN_STEP
#undef PG_PACKED_TOKENS
#undef PG_DW8
#undef PG_BLOCK_SUM
#undef PG_ABLOCK
#ifdef PG_SIGNED_STEP
#undef PG_SIGNED_STEP
#endif
#ifdef PG_DPBUSD8
#undef PG_DPBUSD8
#endif

#if PG_VNNI
// Q8_0 activation rows as unsigned bytes a + 128, 32 per block with no scale between, for the
// VNNI levels' pg_gemm8_q8_0.
void PG_FN(pg_q8_0_bias_rows)(const void *va, int64_t a_stride, int64_t rows, int64_t n, void *out) {
    const int64_t nb = n / PG_QK;
    uint8_t *o = (uint8_t *)out;
    for (int64_t t = 0; t < rows; t++) {
        const pg_block_q8_0 *a = (const pg_block_q8_0 *)((const char *)va + t * a_stride);
        for (int64_t b = 0; b < nb; b++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)a[b].qs);
            _mm256_storeu_si256((__m256i *)(o + 32 * (t * nb + b)), _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)));
        }
    }
}
#endif
PG_DOT32_WITH_MIN(PG_FN(pg_vec_dot_q4_1_q8_1), pg_block_q4_1, q4_1_weights)
PG_DOT32_WITH_MIN(PG_FN(pg_vec_dot_q5_1_q8_1), pg_block_q5_1, q5_1_weights)

// ---- Four activation rows per weight row (prefill), the formats with a min -------------------

#define PG_FOUR_ROWS(ABLOCK)                                                                      \
    const ABLOCK *a0 = (const ABLOCK *)va;                                                        \
    const ABLOCK *a1 = (const ABLOCK *)((const char *)va + a_stride);                             \
    const ABLOCK *a2 = (const ABLOCK *)((const char *)va + 2 * a_stride);                         \
    const ABLOCK *a3 = (const ABLOCK *)((const char *)va + 3 * a_stride)


// The same for the formats with a min (Q4_1, Q5_1, paired with Q8_1): the row unpacks into its
// unsigned values (32 bytes per block) and (d, m) float pairs, the activations' (d, s) pairs come
// as floats, and a block's [d_w*d_a, m_w*s_a] is the product block_scale_min forms.
#define PG_UNPACK_UNSIGNED(NAME, WBLOCK, WEIGHTS)                                                 \
    void NAME(const void *vw, int64_t nb, void *unpacked, float *wdm) {                           \
        const WBLOCK *w = (const WBLOCK *)vw;                                                      \
        uint8_t *o = (uint8_t *)unpacked;                                                         \
        for (int64_t ib = 0; ib < nb; ib++) {                                                     \
            _mm256_storeu_si256((__m256i *)(o + 32 * ib), WEIGHTS(&w[ib]));                       \
            _mm_storel_pi((__m64 *)(wdm + 2 * ib), load_f16x2(&w[ib]));                           \
        }                                                                                         \
    }

PG_UNPACK_UNSIGNED(PG_FN(pg_unpack_q4_1), pg_block_q4_1, q4_1_weights)
PG_UNPACK_UNSIGNED(PG_FN(pg_unpack_q5_1), pg_block_q5_1, q5_1_weights)

void PG_FN(pg_q8_1_row_scales)(const void *va, int64_t a_stride, int64_t rows, int64_t n, float *ds) {
    const int64_t nb = n / PG_QK;
    for (int64_t t = 0; t < rows; t++) {
        const pg_block_q8_1 *a = (const pg_block_q8_1 *)((const char *)va + t * a_stride);
        for (int64_t b = 0; b < nb; b++) _mm_storel_pi((__m64 *)(ds + 2 * (t * nb + b)), load_f16x2(&a[b]));
    }
}

static inline __m128 load_f32x2(const float *p) { return _mm_castpd_ps(_mm_load_sd((const double *)p)); }

#define PG_ROW_STEP_MIN_U(ACC, SM, A, IB, Q, WDM, T)                                        \
    const __m128 SM = _mm_mul_ps(WDM, load_f32x2(ds + 2 * ((T) * ds_stride + (IB))));            \
    ACC = _mm256_fmadd_ps(_mm256_broadcastss_ps(SM),                                              \
                          _mm256_cvtepi32_ps(PG_IDOT(Q, _mm256_loadu_si256((const __m256i *)A[IB].qs))), ACC)

#define PG_DOT4U_MIN(NAME)                                                                        \
    void NAME(int64_t nb, const void *unpacked, const float *wdm, const void *va, int64_t a_stride, \
                   const float *ds, int64_t ds_stride, float *out) {                              \
        const uint8_t *wq = (const uint8_t *)unpacked;                                            \
        PG_FOUR_ROWS(pg_block_q8_1);                                                              \
        __m256 e0 = _mm256_setzero_ps(), e1 = _mm256_setzero_ps(), e2 = _mm256_setzero_ps(), e3 = _mm256_setzero_ps(); \
        __m256 o0 = _mm256_setzero_ps(), o1 = _mm256_setzero_ps(), o2 = _mm256_setzero_ps(), o3 = _mm256_setzero_ps(); \
        __m128 m0 = _mm_setzero_ps(), m1 = _mm_setzero_ps(), m2 = _mm_setzero_ps(), m3 = _mm_setzero_ps(); \
        int64_t ib = 0;                                                                           \
        for (; ib + 1 < nb; ib += 2) {                                                            \
            const __m256i q0 = _mm256_loadu_si256((const __m256i *)(wq + 32 * ib));               \
            const __m256i q1 = _mm256_loadu_si256((const __m256i *)(wq + 32 * (ib + 1)));         \
            const __m128 w0 = load_f32x2(wdm + 2 * ib), w1 = load_f32x2(wdm + 2 * (ib + 1));      \
            { PG_ROW_STEP_MIN_U(e0, s0, a0, ib, q0, w0, 0); PG_ROW_STEP_MIN_U(o0, s1, a0, ib + 1, q1, w1, 0); m0 = _mm_add_ps(m0, _mm_add_ps(s0, s1)); } \
            { PG_ROW_STEP_MIN_U(e1, s0, a1, ib, q0, w0, 1); PG_ROW_STEP_MIN_U(o1, s1, a1, ib + 1, q1, w1, 1); m1 = _mm_add_ps(m1, _mm_add_ps(s0, s1)); } \
            { PG_ROW_STEP_MIN_U(e2, s0, a2, ib, q0, w0, 2); PG_ROW_STEP_MIN_U(o2, s1, a2, ib + 1, q1, w1, 2); m2 = _mm_add_ps(m2, _mm_add_ps(s0, s1)); } \
            { PG_ROW_STEP_MIN_U(e3, s0, a3, ib, q0, w0, 3); PG_ROW_STEP_MIN_U(o3, s1, a3, ib + 1, q1, w1, 3); m3 = _mm_add_ps(m3, _mm_add_ps(s0, s1)); } \
        }                                                                                         \
        if (ib < nb) {                                                                            \
            const __m256i q0 = _mm256_loadu_si256((const __m256i *)(wq + 32 * ib));               \
            const __m128 w0 = load_f32x2(wdm + 2 * ib);                                           \
            { PG_ROW_STEP_MIN_U(e0, s0, a0, ib, q0, w0, 0); m0 = _mm_add_ps(m0, s0); }      \
            { PG_ROW_STEP_MIN_U(e1, s0, a1, ib, q0, w0, 1); m1 = _mm_add_ps(m1, s0); }      \
            { PG_ROW_STEP_MIN_U(e2, s0, a2, ib, q0, w0, 2); m2 = _mm_add_ps(m2, s0); }      \
            { PG_ROW_STEP_MIN_U(e3, s0, a3, ib, q0, w0, 3); m3 = _mm_add_ps(m3, s0); }      \
        }                                                                                         \
        out[0] = hsum_f32x8(_mm256_add_ps(e0, o0)) + _mm_cvtss_f32(_mm_movehdup_ps(m0));          \
        out[1] = hsum_f32x8(_mm256_add_ps(e1, o1)) + _mm_cvtss_f32(_mm_movehdup_ps(m1));          \
        out[2] = hsum_f32x8(_mm256_add_ps(e2, o2)) + _mm_cvtss_f32(_mm_movehdup_ps(m2));          \
        out[3] = hsum_f32x8(_mm256_add_ps(e3, o3)) + _mm_cvtss_f32(_mm_movehdup_ps(m3));          \
    }

PG_DOT4U_MIN(PG_FN(pg_vec_dot4u_u8_q8_1))

void PG_FN(pg_q8_0_row_scales)(const void *va, int64_t a_stride, int64_t rows, int64_t n, float *scales) {
    const int64_t nb = n / PG_QK;
    for (int64_t t = 0; t < rows; t++) {
        const pg_block_q8_0 *a = (const pg_block_q8_0 *)((const char *)va + t * a_stride);
        for (int64_t b = 0; b < nb; b++) scales[t * nb + b] = _mm_cvtss_f32(load_f16x2(&a[b]));
    }
}

#ifdef PG_DPBUSD
#undef PG_DPBUSD
#endif
#undef PG_UNPACK_UNSIGNED
#undef PG_DOT4U_MIN
#undef PG_ROW_STEP_MIN_U
#undef PG_FOUR_ROWS
#undef PG_DOT32_WITH_MIN
#undef PG_IDOT
#undef PG_STEP_MIN
#undef PG_DOT32_BLOCKWISE
#undef PG_DOT8
#undef PG_PACK_ROWS

// ---- K-quants -------------------------------------------------------------------------------

// Unpack the 12 scale bytes of Q4_K/Q5_K into 8 six-bit scales and 8 six-bit mins (one byte
// each, sub-block order), four at a time with 32-bit lane arithmetic.
static inline void unpack_scales_mins_k4(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t s0, s1, s2;
    memcpy(&s0, q, 4);
    memcpy(&s1, q + 4, 4);
    memcpy(&s2, q + 8, 4);
    const uint32_t sc_lo = s0 & 0x3F3F3F3Fu;
    const uint32_t mn_lo = s1 & 0x3F3F3F3Fu;
    const uint32_t sc_hi = (s2 & 0x0F0F0F0Fu) | (((s0 >> 6) & 0x03030303u) << 4);
    const uint32_t mn_hi = ((s2 >> 4) & 0x0F0F0F0Fu) | (((s1 >> 6) & 0x03030303u) << 4);
    memcpy(sc, &sc_lo, 4);
    memcpy(sc + 4, &sc_hi, 4);
    memcpy(mn, &mn_lo, 4);
    memcpy(mn + 4, &mn_hi, 4);
}

// The 8 scales as int16, repeated in both 128-bit lanes, and a shuffle that broadcasts scale j.
static inline __m256i k4_scales16(const uint8_t sc[8]) {
    return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
}
static inline __m256i k4_pick(__m256i scales16, int j) {
    return _mm256_shuffle_epi8(scales16, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

// Sum over the 8 sub-blocks of mins[j] * (bsums[2j] + bsums[2j+1]), as 4 int32 lanes.
static inline __m128i k4_min_products(const uint8_t mn[8], const pg_block_q8_K *a) {
    const uint8_t *bsums = (const uint8_t *)a + offsetof(pg_block_q8_K, bsums);
    const __m128i b_lo = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i b_hi = _mm_loadu_si128((const __m128i *)(bsums + 16));
    const __m128i pairs = _mm_hadd_epi16(b_lo, b_hi);  // |pair| <= 2*16*127, fits int16
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
    return _mm_madd_epi16(m16, pairs);
}

float PG_FN(pg_vec_dot_q4_K_q8_K)(int64_t n, const void *vw, const void *va) {
    const pg_block_q4_K *w = (const pg_block_q4_K *)vw;
    const pg_block_q8_K *a = (const pg_block_q8_K *)va;
    const int64_t nb = n / PG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        // [d_w * d_a, dmin_w * d_a] in lanes 0 and 1.
        const __m128 dd = _mm_mul_ps(load_f16x2(&w[ib].d), _mm_set1_ps(a[ib].d));
        uint8_t sc[8], mn[8];
        unpack_scales_mins_k4(w[ib].scales, sc, mn);
        const __m256i scales16 = k4_scales16(sc);

        const __m128i mins = k4_min_products(mn, &a[ib]);
        acc_m = _mm_fnmadd_ps(_mm_permute_ps(dd, 0x55), _mm_cvtepi32_ps(mins), acc_m);  // -= dmin * mins

        const uint8_t *q = w[ib].qs;
        const int8_t *aq = a[ib].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
            const __m256i lo = _mm256_and_si256(q4, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(aq + 64 * c)));
            const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(aq + 64 * c + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_lo, k4_pick(scales16, 2 * c)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_hi, k4_pick(scales16, 2 * c + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc) + hsum_f32x4(acc_m);
}

float PG_FN(pg_vec_dot_q5_K_q8_K)(int64_t n, const void *vw, const void *va) {
    const pg_block_q5_K *w = (const pg_block_q5_K *)vw;
    const pg_block_q8_K *a = (const pg_block_q8_K *)va;
    const int64_t nb = n / PG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        // [d_w * d_a, dmin_w * d_a] in lanes 0 and 1.
        const __m128 dd = _mm_mul_ps(load_f16x2(&w[ib].d), _mm_set1_ps(a[ib].d));
        uint8_t sc[8], mn[8];
        unpack_scales_mins_k4(w[ib].scales, sc, mn);
        const __m256i scales16 = k4_scales16(sc);

        const __m128i mins = k4_min_products(mn, &a[ib]);
        acc_m = _mm_fnmadd_ps(_mm_permute_ps(dd, 0x55), _mm_cvtepi32_ps(mins), acc_m);  // -= dmin * mins

        const uint8_t *q = w[ib].qs;
        const int8_t *aq = a[ib].qs;
        // Chunk c takes its fifth bits from bits 2c (low nibbles) and 2c+1 (high nibbles) of qh;
        // hb is shifted right by 2 per chunk so those are always bits 0 and 1 of each byte. The
        // 16-bit shifts leak bits across bytes only into positions >= 2, which are never used.
        __m256i hb = _mm256_loadu_si256((const __m256i *)w[ib].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
            hb = _mm256_srli_epi16(hb, 2);
            const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(aq + 64 * c)));
            const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(aq + 64 * c + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_lo, k4_pick(scales16, 2 * c)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_hi, k4_pick(scales16, 2 * c + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc) + hsum_f32x4(acc_m);
}

float PG_FN(pg_vec_dot_q6_K_q8_K)(int64_t n, const void *vw, const void *va) {
    const pg_block_q6_K *w = (const pg_block_q6_K *)vw;
    const pg_block_q8_K *a = (const pg_block_q8_K *)va;
    const int64_t nb = n / PG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const __m256i m2s2 = _mm256_set1_epi8(0x0C);
    const __m256i m2s4 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        uint16_t dh;
        memcpy(&dh, &w[ib].d, 2);
        const __m256 d = _mm256_broadcastss_ps(_mm_mul_ss(_mm_cvtph_ps(_mm_cvtsi32_si128(dh)), _mm_set_ss(a[ib].d)));
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)w[ib].scales);
        // Weights are stored as q+32 in [0, 63]; the -32 is applied once per super-block through
        // the activation block sums: sum_g S[g] * 32 * bsums[g].
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)((const uint8_t *)&a[ib] + offsetof(pg_block_q8_K, bsums)));
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));

        const int8_t *aq = a[ib].qs;
        for (int h = 0; h < 2; h++) {
            const __m256i L0 = _mm256_loadu_si256((const __m256i *)(w[ib].ql + 64 * h));
            const __m256i L1 = _mm256_loadu_si256((const __m256i *)(w[ib].ql + 64 * h + 32));
            const __m256i H = _mm256_loadu_si256((const __m256i *)(w[ib].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(L0, m4), _mm256_slli_epi16(_mm256_and_si256(H, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(L1, m4), _mm256_slli_epi16(_mm256_and_si256(H, m2s2), 2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), m4), _mm256_and_si256(H, m2s4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(H, 2), m2s4));
            for (int k = 0; k < 4; k++) {
                // 32 values starting at 128h + 32k use scales t = 8h + 2k (first 16) and t + 1.
                const long long t = 8 * h + 2 * k;
                const __m128i sel = _mm_set_epi64x((t + 1) * 0x0101010101010101LL, t * 0x0101010101010101LL);
                const __m256i scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, sel));
                const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(aq + 128 * h + 32 * k)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
            }
        }
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc);
}

// ---- K-quants, several activation rows per weight row (prefill) ------------------------------
//
// Each weight super-block is unpacked once (nibbles, fifth/sixth bits, scales, mins) and then
// multiplied into every activation row. Per row, the float work is exactly that of the single-row
// kernel (same accumulators, same operations in the same order), so results are bit-identical;
// only the exact integer sums are shared. R is a compile-time constant in each instantiation so
// the per-row arrays live in registers.

#define PG_ALWAYS_INLINE static inline __attribute__((always_inline))

// The min terms of Q4_K/Q5_K for R rows: acc_m[r] ends as the single-row kernel's acc_m for row r.
// Rows go in pairs through one 256-bit accumulator. For each row the integer lane values equal
// those of k4_min_products (mins[j] * (bsums[2j] + bsums[2j+1]) summed in pairs of j, exact), the
// scale is the same product dmin_w * d_a, and each lane sees the same fnmadd sequence; only the
// lanes' positions differ: [r0 k0, r0 k1, r1 k0, r1 k1 | r0 k2, r0 k3, r1 k2, r1 k3].
// (The blocks' d and dmin sit at offset 0, scales at scales_off, blocks are block_size apart.)
PG_ALWAYS_INLINE void k4_min_terms_rows(int64_t nb, size_t scales_off, size_t block_size, const uint8_t *wb,
                                        const pg_block_q8_K *const *a, const int R, __m128 *acc_m) {
    __m256 accp[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *blk = wb + ib * block_size;
        uint8_t sc[8], mn[8];
        unpack_scales_mins_k4(blk + scales_off, sc, mn);
        const __m128i mn8 = _mm_loadl_epi64((const __m128i *)mn);
        const __m256i mdup = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));  // mins[j] twice
        const __m256 dmin = _mm256_broadcastss_ps(_mm_permute_ps(load_f16x2(blk), 0x55));
        for (int p = 0; 2 * p < R; p++) {
            const pg_block_q8_K *a0 = &a[2 * p][ib];
            const pg_block_q8_K *a1 = 2 * p + 1 < R ? &a[2 * p + 1][ib] : a0;
            const __m256i t0 = _mm256_madd_epi16(
                _mm256_loadu_si256((const __m256i *)((const uint8_t *)a0 + offsetof(pg_block_q8_K, bsums))), mdup);
            const __m256i t1 = _mm256_madd_epi16(
                _mm256_loadu_si256((const __m256i *)((const uint8_t *)a1 + offsetof(pg_block_q8_K, bsums))), mdup);
            const __m256 dm = _mm256_blend_ps(_mm256_mul_ps(dmin, _mm256_set1_ps(a0->d)),
                                              _mm256_mul_ps(dmin, _mm256_set1_ps(a1->d)), 0xCC);
            accp[p] = _mm256_fnmadd_ps(dm, _mm256_cvtepi32_ps(_mm256_hadd_epi32(t0, t1)), accp[p]);
        }
    }
    for (int p = 0; 2 * p < R; p++) {
        const __m128 lo = _mm256_castps256_ps128(accp[p]);
        const __m128 hi = _mm256_extractf128_ps(accp[p], 1);
        acc_m[2 * p] = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
        if (2 * p + 1 < R) acc_m[2 * p + 1] = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));
    }
}

PG_ALWAYS_INLINE void dot4_q4_K_rows(int64_t n, const pg_block_q4_K *w, const uint8_t *va,
                                     int64_t a_stride, const int R, float *out) {
    const int64_t nb = n / PG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const pg_block_q8_K *a[4];
    __m256 acc[4];
    __m128 acc_m[4];
    for (int r = 0; r < R; r++) {
        a[r] = (const pg_block_q8_K *)(va + r * a_stride);
        acc[r] = _mm256_setzero_ps();
    }
    k4_min_terms_rows(nb, offsetof(pg_block_q4_K, scales), sizeof(pg_block_q4_K), (const uint8_t *)w, a, R, acc_m);
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m128 wd = load_f16x2(&w[ib].d);
        uint8_t sc[8], mn[8];
        unpack_scales_mins_k4(w[ib].scales, sc, mn);
        const __m256i scales16 = k4_scales16(sc);
        __m256i sumi[4];
        for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
        const uint8_t *q = w[ib].qs;
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
            const __m256i lo = _mm256_and_si256(q4, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            const __m256i s_lo = k4_pick(scales16, 2 * c);
            const __m256i s_hi = k4_pick(scales16, 2 * c + 1);
            for (int r = 0; r < R; r++) {
                const int8_t *aq = a[r][ib].qs;
                const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(aq + 64 * c)));
                const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(aq + 64 * c + 32)));
                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(_mm256_madd_epi16(p_lo, s_lo),
                                                                     _mm256_madd_epi16(p_hi, s_hi)));
            }
        }
        for (int r = 0; r < R; r++) {
            const __m128 dd = _mm_mul_ps(wd, _mm_set1_ps(a[r][ib].d));
            acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum_f32x8(acc[r]) + hsum_f32x4(acc_m[r]);
}

void PG_FN(pg_vec_dot4_q4_K_q8_K)(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out) {
    switch (count) {
    case 1: out[0] = PG_FN(pg_vec_dot_q4_K_q8_K)(n, w, a); break;
    case 2: dot4_q4_K_rows(n, (const pg_block_q4_K *)w, (const uint8_t *)a, a_stride, 2, out); break;
    case 3: dot4_q4_K_rows(n, (const pg_block_q4_K *)w, (const uint8_t *)a, a_stride, 3, out); break;
    default: dot4_q4_K_rows(n, (const pg_block_q4_K *)w, (const uint8_t *)a, a_stride, 4, out); break;
    }
}

PG_ALWAYS_INLINE void dot4_q5_K_rows(int64_t n, const pg_block_q5_K *w, const uint8_t *va,
                                     int64_t a_stride, const int R, float *out) {
    const int64_t nb = n / PG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    const pg_block_q8_K *a[4];
    __m256 acc[4];
    __m128 acc_m[4];
    for (int r = 0; r < R; r++) {
        a[r] = (const pg_block_q8_K *)(va + r * a_stride);
        acc[r] = _mm256_setzero_ps();
    }
    k4_min_terms_rows(nb, offsetof(pg_block_q5_K, scales), sizeof(pg_block_q5_K), (const uint8_t *)w, a, R, acc_m);
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m128 wd = load_f16x2(&w[ib].d);
        uint8_t sc[8], mn[8];
        unpack_scales_mins_k4(w[ib].scales, sc, mn);
        const __m256i scales16 = k4_scales16(sc);
        __m256i sumi[4];
        for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
        const uint8_t *q = w[ib].qs;
        // Fifth bits as in the single-row kernel: bits 0 and 1 of each hb byte serve chunk c.
        __m256i hb = _mm256_loadu_si256((const __m256i *)w[ib].qh);
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
            hb = _mm256_srli_epi16(hb, 2);
            const __m256i s_lo = k4_pick(scales16, 2 * c);
            const __m256i s_hi = k4_pick(scales16, 2 * c + 1);
            for (int r = 0; r < R; r++) {
                const int8_t *aq = a[r][ib].qs;
                const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(aq + 64 * c)));
                const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(aq + 64 * c + 32)));
                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(_mm256_madd_epi16(p_lo, s_lo),
                                                                     _mm256_madd_epi16(p_hi, s_hi)));
            }
        }
        for (int r = 0; r < R; r++) {
            const __m128 dd = _mm_mul_ps(wd, _mm_set1_ps(a[r][ib].d));
            acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum_f32x8(acc[r]) + hsum_f32x4(acc_m[r]);
}

void PG_FN(pg_vec_dot4_q5_K_q8_K)(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out) {
    switch (count) {
    case 1: out[0] = PG_FN(pg_vec_dot_q5_K_q8_K)(n, w, a); break;
    case 2: dot4_q5_K_rows(n, (const pg_block_q5_K *)w, (const uint8_t *)a, a_stride, 2, out); break;
    case 3: dot4_q5_K_rows(n, (const pg_block_q5_K *)w, (const uint8_t *)a, a_stride, 3, out); break;
    default: dot4_q5_K_rows(n, (const pg_block_q5_K *)w, (const uint8_t *)a, a_stride, 4, out); break;
    }
}

PG_ALWAYS_INLINE void dot4_q6_K_rows(int64_t n, const pg_block_q6_K *w, const uint8_t *va,
                                     int64_t a_stride, const int R, float *out) {
    const int64_t nb = n / PG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const __m256i m2s2 = _mm256_set1_epi8(0x0C);
    const __m256i m2s4 = _mm256_set1_epi8(0x30);
    const pg_block_q8_K *a[4];
    __m256 acc[4];
    for (int r = 0; r < R; r++) {
        a[r] = (const pg_block_q8_K *)(va + r * a_stride);
        acc[r] = _mm256_setzero_ps();
    }
    for (int64_t ib = 0; ib < nb; ib++) {
        uint16_t dh;
        memcpy(&dh, &w[ib].d, 2);
        const __m128 wd = _mm_cvtph_ps(_mm_cvtsi32_si128(dh));
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)w[ib].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m256i sumi[4];
        for (int r = 0; r < R; r++) {
            // The -32 offset of the stored weights, through the activation block sums.
            const __m256i bs = _mm256_loadu_si256(
                (const __m256i *)((const uint8_t *)&a[r][ib] + offsetof(pg_block_q8_K, bsums)));
            sumi[r] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
        }
        for (int h = 0; h < 2; h++) {
            const __m256i L0 = _mm256_loadu_si256((const __m256i *)(w[ib].ql + 64 * h));
            const __m256i L1 = _mm256_loadu_si256((const __m256i *)(w[ib].ql + 64 * h + 32));
            const __m256i H = _mm256_loadu_si256((const __m256i *)(w[ib].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(L0, m4), _mm256_slli_epi16(_mm256_and_si256(H, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(L1, m4), _mm256_slli_epi16(_mm256_and_si256(H, m2s2), 2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), m4), _mm256_and_si256(H, m2s4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(H, 2), m2s4));
            for (int k = 0; k < 4; k++) {
                const long long t = 8 * h + 2 * k;
                const __m128i sel = _mm_set_epi64x((t + 1) * 0x0101010101010101LL, t * 0x0101010101010101LL);
                const __m256i scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, sel));
                for (int r = 0; r < R; r++) {
                    const int8_t *aq = a[r][ib].qs;
                    const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(aq + 128 * h + 32 * k)));
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
                }
            }
        }
        for (int r = 0; r < R; r++) {
            const __m256 d = _mm256_broadcastss_ps(_mm_mul_ss(wd, _mm_set_ss(a[r][ib].d)));
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum_f32x8(acc[r]);
}

void PG_FN(pg_vec_dot4_q6_K_q8_K)(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out) {
    switch (count) {
    case 1: out[0] = PG_FN(pg_vec_dot_q6_K_q8_K)(n, w, a); break;
    case 2: dot4_q6_K_rows(n, (const pg_block_q6_K *)w, (const uint8_t *)a, a_stride, 2, out); break;
    case 3: dot4_q6_K_rows(n, (const pg_block_q6_K *)w, (const uint8_t *)a, a_stride, 3, out); break;
    default: dot4_q6_K_rows(n, (const pg_block_q6_K *)w, (const uint8_t *)a, a_stride, 4, out); break;
    }
}

#undef PG_ALWAYS_INLINE
