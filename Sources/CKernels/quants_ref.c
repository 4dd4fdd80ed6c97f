// Scalar reference twins for the quantized kernels. Written for clarity: each function follows
// the block formulas literally (see ck_internal.h and ggml's format definitions). Dot products
// accumulate integer products per block (or per sub-block for K-quants) and convert to float
// once per block, exactly like the SIMD versions, so both agree to float rounding.
#include <math.h>

#include "ck_internal.h"
#include "ckernels.h"

float pg_fp16_to_fp32_ref(uint16_t h) { return pg_h2f_portable(h); }
uint16_t pg_fp32_to_fp16_ref(float f) { return pg_f2h_portable(f); }

#define H2F(h) pg_h2f_portable(h)
#define F2H(f) pg_f2h_portable(f)

// ---- Activation quantizers ------------------------------------------------------------------

void pg_quantize_row_q8_0_ref(const float *x, void *vy, int64_t n) {
    pg_block_q8_0 *y = (pg_block_q8_0 *)vy;
    const int64_t nb = n / PG_QK;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float *xb = x + ib * PG_QK;
        float amax = 0.0f;
        for (int j = 0; j < PG_QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[ib].d = F2H(d);
        for (int j = 0; j < PG_QK; j++) y[ib].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

void pg_quantize_row_q8_1_ref(const float *x, void *vy, int64_t n) {
    pg_block_q8_1 *y = (pg_block_q8_1 *)vy;
    const int64_t nb = n / PG_QK;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float *xb = x + ib * PG_QK;
        float amax = 0.0f;
        for (int j = 0; j < PG_QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < PG_QK; j++) {
            const int q = (int)roundf(xb[j] * id);
            y[ib].qs[j] = (int8_t)q;
            sum += q;
        }
        y[ib].d = F2H(d);
        y[ib].s = F2H(d * (float)sum);
    }
}

void pg_quantize_row_q8_K_ref(const float *x, void *vy, int64_t n) {
    pg_block_q8_K *y = (pg_block_q8_K *)vy;
    const int64_t nb = n / PG_QK_K;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float *xb = x + ib * PG_QK_K;
        // The signed value with the largest magnitude (first one wins on equal magnitudes).
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < PG_QK_K; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (amax == 0.0f) {
            y[ib].d = 0.0f;
            memset(y[ib].qs, 0, sizeof(y[ib].qs));
            memset(y[ib].bsums, 0, sizeof(y[ib].bsums));
            continue;
        }
        // Negative scale: the extreme value maps to -127, so every q lies in [-127, 127].
        const float iscale = -127.0f / max;
        for (int j = 0; j < PG_QK_K; j++) {
            const int v = (int)rintf(iscale * xb[j]);  // nearest, ties to even (ggml's nearest_int)
            y[ib].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < PG_QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += y[ib].qs[16 * g + j];
            y[ib].bsums[g] = (int16_t)s;
        }
        y[ib].d = 1.0f / iscale;
    }
}

// ---- 32-wide formats ------------------------------------------------------------------------
// The Q8_0-paired formats fold their blocks as every SIMD kernel of theirs does (ckernels.h):
// sum = fma((float)isum_b, d_w * d_a, sum), so these twins equal them bit for bit.

float pg_vec_dot_q4_0_q8_0_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q4_0 *w = (const pg_block_q4_0 *)vw;
    const pg_block_q8_0 *a = (const pg_block_q8_0 *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK; ib++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = (w[ib].qs[j] & 0x0F) - 8;
            const int hi = (w[ib].qs[j] >> 4) - 8;
            isum += lo * a[ib].qs[j] + hi * a[ib].qs[j + 16];
        }
        const float s = H2F(w[ib].d) * H2F(a[ib].d);
        sum = fmaf((float)isum, s, sum);
    }
    return sum;
}

float pg_vec_dot_q4_1_q8_1_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q4_1 *w = (const pg_block_q4_1 *)vw;
    const pg_block_q8_1 *a = (const pg_block_q8_1 *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK; ib++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += (w[ib].qs[j] & 0x0F) * a[ib].qs[j] + (w[ib].qs[j] >> 4) * a[ib].qs[j + 16];
        }
        // sum_j (q_j*dw + m)(a_j*da) = dw*da*sum(q*a) + m*(da*sum(a)) and s = da*sum(a).
        sum += (float)isum * (H2F(w[ib].d) * H2F(a[ib].d)) + H2F(w[ib].m) * H2F(a[ib].s);
    }
    return sum;
}

float pg_vec_dot_q5_0_q8_0_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q5_0 *w = (const pg_block_q5_0 *)vw;
    const pg_block_q8_0 *a = (const pg_block_q8_0 *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK; ib++) {
        const uint32_t qh = pg_load_u32(w[ib].qh);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            const int xh0 = (int)(((qh >> j) << 4) & 0x10);
            const int xh1 = (int)((qh >> (j + 12)) & 0x10);
            const int lo = ((w[ib].qs[j] & 0x0F) | xh0) - 16;
            const int hi = ((w[ib].qs[j] >> 4) | xh1) - 16;
            isum += lo * a[ib].qs[j] + hi * a[ib].qs[j + 16];
        }
        const float s = H2F(w[ib].d) * H2F(a[ib].d);
        sum = fmaf((float)isum, s, sum);
    }
    return sum;
}

