// Private to the CKernels target: ggml-compatible block layouts and portable fp16 helpers.
// Blocks are declared packed (alignment 1) because rows come straight from an mmap'd GGUF file
// and may start at any byte offset; every multi-byte field is therefore read without assuming
// natural alignment.
#ifndef PANGALACTIC_CK_INTERNAL_H
#define PANGALACTIC_CK_INTERNAL_H

#include <stdint.h>
#include <string.h>

#define PG_QK 32     // values per block for the 32-wide formats
#define PG_QK_K 256  // values per super-block for the K-quants

#define PG_PACKED __attribute__((packed))

typedef struct PG_PACKED { uint16_t d; uint8_t qs[16]; } pg_block_q4_0;
typedef struct PG_PACKED { uint16_t d; uint16_t m; uint8_t qs[16]; } pg_block_q4_1;
typedef struct PG_PACKED { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } pg_block_q5_0;
typedef struct PG_PACKED { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[16]; } pg_block_q5_1;
typedef struct PG_PACKED { uint16_t d; int8_t qs[32]; } pg_block_q8_0;
typedef struct PG_PACKED { uint16_t d; uint16_t s; int8_t qs[32]; } pg_block_q8_1;
typedef struct PG_PACKED { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[128]; } pg_block_q4_K;
typedef struct PG_PACKED {
    uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128];
} pg_block_q5_K;
typedef struct PG_PACKED { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } pg_block_q6_K;
typedef struct PG_PACKED { float d; int8_t qs[256]; int16_t bsums[16]; } pg_block_q8_K;

_Static_assert(sizeof(pg_block_q4_0) == 18, "Q4_0 block size");
_Static_assert(sizeof(pg_block_q4_1) == 20, "Q4_1 block size");
_Static_assert(sizeof(pg_block_q5_0) == 22, "Q5_0 block size");
_Static_assert(sizeof(pg_block_q5_1) == 24, "Q5_1 block size");
_Static_assert(sizeof(pg_block_q8_0) == 34, "Q8_0 block size");
_Static_assert(sizeof(pg_block_q8_1) == 36, "Q8_1 block size");
_Static_assert(sizeof(pg_block_q4_K) == 144, "Q4_K block size");
_Static_assert(sizeof(pg_block_q5_K) == 176, "Q5_K block size");
_Static_assert(sizeof(pg_block_q6_K) == 210, "Q6_K block size");
_Static_assert(sizeof(pg_block_q8_K) == 292, "Q8_K block size");

// ---- Portable IEEE binary16 <-> binary32 (no F16C), exact, round-to-nearest-even -------------

static inline float pg_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t pg_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float pg_h2f_portable(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    if (exp == 0x1F) {
        // Inf (mant == 0) or NaN; keep the payload in the top mantissa bits.
        return pg_bits_to_f32(sign | 0x7F800000u | (mant << 13));
    }
    if (exp != 0) {
        // Normal: rebias 15 -> 127.
        return pg_bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    }
    if (mant == 0) return pg_bits_to_f32(sign);  // signed zero
    // Subnormal half: value = mant * 2^-24. Normalise so the leading 1 lands on bit 10.
    int32_t e = 113;  // exponent field (127-based) a normal half with exp field 1 would get, minus 1 per shift below
    while ((mant & 0x400u) == 0) { mant <<= 1; e -= 1; }
    mant &= 0x3FFu;
    return pg_bits_to_f32(sign | ((uint32_t)e << 23) | (mant << 13));
}

static inline uint16_t pg_f2h_portable(float f) {
    const uint32_t x = pg_f32_to_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t exp = (x >> 23) & 0xFFu;
    const uint32_t mant = x & 0x7FFFFFu;
    if (exp == 0xFF) {
        if (mant == 0) return sign | 0x7C00u;                        // infinity
        return (uint16_t)(sign | 0x7C00u | 0x200u | (mant >> 13));   // quiet NaN, payload truncated
    }
    if (exp == 0) return sign;  // f32 zero or subnormal: far below half's smallest subnormal
    const int32_t e = (int32_t)exp - 127 + 15;  // biased half exponent
    if (e >= 31) return sign | 0x7C00u;         // overflow
    if (e >= 1) {
        // Normal half: keep 10 mantissa bits, round the 13 dropped bits to nearest even. A carry
        // out of the mantissa correctly bumps the exponent (and 0x7BFF + 1 becomes infinity).
        uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
        const uint32_t rest = mant & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1;
        return (uint16_t)(sign | h);
    }
    // Subnormal (or zero) half. value = m * 2^(exp-150) with m the 24-bit significand; in units of
    // the half subnormal step 2^-24 that is m >> shift with shift = 126 - exp (>= 14 here).
    const uint32_t m = mant | 0x800000u;
    const uint32_t shift = 126u - exp;
    if (shift > 24) return sign;  // below half of the smallest subnormal: rounds to zero
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u))) h += 1;  // may carry into the smallest normal
    return (uint16_t)(sign | h);
}

static inline uint16_t pg_load_u16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t pg_load_u32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }

#endif
