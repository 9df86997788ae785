/* Local training loop: shuffled mini-batches (seeded), class-weighted BCE, one optimizer step
 * per batch. All buffers are sized in fmq_trainer_init; a training run allocates nothing. */
#include "fedmq/model.h"

#include <stdlib.h>
#include <string.h>

void fmq_train_opts_default(struct fmq_train_opts *o)
{
    o->epochs = 3;
    o->batch = 64;
    o->optim = FMQ_OPT_ADAM;
    o->lr = 1e-3f;
    o->momentum = 0.9f;
    o->weight_decay = 0.0f;
    o->pos_weight = 0.0f;
    o->seed = 1;
    o->max_steps = 0;
    o->proximal_mu = 0.0f;
    o->prox_ref = NULL;
    o->resume = 0;
}

int fmq_trainer_init(struct fmq_trainer *t, const struct fmq_model *m,
                     const struct fmq_train_opts *o, size_t cap)
{
    int rc;
    memset(t, 0, sizeof *t);
    if (cap == 0 || o->batch < 1 || o->batch > 65536) return FMQ_EINVAL;
    if ((rc = fmq_mlp_ws_init(&t->ws, m, o->batch)) != 0) return rc;
    if ((rc = fmq_optim_init(&t->opt, o->optim, m->nparams, o->lr)) != 0) goto fail;
    t->cap = cap;
    t->perm = malloc(cap * sizeof *t->perm);
    t->xb = malloc((size_t)o->batch * m->cfg.in_dim * sizeof(float));
    t->yb = malloc((size_t)o->batch * sizeof(float));
    t->wb = malloc((size_t)o->batch * sizeof(float));
    if (!t->perm || !t->xb || !t->yb || !t->wb) {
        rc = FMQ_ENOMEM;
        goto fail;
    }
    return 0;
fail:
    fmq_trainer_free(t);
    return rc;
}

void fmq_trainer_free(struct fmq_trainer *t)
{
    fmq_mlp_ws_free(&t->ws);
    fmq_optim_free(&t->opt);
    free(t->perm);
    free(t->xb);
    free(t->yb);
    free(t->wb);
    memset(t, 0, sizeof *t);
}

int fmq_train(struct fmq_trainer *t, struct fmq_model *m, const struct fmq_train_opts *o,
              const float *X, const float *y, const uint32_t *idx, size_t n, float *loss)
{
    struct fmq_rng r;
    size_t npos = 0;
    float wpos, wneg = 1.0f;
    int d = m->cfg.in_dim;
    double last = 0;

    if (n == 0 || n > t->cap || o->batch > t->ws.max_batch) return FMQ_EINVAL;
    for (size_t i = 0; i < n; i++) {
        t->perm[i] = idx ? idx[i] : (uint32_t)i;
        npos += y[t->perm[i]] > 0.5f;
    }
    /* Balanced weighting (King & Zeng 2001 style): each class carries equal total weight;
     * clamped so a handful of positives cannot dominate. */
    if (o->pos_weight > 0)
        wpos = o->pos_weight;
    else if (npos == 0 || npos == n)
        wpos = 1.0f;
    else {
        wpos = (float)(n - npos) / (float)npos;
        if (wpos > 100.0f) wpos = 100.0f;
        if (wpos < 1.0f) {
            wneg = 1.0f / wpos;
            if (wneg > 100.0f) wneg = 100.0f;
            wpos = 1.0f;
        }
    }
    if (!o->resume) fmq_optim_reset(&t->opt);
    t->opt.lr = o->lr;
    t->opt.momentum = o->momentum;
    t->opt.weight_decay = o->weight_decay;
    fmq_rng_seed(&r, o->seed, 0x747261696eULL);
    long steps = 0;
    for (int e = 0; e < o->epochs && !(o->max_steps > 0 && steps >= o->max_steps); e++) {
        double acc = 0;
        size_t nb = 0;
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = fmq_rng_below(&r, (uint32_t)(i + 1));
            uint32_t tmp = t->perm[i];
            t->perm[i] = t->perm[j];
            t->perm[j] = tmp;
        }
        for (size_t s = 0; s < n && !(o->max_steps > 0 && steps >= o->max_steps);
             s += (size_t)o->batch, steps++) {
            int B = (int)(n - s < (size_t)o->batch ? n - s : (size_t)o->batch);
            for (int b = 0; b < B; b++) {
                uint32_t k = t->perm[s + (size_t)b];
                memcpy(t->xb + (size_t)b * d, X + (size_t)k * d, (size_t)d * sizeof(float));
                t->yb[b] = y[k] > 0.5f ? 1.0f : 0.0f;
                t->wb[b] = t->yb[b] > 0 ? wpos : wneg;
            }
            fmq_model_normalize(m, t->xb, t->xb, B);
            memset(t->ws.grads, 0, m->nparams * sizeof(float));
            fmq_mlp_forward(m, &t->ws, t->xb, B);
            acc += fmq_mlp_backward(m, &t->ws, t->yb, t->wb, B);
            nb++;
            if (o->proximal_mu > 0 && o->prox_ref)
                for (size_t i = 0; i < m->nparams; i++)
                    t->ws.grads[i] += o->proximal_mu * (m->params[i] - o->prox_ref[i]);
            fmq_optim_step(&t->opt, m->params, t->ws.grads);
        }
        if (nb) last = acc / (double)nb;
    }
    if (loss) *loss = (float)last;
    for (size_t i = 0; i < m->nparams; i++)
        if (m->params[i] != m->params[i] || m->params[i] - m->params[i] != 0) return FMQ_ERANGE;
    return 0;
}