float pg_vec_dot_q5_1_q8_1_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q5_1 *w = (const pg_block_q5_1 *)vw;
    const pg_block_q8_1 *a = (const pg_block_q8_1 *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK; ib++) {
        const uint32_t qh = pg_load_u32(w[ib].qh);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            const int xh0 = (int)(((qh >> j) << 4) & 0x10);
            const int xh1 = (int)((qh >> (j + 12)) & 0x10);
            const int lo = (w[ib].qs[j] & 0x0F) | xh0;
            const int hi = (w[ib].qs[j] >> 4) | xh1;
            isum += lo * a[ib].qs[j] + hi * a[ib].qs[j + 16];
        }
        sum += (float)isum * (H2F(w[ib].d) * H2F(a[ib].d)) + H2F(w[ib].m) * H2F(a[ib].s);
    }
    return sum;
}

float pg_vec_dot_q8_0_q8_0_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q8_0 *w = (const pg_block_q8_0 *)vw;
    const pg_block_q8_0 *a = (const pg_block_q8_0 *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK; ib++) {
        int isum = 0;
        for (int j = 0; j < PG_QK; j++) isum += w[ib].qs[j] * a[ib].qs[j];
        const float s = H2F(w[ib].d) * H2F(a[ib].d);
        sum = fmaf((float)isum, s, sum);
    }
    return sum;
}

// ---- K-quants -------------------------------------------------------------------------------

// 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K / Q5_K.
static void pg_get_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

float pg_vec_dot_q4_K_q8_K_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q4_K *w = (const pg_block_q4_K *)vw;
    const pg_block_q8_K *a = (const pg_block_q8_K *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK_K; ib++) {
        int isum = 0;  // sum over sub-blocks of sc * sum(q * a)
        int msum = 0;  // sum over sub-blocks of m * sum(a)
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = w[ib].qs + 32 * c;
            const int8_t *a_lo = a[ib].qs + 64 * c;
            const int8_t *a_hi = a_lo + 32;
            int sc1, m1, sc2, m2;
            pg_get_scale_min_k4(2 * c, w[ib].scales, &sc1, &m1);
            pg_get_scale_min_k4(2 * c + 1, w[ib].scales, &sc2, &m2);
            int s_lo = 0, s_hi = 0, a_sum_lo = 0, a_sum_hi = 0;
            for (int l = 0; l < 32; l++) {
                s_lo += (q[l] & 0x0F) * a_lo[l];
                s_hi += (q[l] >> 4) * a_hi[l];
                a_sum_lo += a_lo[l];
                a_sum_hi += a_hi[l];
            }
            isum += sc1 * s_lo + sc2 * s_hi;
            msum += m1 * a_sum_lo + m2 * a_sum_hi;
        }
        const float d = H2F(w[ib].d) * a[ib].d;
        const float dmin = H2F(w[ib].dmin) * a[ib].d;
        sum += d * (float)isum - dmin * (float)msum;
    }
    return sum;
}

float pg_vec_dot_q5_K_q8_K_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q5_K *w = (const pg_block_q5_K *)vw;
    const pg_block_q8_K *a = (const pg_block_q8_K *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK_K; ib++) {
        int isum = 0, msum = 0;
        for (int c = 0; c < 4; c++) {
            const uint8_t *ql = w[ib].qs + 32 * c;
            const uint8_t *qh = w[ib].qh;  // does not advance; chunk c uses bits 2c and 2c+1
            const int u1 = 1 << (2 * c), u2 = 2 << (2 * c);
            const int8_t *a_lo = a[ib].qs + 64 * c;
            const int8_t *a_hi = a_lo + 32;
            int sc1, m1, sc2, m2;
            pg_get_scale_min_k4(2 * c, w[ib].scales, &sc1, &m1);
            pg_get_scale_min_k4(2 * c + 1, w[ib].scales, &sc2, &m2);
            int s_lo = 0, s_hi = 0, a_sum_lo = 0, a_sum_hi = 0;
            for (int l = 0; l < 32; l++) {
                const int lo = (ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0);
                const int hi = (ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0);
                s_lo += lo * a_lo[l];
                s_hi += hi * a_hi[l];
                a_sum_lo += a_lo[l];
                a_sum_hi += a_hi[l];
            }
            isum += sc1 * s_lo + sc2 * s_hi;
            msum += m1 * a_sum_lo + m2 * a_sum_hi;
        }
        const float d = H2F(w[ib].d) * a[ib].d;
        const float dmin = H2F(w[ib].dmin) * a[ib].d;
        sum += d * (float)isum - dmin * (float)msum;
    }
    return sum;
}

float pg_vec_dot_q6_K_q8_K_ref(int64_t n, const void *vw, const void *va) {
    const pg_block_q6_K *w = (const pg_block_q6_K *)vw;
    const pg_block_q8_K *a = (const pg_block_q8_K *)va;
    float sum = 0.0f;
    for (int64_t ib = 0; ib < n / PG_QK_K; ib++) {
        // Decode the 256 signed 6-bit values first, then take per-16 scaled sums.
        int q[PG_QK_K];
        for (int h = 0; h < 2; h++) {
            const uint8_t *L = w[ib].ql + 64 * h;
            const uint8_t *H = w[ib].qh + 32 * h;
            int *y = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                y[l] = ((L[l] & 0x0F) | ((H[l] & 3) << 4)) - 32;
                y[l + 32] = ((L[l + 32] & 0x0F) | (((H[l] >> 2) & 3) << 4)) - 32;
                y[l + 64] = ((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32;
                y[l + 96] = ((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32;
            }
        }
        // Value i uses scale i/16 (that is S[is + 2k] in the per-half formula).
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += q[16 * g + j] * a[ib].qs[16 * g + j];
            isum += w[ib].scales[g] * s;
        }
        sum += (H2F(w[ib].d) * a[ib].d) * (float)isum;
    }
    return sum;
}
