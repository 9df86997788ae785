/* Server-side optimizers of the FedOpt family and FedAvg(M) (equations and references in
 * strategy.h). State is kept in double so a long run does not drift from float rounding. */
#include "fedmq/common.h"
#include "fedmq/strategy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"?",       "fedavg",     "fedprox", "fedavgm", "fedadam",
                                    "fedyogi", "fedadagrad", "fedopt",  "gsfs"};

const char *fmq_strategy_name(int kind)
{
    return kind >= FMQ_STRAT_FEDAVG && kind <= FMQ_STRAT_GSFS ? names[kind] : "?";
}

int fmq_strategy_parse(const char *name, int *kind)
{
    for (int i = FMQ_STRAT_FEDAVG; i <= FMQ_STRAT_GSFS; i++)
        if (strcmp(name, names[i]) == 0) {
            *kind = i;
            return 0;
        }
    return FMQ_EINVAL;
}

int fmq_strategy_defaults(int kind, struct fmq_strategy_params *p)
{
    memset(p, 0, sizeof *p);
    p->server_lr = 1.0;
    switch (kind) {
    case FMQ_STRAT_FEDAVG:
    case FMQ_STRAT_GSFS:
    case FMQ_STRAT_FEDAVGM:
        break;
    case FMQ_STRAT_FEDPROX:
        p->proximal_mu = 0.1;
        break; /* Flower requires it; 0.1 is mid-range */
    case FMQ_STRAT_FEDADAM:
    case FMQ_STRAT_FEDOPT:
        p->eta = 0.1, p->eta_l = 0.1, p->beta_1 = 0.9, p->beta_2 = 0.99, p->tau = 1e-9;
        p->uniform = kind == FMQ_STRAT_FEDOPT;
        break;
    case FMQ_STRAT_FEDYOGI:
        p->eta = 0.01, p->eta_l = 0.0316, p->beta_1 = 0.9, p->beta_2 = 0.99, p->tau = 1e-3;
        break;
    case FMQ_STRAT_FEDADAGRAD:
        p->eta = 0.1, p->eta_l = 0.1, p->tau = 1e-9;
        break;
    default:
        return FMQ_EINVAL;
    }
    return 0;
}

int fmq_server_opt_init(struct fmq_server_opt *o, int kind, const struct fmq_strategy_params *p,
                        size_t dim)
{
    memset(o, 0, sizeof *o);
    if (kind < FMQ_STRAT_FEDAVG || kind > FMQ_STRAT_GSFS || dim == 0) return FMQ_EINVAL;
    o->kind = kind;
    o->p = *p;
    o->dim = dim;
    o->m = calloc(dim, sizeof *o->m);
    o->v = calloc(dim, sizeof *o->v);
    if (!o->m || !o->v) {
        fmq_server_opt_free(o);
        return FMQ_ENOMEM;
    }
    return 0;
}

void fmq_server_opt_free(struct fmq_server_opt *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void fmq_server_opt_apply(struct fmq_server_opt *o, float *theta, const double *d)
{
    const struct fmq_strategy_params *p = &o->p;
    o->t++;
    switch (o->kind) {
    case FMQ_STRAT_GSFS: /* the paper's theta + sum a_k delta_k when server_momentum is 0 */
    case FMQ_STRAT_FEDAVGM:
        for (size_t i = 0; i < o->dim; i++) {
            o->m[i] = p->server_momentum * o->m[i] + d[i];
            theta[i] += (float)(p->server_lr * o->m[i]);
        }
        return;
    case FMQ_STRAT_FEDADAM:
    case FMQ_STRAT_FEDOPT:
    case FMQ_STRAT_FEDYOGI:
    case FMQ_STRAT_FEDADAGRAD:
        for (size_t i = 0; i < o->dim; i++) {
            double g2 = d[i] * d[i];
            if (o->kind == FMQ_STRAT_FEDADAGRAD) {
                o->m[i] = d[i];
                o->v[i] += g2;
            } else {
                o->m[i] = p->beta_1 * o->m[i] + (1 - p->beta_1) * d[i];
                if (o->kind == FMQ_STRAT_FEDYOGI) {
                    double s = o->v[i] - g2;
                    o->v[i] -= (1 - p->beta_2) * g2 * (s > 0 ? 1 : s < 0 ? -1 : 0);
                } else
                    o->v[i] = p->beta_2 * o->v[i] + (1 - p->beta_2) * g2;
            }
            theta[i] += (float)(p->eta * o->m[i] / (sqrt(o->v[i]) + p->tau));
        }
        return;
    default: /* fedavg, fedprox */
        for (size_t i = 0; i < o->dim; i++) theta[i] += (float)(p->server_lr * d[i]);
    }
}
