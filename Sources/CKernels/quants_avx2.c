// The quantized kernels for AVX2, FMA and F16C: the x86-64-v3 level.
// Only this file's functions carry the target; callers reach them through the kernel table,
// which offers this level only where cpuid and xgetbv say the CPU and OS support it.
#include <immintrin.h>
#include <stddef.h>

#include "ck_internal.h"
#include "ckernels.h"

#define PG_CAT_(a, b) a##b
#define PG_CAT(a, b) PG_CAT_(a, b)
#define PG_FN(name) PG_CAT(name, _avx2)
#define PG_VNNI 0

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#include "quants_x86_body.h"
#pragma clang attribute pop
