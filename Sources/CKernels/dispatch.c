// CPU feature detection (cpuid, xgetbv, arch_prctl) and the kernels that dispatch on the
// process's instruction-set level. Compiled for baseline x86-64, so any CPU can run it.
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ckernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect_features(void) {
    uint32_t a, b, c, d, f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1;
    if ((c >> 12) & 1) f |= PG_CPU_FMA;
    if ((c >> 29) & 1) f |= PG_CPU_F16C;
    const int avx = (c >> 28) & 1;
    uint64_t xcr0 = 0;
    if (osxsave) xcr0 = read_xcr0();
    // XCR0 bit 1 SSE, bit 2 AVX (upper YMM); 5-7 opmask, ZMM_Hi256, Hi16_ZMM; 17-18 AMX tiles.
    if (avx && (xcr0 & 0x6) == 0x6) f |= PG_CPU_OS_YMM;
    if ((xcr0 & 0xE6) == 0xE6) f |= PG_CPU_OS_ZMM;
    if ((xcr0 & 0x60000) == 0x60000) f |= PG_CPU_OS_AMX_XCR0;
    uint32_t max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        const uint32_t leaf7_max_sub = a;
        if ((b >> 5) & 1) f |= PG_CPU_AVX2;
        if ((b >> 16) & 1) f |= PG_CPU_AVX512F;
        if ((b >> 30) & 1) f |= PG_CPU_AVX512BW;
        if ((b >> 31) & 1) f |= PG_CPU_AVX512VL;
        if ((c >> 11) & 1) f |= PG_CPU_AVX512_VNNI;
        if ((d >> 22) & 1) f |= PG_CPU_AMX_BF16;
        if ((d >> 24) & 1) f |= PG_CPU_AMX_TILE;
        if ((d >> 25) & 1) f |= PG_CPU_AMX_INT8;
        if (leaf7_max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if ((a >> 4) & 1) f |= PG_CPU_AVX_VNNI;
            if ((a >> 5) & 1) f |= PG_CPU_AVX512_BF16;
        }
    }
    return f;
}

int pg_amx_request(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    const uint32_t f = pg_cpu_features();
    if (!(f & PG_CPU_AMX_TILE) || !(f & PG_CPU_OS_AMX_XCR0)) return 0;
    // ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18).
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0 ? 1 : 0;
#else
    return 0;
#endif
}
#else
static uint32_t detect_features(void) { return 0; }
int pg_amx_request(void) { return 0; }
#endif

uint32_t pg_cpu_features(void) {
    static _Atomic int64_t cached = -1;
    int64_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = detect_features();
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return (uint32_t)v;
}

int pg_isa_best(void) {
    const uint32_t f = pg_cpu_features();
    const uint32_t avx2 = PG_CPU_AVX2 | PG_CPU_FMA | PG_CPU_F16C | PG_CPU_OS_YMM;
    if ((f & avx2) != avx2) return PG_ISA_REFERENCE;
    const uint32_t avx512 = PG_CPU_AVX512F | PG_CPU_AVX512BW | PG_CPU_AVX512VL | PG_CPU_AVX512_VNNI | PG_CPU_OS_ZMM;
    if ((f & avx512) == avx512) return PG_ISA_AVX512;
    if (f & PG_CPU_AVX_VNNI) return PG_ISA_AVXVNNI;
    return PG_ISA_AVX2;
}

static int requested_level(int best, int *capped) {
    *capped = 0;
    const char *e = getenv("PANGALACTIC_ISA");
    if (!e || !*e) return best;
    int want;
    if (!strcmp(e, "ref") || !strcmp(e, "reference") || !strcmp(e, "c")) want = PG_ISA_REFERENCE;
    else if (!strcmp(e, "avx2")) want = PG_ISA_AVX2;
    else if (!strcmp(e, "avxvnni")) want = PG_ISA_AVXVNNI;
    // There are no AMX kernels: amx asks for the best vector level.
    else if (!strcmp(e, "avx512") || !strcmp(e, "amx")) want = PG_ISA_AVX512;
    else return best;
    if (want > best) {
        *capped = 1;
        return best;
    }
    // AVX-VNNI is a separate extension: an AVX-512 machine may lack it.
    if (want == PG_ISA_AVXVNNI && !(pg_cpu_features() & PG_CPU_AVX_VNNI)) {
        *capped = 1;
        return PG_ISA_AVX2;
    }
    return want;
}

static _Atomic int active_level = -1;
static _Atomic int active_capped = 0;

int pg_isa_active(void) {
    int v = atomic_load_explicit(&active_level, memory_order_relaxed);
    if (v < 0) {
        int capped;
        v = requested_level(pg_isa_best(), &capped);
        atomic_store_explicit(&active_capped, capped, memory_order_relaxed);
        atomic_store_explicit(&active_level, v, memory_order_relaxed);
    }
    return v;
}

int pg_isa_request_capped(void) {
    (void)pg_isa_active();
    return atomic_load_explicit(&active_capped, memory_order_relaxed);
}

// ---- Dispatchers -----------------------------------------------------------------------------
#define PG_HAS_AVX2() (pg_isa_active() >= PG_ISA_AVX2)

float pg_vec_dot_f32_f32(int64_t n, const float *w, const float *a) {
    return PG_HAS_AVX2() ? pg_vec_dot_f32_f32_avx2(n, w, a) : pg_vec_dot_f32_f32_ref(n, w, a);
}
float pg_vec_dot_f16_f32(int64_t n, const uint16_t *w, const float *a) {
    return PG_HAS_AVX2() ? pg_vec_dot_f16_f32_avx2(n, w, a) : pg_vec_dot_f16_f32_ref(n, w, a);
}
float pg_vec_dot_bf16_f32(int64_t n, const uint16_t *w, const float *a) {
    return PG_HAS_AVX2() ? pg_vec_dot_bf16_f32_avx2(n, w, a) : pg_vec_dot_bf16_f32_ref(n, w, a);
}
void pg_axpy_f32(int64_t n, float a, const float *x, float *y) {
    if (PG_HAS_AVX2()) pg_axpy_f32_avx2(n, a, x, y); else pg_axpy_f32_ref(n, a, x, y);
}
void pg_f16_to_f32_row(const uint16_t *x, float *y, int64_t n) {
    if (PG_HAS_AVX2()) pg_f16_to_f32_row_avx2(x, y, n); else pg_f16_to_f32_row_ref(x, y, n);
}
void pg_f32_to_f16_row(const float *x, uint16_t *y, int64_t n) {
    if (PG_HAS_AVX2()) pg_f32_to_f16_row_avx2(x, y, n); else pg_f32_to_f16_row_ref(x, y, n);
}
void pg_attend_head_f32(const float *q, const float *k, const float *v, int64_t stride, int64_t span,
                        int64_t head_dim, float scale, float *scores, float *out) {
    if (pg_isa_active() >= PG_ISA_AVX512) pg_attend_head_f32_avx512(q, k, v, stride, span, head_dim, scale, scores, out);
    else if (PG_HAS_AVX2()) pg_attend_head_f32_avx2(q, k, v, stride, span, head_dim, scale, scores, out);
    else pg_attend_head_f32_ref(q, k, v, stride, span, head_dim, scale, scores, out);
}
float pg_stream_sum_f32(const float *x, int64_t n) {
    return PG_HAS_AVX2() ? pg_stream_sum_f32_avx2(x, n) : pg_stream_sum_f32_ref(x, n);
}
