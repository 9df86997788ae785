/* DP-FedAvg clipping and noise, and the RDP accountant (see dp.h for the references). */
#include "fedmq/dp.h"

#include <math.h>

int fmq_dp_clip(float *v, size_t n, double clip)
{
    double s = 0, k;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    s = sqrt(s);
    if (s <= clip * (1 + 1e-6) || s == 0) return 0; /* float rounding of a clipped vector */
    k = clip / s;
    for (size_t i = 0; i < n; i++) v[i] = (float)(v[i] * k);
    return 1;
}

void fmq_dp_noise_f64(double *v, size_t n, double std, struct fmq_rng *r)
{
    for (size_t i = 0; i < n; i++) v[i] += std * fmq_rng_normal(r);
}

void fmq_dp_noise_f32(float *v, size_t n, double std, struct fmq_rng *r)
{
    for (size_t i = 0; i < n; i++) v[i] = (float)(v[i] + std * fmq_rng_normal(r));
}

static double log_add(double x, double y)
{
    double m = x > y ? x : y;
    if (m == -INFINITY) return m;
    return m + log(exp(x - m) + exp(y - m));
}

/* Mironov et al. 2019, Sec. 3.3: for integer a,
 * A_a = sum_k C(a,k) (1-q)^(a-k) q^k exp((k^2 - k) / (2 sigma^2)), RDP(a) = log(A_a) / (a-1). */
double fmq_rdp_sgm(double q, double sigma, int a)
{
    double acc = -INFINITY;
    if (q >= 1.0) return a / (2.0 * sigma * sigma); /* the plain Gaussian mechanism */
    for (int k = 0; k <= a; k++) {
        double lc = lgamma(a + 1.0) - lgamma(k + 1.0) - lgamma(a - k + 1.0);
        double t = lc + (a - k) * log1p(-q) + (k ? k * log(q) : 0.0) +
                   ((double)k * k - k) / (2.0 * sigma * sigma);
        acc = log_add(acc, t);
    }
    return acc / (a - 1);
}

void fmq_dp_account(double *rdp, double q, double sigma)
{
    for (int a = 2; a < 2 + FMQ_DP_ORDERS; a++) rdp[a - 2] += fmq_rdp_sgm(q, sigma, a);
}

double fmq_dp_epsilon_rdp(const double *rdp, double delta, int *order)
{
    double best = INFINITY;
    int bo = 0;
    for (int a = 2; a < 2 + FMQ_DP_ORDERS; a++) {
        double e = rdp[a - 2] + log(1.0 / delta) / (a - 1);
        if (e < best) best = e, bo = a;
    }
    if (order) *order = bo;
    return best;
}

double fmq_dp_epsilon(double q, double sigma, uint64_t steps, double delta, int *order)
{
    double best = INFINITY;
    int bo = 0;
    if (steps == 0) {
        if (order) *order = 0;
        return 0;
    }
    for (int a = 2; a <= 256; a++) {
        double e = (double)steps * fmq_rdp_sgm(q, sigma, a) + log(1.0 / delta) / (a - 1);
        if (e < best) best = e, bo = a;
    }
    if (order) *order = bo;
    return best;
}
