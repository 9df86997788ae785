/* Aggregation strategies. FedAvg (McMahan et al. 2017, "Communication-Efficient Learning of Deep
 * Networks from Decentralized Data", Algorithm 1): theta <- theta + eta_s * sum_k (n_k / n) delta_k
 * with delta_k = theta_k - theta the agent's model change, n_k its example count. Accumulation is
 * in double so the order updates arrive in does not change the result beyond rounding. */
#ifndef FMQ_STRATEGY_H
#define FMQ_STRATEGY_H

#include <stddef.h>

struct fmq_fedavg {
    size_t dim;     /* parameters */
    double *acc;    /* owned: sum of weight * delta */
    double total_w; /* sum of weights */
    int count;      /* updates added this round */
};

int fmq_fedavg_init(struct fmq_fedavg *s, size_t dim);
void fmq_fedavg_free(struct fmq_fedavg *s);
void fmq_fedavg_reset(struct fmq_fedavg *s);
/* Adds one update with weight n_k (> 0). */
int fmq_fedavg_add(struct fmq_fedavg *s, const float *delta, double weight);
/* params += server_lr * acc / total_w; FMQ_EINVAL when nothing was added. */
int fmq_fedavg_apply(const struct fmq_fedavg *s, float *params, float server_lr);

#endif
