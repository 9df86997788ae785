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

/* ---- server-side optimizers (core/strategy/serveropt.c) ----
 * Every strategy first forms the aggregate model change Delta = sum_k w_k delta_k (w from
 * fmq_fedavg: example counts, or uniform for the paper's FedOpt) with delta_k = local_k - global,
 * then moves the global model. Sign convention: Delta is a descent direction already (the
 * negative of Reddi et al.'s pseudo-gradient), so every rule ADDS its step.
 *   fedavg, fedprox        theta += server_lr * Delta        (McMahan et al. 2017; FedProx
 *                          adds mu/2 ||w - theta||^2 on the agent, Li et al. 2020)
 *   fedavgm                m = server_momentum * m + Delta; theta += server_lr * m
 *                          (Hsu et al. 2019); gsfs uses the same rule, which with the default
 *                          server_momentum 0 is the paper's theta + sum a_k delta_k
 *   fedadam                m = b1 m + (1-b1) Delta; v = b2 v + (1-b2) Delta^2;
 *                          theta += eta m / (sqrt(v) + tau)   (Reddi et al. 2021, Alg. 2)
 *   fedyogi                as fedadam with v = v - (1-b2) Delta^2 sign(v - Delta^2)
 *   fedadagrad             m = Delta; v = v + Delta^2; theta += eta m / (sqrt(v) + tau)
 *   fedopt                 the paper's variant: fedadam on the UNWEIGHTED mean, no bias
 *                          correction (Otoum et al. 2025, sec. IV)
 * Defaults follow Flower (flwr.server.strategy): fedadam eta 0.1, eta_l 0.1, b1 0.9, b2 0.99,
 * tau 1e-9; fedyogi eta 0.01, eta_l 0.0316, b1 0.9, b2 0.99, tau 1e-3; fedadagrad eta 0.1,
 * eta_l 0.1, tau 1e-9; fedavgm server_lr 1, server_momentum 0. No Flower bias correction either. */
enum fmq_strategy_kind {
    FMQ_STRAT_FEDAVG = 1,
    FMQ_STRAT_FEDPROX,
    FMQ_STRAT_FEDAVGM,
    FMQ_STRAT_FEDADAM,
    FMQ_STRAT_FEDYOGI,
    FMQ_STRAT_FEDADAGRAD,
    FMQ_STRAT_FEDOPT,
    FMQ_STRAT_GSFS,
};

struct fmq_strategy_params {
    double server_lr;       /* fedavg family step */
    double server_momentum; /* fedavgm */
    double eta;             /* adaptive server learning rate */
    double eta_l;           /* client learning rate announced to agents (0 = agent's own) */
    double beta_1, beta_2;  /* adaptive moment decay */
    double tau;             /* adaptivity floor */
    double proximal_mu;     /* fedprox: proximal term weight, announced to agents */
    int uniform;            /* weights uniform instead of example counts */
};

const char *fmq_strategy_name(int kind);
int fmq_strategy_parse(const char *name, int *kind);
/* Flower's defaults for kind (FMQ_EINVAL for an unknown kind). */
int fmq_strategy_defaults(int kind, struct fmq_strategy_params *p);

struct fmq_server_opt {
    int kind;
    struct fmq_strategy_params p;
    size_t dim;
    double *m, *v; /* owned state */
    long t;        /* aggregations applied */
};
int fmq_server_opt_init(struct fmq_server_opt *o, int kind, const struct fmq_strategy_params *p,
                        size_t dim);
void fmq_server_opt_free(struct fmq_server_opt *o);
/* theta += step(Delta); delta is the aggregate model change (dim values). */
void fmq_server_opt_apply(struct fmq_server_opt *o, float *theta, const double *delta);

/* Aggregate model change of what fmq_fedavg_add accumulated: out = acc / total_w. */
int fmq_fedavg_mean(const struct fmq_fedavg *s, double *out);
