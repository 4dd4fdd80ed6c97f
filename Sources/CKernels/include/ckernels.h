// Innermost SIMD kernels for PanGalactic, compiled per instruction-set level with target
// attributes, each with a plain scalar `_ref` twin.
// Layouts follow ggml's block formats exactly (see docs/architecture.md, "Kernels"). All functions take byte
// pointers to contiguous blocks; `n` is the number of logical values and must be a multiple of
// the format's block size (32, or 256 for K-quants). Callers validate shapes before calling.
#ifndef PANGALACTIC_CKERNELS_H
#define PANGALACTIC_CKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features and the instruction-set level -----------------------------------------------
// Levels, lowest first. A level is offered only when cpuid lists every instruction it uses AND
// the OS enables the register state (XCR0 via xgetbv): YMM for AVX2, opmask and ZMM for AVX-512.
enum {
    PG_ISA_REFERENCE = 0,  // plain C, any x86-64 (or any CPU)
    PG_ISA_AVX2 = 1,       // AVX2 + FMA + F16C
    PG_ISA_AVXVNNI = 2,    // the above + AVX-VNNI (VEX)
    PG_ISA_AVX512 = 3,     // the above without AVX-VNNI, + AVX-512 F/BW/VL/VNNI (EVEX)
};
// Feature bits of pg_cpu_features().
enum {
    PG_CPU_AVX2 = 1 << 0, PG_CPU_FMA = 1 << 1, PG_CPU_F16C = 1 << 2, PG_CPU_OS_YMM = 1 << 3,
    PG_CPU_AVX_VNNI = 1 << 4, PG_CPU_AVX512F = 1 << 5, PG_CPU_AVX512BW = 1 << 6, PG_CPU_AVX512VL = 1 << 7,
    PG_CPU_AVX512_VNNI = 1 << 8, PG_CPU_AVX512_BF16 = 1 << 9, PG_CPU_OS_ZMM = 1 << 10,
    PG_CPU_AMX_TILE = 1 << 11, PG_CPU_AMX_INT8 = 1 << 12, PG_CPU_AMX_BF16 = 1 << 13,
    PG_CPU_OS_AMX_XCR0 = 1 << 14,  // XCR0 bits 17-18 (tile config and data) are set
};
// What cpuid and xgetbv report (cached after the first call).
uint32_t pg_cpu_features(void);
// The highest level this CPU and OS support.
int pg_isa_best(void);
// Asks the kernel for the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM): 1 when granted. Only
// meaningful where cpuid lists AMX and XCR0 enables it; some hypervisors list AMX and grant
// nothing, and a tile instruction there dies with SIGILL.
int pg_amx_request(void);
// The level the process runs: PANGALACTIC_ISA (ref|avx2|avxvnni|avx512|amx) when set, capped at
// pg_isa_best(), else pg_isa_best(). Resolved once. Kernels outside the Swift kernel table
// (float dots, axpy, half conversions, attention) dispatch on it.
int pg_isa_active(void);
// Whether PANGALACTIC_ISA asked for more than the machine has (then the best level runs).
int pg_isa_request_capped(void);

// ---- Activation quantizers: f32 row -> partner format of the weights --------------------------
// Q8_0: { f16 d; i8 qs[32] }            34 bytes per 32 values, d = amax/127.
// Q8_1: { f16 d; f16 s; i8 qs[32] }     36 bytes per 32 values, s = d * sum(qs).
// Q8_K: { f32 d; i8 qs[256]; i16 bsums[16] } 292 bytes per 256 values.
void pg_quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void pg_quantize_row_q8_1_ref(const float *x, void *y, int64_t n);
void pg_quantize_row_q8_K_ref(const float *x, void *y, int64_t n);

// ---- Dot products: one quantized weight row with one quantized activation row -----------------
float pg_vec_dot_q4_0_q8_0_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q4_1_q8_1_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_0_q8_0_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_1_q8_1_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q8_0_q8_0_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q4_K_q8_K_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q5_K_q8_K_ref(int64_t n, const void *w, const void *a);
float pg_vec_dot_q6_K_q8_K_ref(int64_t n, const void *w, const void *a);

