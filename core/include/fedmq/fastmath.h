/* Branch-free float exp and tanh that compilers vectorise inside `omp simd` loops (with
 * -fno-trapping-math) (glibc's
 * expf/tanhf are calls, so a loop over them runs one value at a time). exp: Cody-Waite range
 * reduction x = n ln2 + r and the degree-6 minimax polynomial of Cephes' expf (S. Moshier,
 * Cephes Math Library), 2^n put into the exponent bits; about 2 ulp on [-87, 88].
 * tanh(x) = 1 - 2 / (exp(2|x|) + 1) with the sign restored, and its Taylor series below
 * |x| < 1/16 where that form cancels; absolute error below 1e-6 everywhere (tested in
 * test_gpt.c against tanhf). */
#ifndef FMQ_FASTMATH_H
#define FMQ_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float fmq_fast_expf(float x)
{
    float n, r, p, s;
    int32_t e, ni;
    x = x < 88.0f ? x : 88.0f;
    x = x > -87.0f ? x : -87.0f;
    ni = (int32_t)(x * 1.44269504088896341f + __builtin_copysignf(0.5f, x));
    n = (float)ni;
    r = x - n * 0.693359375f - n * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    e = (ni + 127) << 23;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

static inline float fmq_fast_tanhf(float x)
{
    float ax = __builtin_fabsf(x), x2 = x * x, t, small;
    ax = ax < 9.0f ? ax : 9.0f; /* tanh(9) = 1 - 3e-8 */
    t = __builtin_copysignf(1.0f - 2.0f / (fmq_fast_expf(2.0f * ax) + 1.0f), x);
    small = x * (1.0f - x2 * (1.0f / 3.0f - x2 * (2.0f / 15.0f)));
    return ax < 0.0625f ? small : t;
}

#endif
