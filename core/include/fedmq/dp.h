/* Differential privacy for federated rounds: DP-FedAvg (McMahan, Ramage, Talwar, Zhang 2018,
 * "Learning differentially private recurrent language models"): every update is clipped to L2
 * norm S, the clipped updates are averaged with equal weight, and Gaussian noise of standard
 * deviation z S / m is added to the mean of m updates (z = noise multiplier). The privacy spent
 * is tracked with Renyi DP (Mironov 2017) for the sampled Gaussian mechanism at sampling rate q
 * (Mironov, Talwar, Zhang 2019, "Renyi differential privacy of the sampled Gaussian mechanism",
 * the closed form for integer orders), composed over rounds and converted to (epsilon, delta) by
 * epsilon = min over orders a of RDP(a) + log(1/delta) / (a - 1). */
#ifndef FMQ_DP_H
#define FMQ_DP_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/common.h"

/* Scales v to L2 norm at most clip; returns 1 when it was scaled. */
int fmq_dp_clip(float *v, size_t n, double clip);
/* Adds N(0, std^2) to each of v[0..n). */
void fmq_dp_noise_f64(double *v, size_t n, double std, struct fmq_rng *r);
void fmq_dp_noise_f32(float *v, size_t n, double std, struct fmq_rng *r);
/* RDP of one sampled Gaussian step at integer order a >= 2 (q in (0, 1], sigma > 0). */
double fmq_rdp_sgm(double q, double sigma, int a);
#define FMQ_DP_ORDERS 255 /* integer orders 2..256 */
/* Composition with a sampling rate that may change per round: rdp[a-2] += RDP(q, sigma, a). */
void fmq_dp_account(double *rdp, double q, double sigma);
/* epsilon at delta from accumulated RDP; *order gets the best order (may be NULL). */
double fmq_dp_epsilon_rdp(const double *rdp, double delta, int *order);
/* epsilon after `steps` steps at the given delta (orders 2..256); *order gets the best order. */
double fmq_dp_epsilon(double q, double sigma, uint64_t steps, double delta, int *order);

#endif
