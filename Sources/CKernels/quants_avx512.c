// The quantized kernels for AVX-512 F, BW, VL and VNNI (Zen 4, Ice Lake and later Xeons): vpdpbusd on ymm, EVEX encodings.
// Only this file's functions carry the target; callers reach them through the kernel table,
// which offers this level only where cpuid and xgetbv say the CPU and OS support it.
#include <immintrin.h>
#include <stddef.h>

#include "ck_internal.h"
#include "ckernels.h"

#define PG_CAT_(a, b) a##b
#define PG_CAT(a, b) PG_CAT_(a, b)
#define PG_FN(name) PG_CAT(name, _avx512)
#define PG_VNNI 2

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#include "quants_x86_body.h"
#pragma clang attribute pop