// The SIMD kernels, one set per level (suffix _avx2, _avxvnni, _avx512), each the same code
// compiled for its level (quants_x86_body.h). Call a set only where its level is supported.
//
// Several activation rows per weight row (prefill):
// - pg_vec_dot4_<K-quant>: out[i] = pg_vec_dot_<w>_<a>(n, w, a + i * a_stride) for
//   0 <= i < count, 1 <= count <= 4, equal bit for bit to the single-row kernel, but each weight
//   block is unpacked once for all rows.
// - The Q8_0-paired formats (Q4_0, Q5_0, Q8_0) fold every row in one order,
//   acc = fma((float)isum_b, d_w[b] * d_a[b], acc) over blocks b from acc = 0, with isum_b the
//   block's exact integer dot product; the single-row kernels, the _ref twins and the kernels
//   below all do, so each equals the others bit for bit. pg_vec_dot8_*: eight weight rows
//   (w_stride bytes apart) with one activation row, out[0..7] (decode). pg_pack8_* writes eight
//   weight rows of nb blocks interleaved, PG_PACK8_BYTES (320) per block; pg_gemm8_q8_0 meets
//   them with `tokens` activation rows (a_stride bytes apart), reading each activation block's
//   scale as a float (scales[t * scale_stride + b], from pg_q8_0_row_scales), and writes
//   out[t * out_stride + r] for the eight rows r.
// - The formats with a min (Q4_1, Q5_1) with Q8_1 activations: the row unpacks into unsigned
//   values (32 bytes per block) and (d, m) float pairs `wdm`; the activations' (d, s) come as
//   float pairs from pg_q8_1_row_scales (ds[2 * (t * ds_stride + b)]).
// All are bit-identical to the single-row kernels, and every level gives the same results.
#define PG_PACK8_BYTES 320
#define PG_DECLARE_QUANT_KERNELS(S)                                                                        \
    void pg_quantize_row_q8_0##S(const float *x, void *y, int64_t n);                                    \
    void pg_quantize_row_q8_1##S(const float *x, void *y, int64_t n);                                    \
    void pg_quantize_row_q8_K##S(const float *x, void *y, int64_t n);                                    \
    float pg_vec_dot_q4_0_q8_0##S(int64_t n, const void *w, const void *a);                              \
    float pg_vec_dot_q4_1_q8_1##S(int64_t n, const void *w, const void *a);                              \
    float pg_vec_dot_q5_0_q8_0##S(int64_t n, const void *w, const void *a);                              \
    float pg_vec_dot_q5_1_q8_1##S(int64_t n, const void *w, const void *a);                              \
    float pg_vec_dot_q8_0_q8_0##S(int64_t n, const void *w, const void *a);                              \
    float pg_vec_dot_q4_K_q8_K##S(int64_t n, const void *w, const void *a);                              \
    float pg_vec_dot_q5_K_q8_K##S(int64_t n, const void *w, const void *a);                              \
    float pg_vec_dot_q6_K_q8_K##S(int64_t n, const void *w, const void *a);                              \
    void pg_vec_dot4_q4_K_q8_K##S(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out); \
    void pg_vec_dot4_q5_K_q8_K##S(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out); \
    void pg_vec_dot4_q6_K_q8_K##S(int64_t n, const void *w, const void *a, int64_t a_stride, int64_t count, float *out); \
    void pg_vec_dot8_q4_0_q8_0##S(int64_t n, const void *w, int64_t w_stride, const void *a, float *out);  \
    void pg_vec_dot8_q5_0_q8_0##S(int64_t n, const void *w, int64_t w_stride, const void *a, float *out);  \
    void pg_vec_dot8_q8_0_q8_0##S(int64_t n, const void *w, int64_t w_stride, const void *a, float *out);  \
    void pg_pack8_q4_0##S(const void *w, int64_t w_stride, int64_t nb, void *packed);                   \
    void pg_pack8_q5_0##S(const void *w, int64_t w_stride, int64_t nb, void *packed);                   \
    void pg_pack8_q8_0##S(const void *w, int64_t w_stride, int64_t nb, void *packed);                   \
    void pg_gemm8_q8_0##S(int64_t nb, const void *packed, const void *a, int64_t a_stride, int64_t tokens, \
                          const float *scales, int64_t scale_stride, float *out, int64_t out_stride);   \
    void pg_unpack_q4_1##S(const void *w, int64_t nb, void *unpacked, float *wdm);                       \
    void pg_unpack_q5_1##S(const void *w, int64_t nb, void *unpacked, float *wdm);                       \
    void pg_q8_1_row_scales##S(const void *a, int64_t a_stride, int64_t rows, int64_t n, float *ds);     \
    void pg_vec_dot4u_u8_q8_1##S(int64_t nb, const void *unpacked, const float *wdm, const void *a, int64_t a_stride, \
                                 const float *ds, int64_t ds_stride, float *out);                       \
    void pg_q8_0_row_scales##S(const void *a, int64_t a_stride, int64_t rows, int64_t n, float *scales);

