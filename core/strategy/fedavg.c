/* FedAvg aggregation (see strategy.h for the equation and reference). */
#include "fedmq/strategy.h"
#include "fedmq/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fmq_fedavg_init(struct fmq_fedavg *s, size_t dim)
{
    memset(s, 0, sizeof *s);
    if (dim == 0) return FMQ_EINVAL;
    s->acc = calloc(dim, sizeof *s->acc);
    if (!s->acc) return FMQ_ENOMEM;
    s->dim = dim;
    return 0;
}

void fmq_fedavg_free(struct fmq_fedavg *s)
{
    free(s->acc);
    memset(s, 0, sizeof *s);
}

void fmq_fedavg_reset(struct fmq_fedavg *s)
{
    memset(s->acc, 0, s->dim * sizeof *s->acc);
    s->total_w = 0;
    s->count = 0;
}

int fmq_fedavg_add(struct fmq_fedavg *s, const float *delta, double weight)
{
    if (!(weight > 0) || !isfinite(weight)) return FMQ_EINVAL;
    for (size_t i = 0; i < s->dim; i++) s->acc[i] += weight * delta[i];
    s->total_w += weight;
    s->count++;
    return 0;
}

int fmq_fedavg_apply(const struct fmq_fedavg *s, float *params, float server_lr)
{
    if (s->count == 0 || !(s->total_w > 0)) return FMQ_EINVAL;
    for (size_t i = 0; i < s->dim; i++) params[i] += (float)(server_lr * s->acc[i] / s->total_w);
    return 0;
}

int fmq_fedavg_mean(const struct fmq_fedavg *s, double *out)
{
    if (s->count == 0 || !(s->total_w > 0)) return FMQ_EINVAL;
    for (size_t i = 0; i < s->dim; i++) out[i] = s->acc[i] / s->total_w;
    return 0;
}
