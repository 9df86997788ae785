/* Optimizers over flat parameter/gradient arrays: SGD with heavy-ball momentum and Adam
 * (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", Algorithm 1, with bias
 * correction). Weight decay is L2 added to the gradient. */
#include "fedmq/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fmq_optim_init(struct fmq_optim *o, int kind, size_t n, float lr)
{
    memset(o, 0, sizeof *o);
    if (kind < FMQ_OPT_SGD || kind > FMQ_OPT_ADAMW || n == 0 || !(lr > 0)) return FMQ_EINVAL;
    o->kind = kind;
    o->lr = lr;
    o->momentum = 0.9f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->n = n;
    o->m = calloc(n, sizeof *o->m);
    o->v = kind != FMQ_OPT_SGD ? calloc(n, sizeof *o->v) : NULL;
    if (!o->m || (kind != FMQ_OPT_SGD && !o->v)) {
        fmq_optim_free(o);
        return FMQ_ENOMEM;
    }
    return 0;
}

void fmq_optim_free(struct fmq_optim *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void fmq_optim_reset(struct fmq_optim *o)
{
    memset(o->m, 0, o->n * sizeof *o->m);
    if (o->v) memset(o->v, 0, o->n * sizeof *o->v);
    o->t = 0;
}

void fmq_optim_step(struct fmq_optim *o, float *p, const float *g)
{
    o->t++;
    if (o->kind == FMQ_OPT_SGD) {
        for (size_t i = 0; i < o->n; i++) {
            float gi = g[i] + o->weight_decay * p[i];
            o->m[i] = o->momentum * o->m[i] + gi;
            p[i] -= o->lr * o->m[i];
        }
        return;
    }
    float c1 = 1.0f - powf(o->beta1, (float)o->t), c2 = 1.0f - powf(o->beta2, (float)o->t);
    for (size_t i = 0; i < o->n; i++) {
        float gi = o->kind == FMQ_OPT_ADAM ? g[i] + o->weight_decay * p[i] : g[i];
        float wd = o->kind == FMQ_OPT_ADAMW ? o->weight_decay * p[i] : 0.0f;
        o->m[i] = o->beta1 * o->m[i] + (1.0f - o->beta1) * gi;
        o->v[i] = o->beta2 * o->v[i] + (1.0f - o->beta2) * gi * gi;
        p[i] -= o->lr * ((o->m[i] / c1) / (sqrtf(o->v[i] / c2) + o->eps) + wd);
    }
}