PG_DECLARE_QUANT_KERNELS(_avx2)
PG_DECLARE_QUANT_KERNELS(_avxvnni)
PG_DECLARE_QUANT_KERNELS(_avx512)

// AVX-512 only: sixteen weight rows per pack (2 * PG_PACK8_BYTES per block; each 64-byte vector
// holds rows 0-7's 32 bytes, then rows 8-15's) and their zmm product with `tokens` activation
// rows, out[t * out_stride + r] for r < 16: the same results as two eight-row calls.
void pg_pack16_q4_0_avx512(const void *w, int64_t w_stride, int64_t nb, void *packed);
void pg_pack16_q5_0_avx512(const void *w, int64_t w_stride, int64_t nb, void *packed);
void pg_pack16_q8_0_avx512(const void *w, int64_t w_stride, int64_t nb, void *packed);
void pg_gemm16_q8_0_avx512(int64_t nb, const void *packed, const void *a, int64_t a_stride, int64_t tokens,
                           const float *scales, int64_t scale_stride, float *out, int64_t out_stride);

// The VNNI levels' pg_gemm8_q8_0 reads the activations biased to unsigned bytes instead of Q8_0
// blocks: `rows` rows of n values, a + 128 per value, 32 bytes per block with nothing between,
// n bytes per row (and a_stride = n). The results are the same.
void pg_q8_0_bias_rows_avxvnni(const void *a, int64_t a_stride, int64_t rows, int64_t n, void *out);
void pg_q8_0_bias_rows_avx512(const void *a, int64_t a_stride, int64_t rows, int64_t n, void *out);

// ---- Float weights against f32 activations --------------------------------------------------
// n is any count (no block constraint). The un-suffixed functions here and below dispatch on
// pg_isa_active(): the _avx2 kernel from AVX2 up, else the _ref twin.
float pg_vec_dot_f32_f32(int64_t n, const float *w, const float *a);
float pg_vec_dot_f16_f32(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_bf16_f32(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_f32_f32_avx2(int64_t n, const float *w, const float *a);
float pg_vec_dot_f16_f32_avx2(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_bf16_f32_avx2(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_f32_f32_ref(int64_t n, const float *w, const float *a);
float pg_vec_dot_f16_f32_ref(int64_t n, const uint16_t *w, const float *a);
float pg_vec_dot_bf16_f32_ref(int64_t n, const uint16_t *w, const float *a);

// ---- Small float helpers used by attention and norms ------------------------------------------
// y[i] += a * x[i]
void pg_axpy_f32(int64_t n, float a, const float *x, float *y);
void pg_axpy_f32_avx2(int64_t n, float a, const float *x, float *y);
// IEEE half <-> float for whole rows (F16C).
void pg_f16_to_f32_row(const uint16_t *x, float *y, int64_t n);
void pg_f32_to_f16_row(const float *x, uint16_t *y, int64_t n);
void pg_f16_to_f32_row_avx2(const uint16_t *x, float *y, int64_t n);
void pg_f32_to_f16_row_avx2(const float *x, uint16_t *y, int64_t n);

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
void pg_attend_head_f32_avx2(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                             int64_t head_dim, float scale, float *scores, float *out);
// The same arithmetic as the AVX2 kernel in zmm registers, equal to it bit for bit; head sizes
// that are not a multiple of 16 run the AVX2 kernel. Only where AVX-512 is supported.
void pg_attend_head_f32_avx512(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                               int64_t head_dim, float scale, float *scores, float *out);

// Streams n floats with 256-bit loads and returns their sum, so a benchmark can measure the
// machine's read bandwidth without the compiler discarding the loads.
float pg_stream_sum_f32(const float *x, int64_t n);
float pg_stream_sum_f32_avx2(const float *x, int64_t n);
float pg_stream_sum_f32_ref(const float *x, int64_t n);

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
