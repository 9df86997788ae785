/* Layer kernels as forward/backward pairs over flat arrays (llm.c's layout). The linear
 * backward accumulates into dw/db so gradients of several batches can be summed. The
 * `omp simd` pragmas (compiled with -fopenmp-simd: no OpenMP runtime) let the compiler vectorise
 * the dot products by reordering their sums, which plain -O2 may not do for floats. */
#include "fedmq/model.h"

#include <math.h>
#include <string.h>

/* Rows go four at a time so each weight row loaded serves four dot products (forward) and
 * each gradient row is read and written once per four rows (backward); the remainder rows take
 * the plain path. */
void fmq_linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int C,
                        int OC)
{
    int i = 0;
    for (; i + 4 <= B; i += 4) {
        const float *x0 = inp + (size_t)i * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
        float *o0 = out + (size_t)i * OC, *o1 = o0 + OC, *o2 = o1 + OC, *o3 = o2 + OC;
        for (int j = 0; j < OC; j++) {
            const float *wr = w + (size_t)j * C;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, bj = b ? b[j] : 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
            for (int k = 0; k < C; k++) {
                float wk = wr[k];
                a0 += wk * x0[k];
                a1 += wk * x1[k];
                a2 += wk * x2[k];
                a3 += wk * x3[k];
            }
            o0[j] = a0 + bj, o1[j] = a1 + bj, o2[j] = a2 + bj, o3[j] = a3 + bj;
        }
    }
    for (; i < B; i++) {
        const float *x = inp + (size_t)i * C;
        float *o = out + (size_t)i * OC;
        for (int j = 0; j < OC; j++) {
            const float *wr = w + (size_t)j * C;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int k = 0; k < C; k++) acc += wr[k] * x[k];
            o[j] = acc + (b ? b[j] : 0.0f);
        }
    }
}

void fmq_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int B, int C, int OC)
{
    int i = 0;
    if (dinp) memset(dinp, 0, (size_t)B * C * sizeof *dinp);
    for (; i + 4 <= B; i += 4) {
        const float *x0 = inp + (size_t)i * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
        const float *d0 = dout + (size_t)i * OC, *d1 = d0 + OC, *d2 = d1 + OC, *d3 = d2 + OC;
        for (int j = 0; j < OC; j++) {
            float g0 = d0[j], g1 = d1[j], g2 = d2[j], g3 = d3[j];
            const float *wr = w + (size_t)j * C;
            float *dwr = dw + (size_t)j * C;
            if (g0 == 0.0f && g1 == 0.0f && g2 == 0.0f && g3 == 0.0f) continue;
            if (db) db[j] += (g0 + g1) + (g2 + g3);
#pragma omp simd
            for (int k = 0; k < C; k++) dwr[k] += g0 * x0[k] + g1 * x1[k] + g2 * x2[k] + g3 * x3[k];
            if (dinp) {
                float *dx0 = dinp + (size_t)i * C, *dx1 = dx0 + C, *dx2 = dx1 + C, *dx3 = dx2 + C;
#pragma omp simd
                for (int k = 0; k < C; k++) {
                    float wk = wr[k];
                    dx0[k] += g0 * wk;
                    dx1[k] += g1 * wk;
                    dx2[k] += g2 * wk;
                    dx3[k] += g3 * wk;
                }
            }
        }
    }
    for (; i < B; i++) {
        const float *x = inp + (size_t)i * C;
        const float *d = dout + (size_t)i * OC;
        float *dx = dinp ? dinp + (size_t)i * C : NULL;
        for (int j = 0; j < OC; j++) {
            float g = d[j];
            const float *wr = w + (size_t)j * C;
            float *dwr = dw + (size_t)j * C;
            if (g == 0.0f) continue;
            if (db) db[j] += g;
#pragma omp simd
            for (int k = 0; k < C; k++) dwr[k] += g * x[k];
            if (dx) {
#pragma omp simd
                for (int k = 0; k < C; k++) dx[k] += g * wr[k];
            }
        }
    }
}

void fmq_relu_forward(float *out, const float *inp, int n)
{
    for (int i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void fmq_relu_backward(float *dinp, const float *out, const float *dout, int n)
{
    for (int i = 0; i < n; i++) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

float fmq_sigmoid(float z)
{
    if (z >= 0) return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

/* BCE with logits: max(z,0) - z*y + log(1 + exp(-|z|)) */
float fmq_bce_forward(const float *z, const float *y, const float *w, int B)
{
    double acc = 0;
    for (int i = 0; i < B; i++) {
        float l = fmaxf(z[i], 0.0f) - z[i] * y[i] + log1pf(expf(-fabsf(z[i])));
        acc += (double)(w ? w[i] : 1.0f) * l;
    }
    return (float)(acc / B);
}

void fmq_bce_backward(float *dz, const float *z, const float *y, const float *w, int B)
{
    for (int i = 0; i < B; i++) dz[i] = (w ? w[i] : 1.0f) * (fmq_sigmoid(z[i]) - y[i]) / B;
}
