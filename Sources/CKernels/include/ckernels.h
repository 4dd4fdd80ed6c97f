// Innermost SIMD kernels for PanGalactic (AVX2/FMA/F16C), each with a plain scalar `_ref` twin.
// Layouts follow ggml's block formats exactly (see docs/architecture.md, "Kernels"). All functions take byte
// pointers to contiguous blocks; `n` is the number of logical values and must be a multiple of
// the format's block size (32, or 256 for K-quants). Callers validate shapes before calling.
#ifndef PANGALACTIC_CKERNELS_H
#define PANGALACTIC_CKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- Activation quantizers: f32 row -> partner format of the weights --------------------------
// Q8_0: { f16 d; i8 qs[32] }            34 bytes per 32 values, d = amax/127.
// Q8_1: { f16 d; f16 s; i8 qs[32] }     36 bytes per 32 values, s = d * sum(qs).
// Q8_K: { f32 d; i8 qs[256]; i16 bsums[16] } 292 bytes per 256 values.
void pg_quantize_row_q8_0(const float *x, void *y, int64_t n);
void pg_quantize_row_q8_1(const float *x, void *y, int64_t n);
void pg_quantize_row_q8_K(const float *x, void *y, int64_t n);
void pg_quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void pg_quantize_row_q8_1_ref(const float *x, void *y, int64_t n);
void pg_quantize_row_q8_K_ref(const float *x, void *y, int64_t n);

// ---- Dot products: one quantized weight row with one quantized activation row -----------------
float pg_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a);
float pg_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a);
float pg_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);
float pg_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a);
float pg_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a);

float pg_vec_dot_q4_0_q8_0_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q4_1_q8_1_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_0_q8_0_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_1_q8_1_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q8_0_q8_0_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q4_K_q8_K_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_K_q8_K_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q6_K_q8_K_ref(int64_t n, const void *w, const void *a);

// ---- Several activation rows per weight row (prefill) ------------------------------------------
// The K-quants: out[i] = pg_vec_dot_<w>_<a>(n, w, a + i * a_stride) for 0 <= i < count,
// 1 <= count <= 4, equal bit for bit to the single-row kernel, but each weight block is unpacked
// once for all rows. (The 32-wide formats unpack a whole row once instead: pg_unpack_* below.)
void pg_vec_dot4_q4_K_q8_K(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out);
void pg_vec_dot4_q5_K_q8_K(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out);
void pg_vec_dot4_q6_K_q8_K(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out);

// Prefill for the Q8_0-paired formats (Q4_0, Q5_0, Q8_0): a weight row of nb blocks unpacked
// once into `unpacked` (64 bytes per block: 32 signed values, then their absolute values) and
// `wd` (each block's scale as a float), for many activation rows to meet.
void pg_unpack_q4_0_signed(const void *w, int64_t nb, void *unpacked, float *wd);
void pg_unpack_q5_0_signed(const void *w, int64_t nb, void *unpacked, float *wd);
void pg_unpack_q8_0_signed(const void *w, int64_t nb, void *unpacked, float *wd);
// Four Q8_0 activation rows (a_stride bytes apart) against an unpacked weight row, reading each
// activation block's scale as a float (scales[t * scale_stride + b] = d of block b of row t).
// Bit-identical to the single-row kernels. The _vnni twin uses AVX-VNNI and gives the same
// results; call it only where pg_cpu_has_avx_vnni().
void pg_vec_dot4u_i8_q8_0(int64_t nb, const void *unpacked, const float *wd, const void *a, int64_t a_stride,
                          const float *scales, int64_t scale_stride, float *out);
void pg_vec_dot4u_i8_q8_0_vnni(int64_t nb, const void *unpacked, const float *wd, const void *a, int64_t a_stride,
                               const float *scales, int64_t scale_stride, float *out);
// The same for the formats with a min (Q4_1, Q5_1) and Q8_1 activations: the weight row unpacks
// into unsigned values (32 bytes per block) and (d, m) float pairs `wdm`; the activations' (d, s)
// come as float pairs from pg_q8_1_row_scales (ds[2 * (t * ds_stride + b)]).
void pg_unpack_q4_1(const void *w, int64_t nb, void *unpacked, float *wdm);
void pg_unpack_q5_1(const void *w, int64_t nb, void *unpacked, float *wdm);
void pg_q8_1_row_scales(const void *a, int64_t a_stride, int64_t rows, int64_t n, float *ds);
void pg_vec_dot4u_u8_q8_1(int64_t nb, const void *unpacked, const float *wdm, const void *a, int64_t a_stride,
                          const float *ds, int64_t ds_stride, float *out);
void pg_vec_dot4u_u8_q8_1_vnni(int64_t nb, const void *unpacked, const float *wdm, const void *a, int64_t a_stride,
                               const float *ds, int64_t ds_stride, float *out);
// Whether this CPU has AVX-VNNI (the VEX-encoded int8 dot products).
int pg_cpu_has_avx_vnni(void);
// The float scales of `rows` Q8_0 activation rows of n values, `a_stride` bytes apart.
void pg_q8_0_row_scales(const void *a, int64_t a_stride, int64_t rows, int64_t n, float *scales);

// ---- Float weights against f32 activations --------------------------------------------------
// n is any count (no block constraint).
float pg_vec_dot_f32_f32(int64_t n, const float *w, const float *a);
float pg_vec_dot_f16_f32(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_bf16_f32(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_f32_f32_ref(int64_t n, const float *w, const float *a);
float pg_vec_dot_f16_f32_ref(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_bf16_f32_ref(int64_t n, const uint16_t *w, const float *a);

// ---- Small float helpers used by attention and norms ------------------------------------------
// y[i] += a * x[i]
void pg_axpy_f32(int64_t n, float a, const float *x, float *y);
// IEEE half <-> float for whole rows (F16C).
void pg_f16_to_f32_row(const uint16_t *x, float *y, int64_t n);
void pg_f32_to_f16_row(const float *x, uint16_t *y, int64_t n);

// ---- Additions: scalar twins of the helpers above and portable half conversions ---------------
// The _ref conversions are plain C (no F16C): exact, round-to-nearest-even, and handle
// subnormals, infinities and NaN (NaN payloads are truncated/quieted; only NaN-ness is promised).
// pg_axpy_f32_ref uses fmaf, so it matches pg_axpy_f32 bit for bit.
void pg_axpy_f32_ref(int64_t n, float a, const float *x, float *y);
void pg_f16_to_f32_row_ref(const uint16_t *x, float *y, int64_t n);
void pg_f32_to_f16_row_ref(const float *x, uint16_t *y, int64_t n);
float pg_fp16_to_fp32_ref(uint16_t h);
uint16_t pg_fp32_to_fp16_ref(float f);

// ---- Attention -----------------------------------------------------------------------------
// One query head against `span` cached positions: scores[j] = scale * q·k_j, softmax over j,
// out = Σ_j p_j v_j. Rows of k and v are `stride` floats apart; `scores` needs span floats.
void pg_attend_head_f32(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                        int64_t head_dim, float scale, float *scores, float *out);
void pg_attend_head_f32_ref(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                            int64_t head_dim, float scale, float *scores, float *out);

// Streams n floats with 256-bit loads and returns their sum, so a benchmark can measure the
// machine's read bandwidth without the compiler discarding the loads.
float pg_stream_sum_f32(const float *x, int64_t n);

// A spin-wait hint for the thread pool's barrier (PAUSE on x86).
static inline void pg_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#ifdef __cplusplus
}
#endif
#endif
