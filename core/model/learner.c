/* The learner registry and the part of every learner that does not depend on its kind: live
 * scoring through the site's calibration, rescoring the calibration window when a model
 * arrives, validation metrics and sketches (see learner.h). */
#include "fedmq/learner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct fmq_learner_ops *const registry[] = {&fmq_learner_mlp, &fmq_learner_giot};

const struct fmq_learner_ops *fmq_learner_find(int kind)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (registry[i]->kind == kind) return registry[i];
    if (kind == FMQ_MODEL_LOGREG) return &fmq_learner_mlp; /* an MLP without hidden layers */
    return NULL;
}

size_t fmq_learner_kinds(int *kinds, size_t cap)
{
    size_t n = sizeof registry / sizeof registry[0];
    for (size_t i = 0; i < n && i < cap; i++) kinds[i] = registry[i]->kind;
    return n;
}

uint32_t fmq_learner_ingest(struct fmq_learner *l, const struct fmq_flow *f)
{
    return l->ops->ingest(l, f);
}

void fmq_learner_cfg_default(struct fmq_learner_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->buffer = 50000;
    c->max_devices = 4096;
    c->val_fraction = 0.2;
    c->val_max = 2000;
    fmq_train_opts_default(&c->train);
    c->giot_steps = 50;
    c->giot_batch = 16;
    c->giot_lr = 3e-3f;
    c->giot_cls_weight = 1.0f;
    c->giot_cls_balance = 0.5f;
    c->explain_fields = 3;
    c->predict_rate = 20;
    c->seed = 1;
    fmq_calib_cfg_default(&c->calib);
}

int fmq_learner_init(struct fmq_learner *l, int kind, const struct fmq_learner_cfg *cfg)
{
    const struct fmq_learner_ops *ops = fmq_learner_find(kind);
    size_t w = (size_t)cfg->calib.window, v = cfg->val_max;
    size_t all = (size_t)((double)cfg->buffer * cfg->val_fraction) + 1;
    int rc;
    memset(l, 0, sizeof *l);
    if (!ops || ops->version != FMQ_LEARNER_OPS_VERSION) return FMQ_EINVAL;
    l->ops = ops;
    l->cfg = *cfg;
    if (all > v) v = all; /* kinds that validate every held row (mlp) get room for them */
    l->vcap = v;
    if ((rc = fmq_calib_init(&l->cal, &cfg->calib)) != 0) return rc;
    l->vscore = malloc(v * FMQ_NCH * sizeof *l->vscore);
    l->vlab = malloc(v);
    l->scratch = malloc(v * sizeof *l->scratch);
    l->slots = malloc(w * sizeof *l->slots);
    l->sbuf = malloc(w * FMQ_NCH * sizeof *l->sbuf);
    if (!l->vscore || !l->vlab || !l->scratch || !l->slots || !l->sbuf) return FMQ_ENOMEM;
    return ops->init(l);
}

void fmq_learner_free(struct fmq_learner *l)
{
    if (l->ops) l->ops->free(l);
    fmq_calib_free(&l->cal);
    free(l->vscore);
    free(l->vlab);
    free(l->scratch);
    free(l->slots);
    free(l->sbuf);
    memset(l, 0, sizeof *l);
}

int fmq_learner_adopt(struct fmq_learner *l, const struct fmq_global *g, const struct fmq_rule *r,
                      char *err, size_t errlen)
{
    struct fmq_calib *c = &l->cal;
    int rc;
    if (l->personal) { /* the personal model keeps scoring until it is trained anew */
        rc = l->ops->adopt(l, g, err, errlen);
        if (rc != 0) return rc;
        l->version = g->version;
        if (l->ops->personalise(l, -1)) return 0;
        l->personal = 0; /* another shape: back to the global model and the fleet's rule */
    }
    fmq_calib_remember_ranks(c); /* with the old model's scores, before they are replaced */
    rc = l->ops->adopt(l, g, err, errlen);
    if (rc != 0) return rc;
    l->have_model = 1;
    l->version = g->version;
    fmq_calib_set_model(c, l->ops->channels(l), r);
    if (c->n) { /* the window's flows under the new model: a new scale, new thresholds */
        memcpy(l->slots, c->slot, c->n * sizeof *l->slots);
        l->ops->score(l, l->slots, c->n, l->sbuf);
        memcpy(c->score, l->sbuf, c->n * FMQ_NCH * sizeof *c->score);
    }
    fmq_calib_recompute(c, 1);
    return 0;
}

uint32_t fmq_learner_observe(struct fmq_learner *l, const struct fmq_flow *f, struct fmq_verdict *v)
{
    uint32_t slot = l->ops->ingest(l, f);
    float s[FMQ_NCH];
    if (!l->have_model) {
        for (int ch = 0; ch < FMQ_NCH; ch++) v->score[ch] = NAN, v->thr[ch] = INFINITY;
        v->alert = v->why = 0;
        v->state = FMQ_CALIB_LEARNING;
        return slot;
    }
    l->ops->score(l, &slot, 1, s);
    /* the flow is judged by the thresholds in force when it arrived, then joins the window */
    fmq_calib_verdict(&l->cal, s, v);
    fmq_calib_push(&l->cal, slot, f->ts, s, f->label);
    return slot;
}

int fmq_learner_personalise(struct fmq_learner *l)
{
    size_t n = l->ops->val_scores(l, 1, l->vscore, l->vlab, l->vcap);
    int channels = l->ops->channels(l);
    double share = fmq_rule_share(l->cfg.calib.budget, channels);
    float thr[FMQ_NCH];
    for (int ch = 0; ch < FMQ_NCH; ch++) {
        size_t k = 0;
        thr[ch] = INFINITY;
        if (!(channels & FMQ_CH_BIT(ch))) continue;
        for (size_t i = 0; i < n; i++)
            if (l->vlab[i] == FMQ_LABEL_BENIGN && isfinite(l->vscore[i * FMQ_NCH + ch]))
                l->scratch[k++] = l->vscore[i * FMQ_NCH + ch];
        if (k < (size_t)l->cfg.calib.min_eligible) return FMQ_EINVAL; /* too few to know */
        thr[ch] = fmq_quantile(l->scratch, k, 1.0 - share);
    }
    l->ops->personalise(l, 1);
    l->personal = 1;
    l->have_model = 1;
    fmq_calib_fix(&l->cal, channels, thr);
    return 0;
}

/* Validation keeps its meaning across fleet rules (GSFS's performance trigger and the agents'
 * reported metrics compare it round to round) and is read off the learner's primary channel: a
 * novelty channel cut at the threshold that lets the budget of the validation split's flows not
 * labelled malicious through, a supervised channel at its static threshold. F1 when malicious flows
 * are labelled, else accuracy; unlabelled flows count as normal, as the threshold takes them. */
void fmq_learner_validate(struct fmq_learner *l, int local, struct fmq_local_metrics *m,
                          struct fmq_sketch *sk)
{
    size_t n = l->ops->val_scores(l, local, l->vscore, l->vlab, l->vcap), nb = 0;
    int ch = l->ops->primary;
    struct fmq_confusion cm = {0};
    struct fmq_scores sc;
    float thr = l->cfg.calib.static_sup;
    double mean = 0;

    memset(m, 0, sizeof *m);
    if (sk) memset(sk, 0, sizeof *sk);
    if (n == 0) return;
    if (ch == FMQ_CH_NOV) {
        for (size_t i = 0; i < n; i++)
            if (l->vlab[i] != FMQ_LABEL_MALICIOUS) l->scratch[nb++] = l->vscore[i * FMQ_NCH + ch];
        if (nb == 0) /* every validation flow is labelled malicious: no normal to learn */
            for (size_t i = 0; i < n; i++) l->scratch[nb++] = l->vscore[i * FMQ_NCH + ch];
        thr = fmq_quantile(l->scratch, nb, 1.0 - l->cfg.calib.budget);
    }
    for (size_t i = 0; i < n; i++) {
        float s = l->vscore[i * FMQ_NCH + ch];
        mean += s;
        fmq_confusion_add(&cm, l->vlab[i] == FMQ_LABEL_MALICIOUS,
                          ch == FMQ_CH_NOV ? s > thr : s >= thr);
    }
    fmq_scores_from(&cm, &sc);
    m->loss = (float)(mean / (double)n); /* mean score; callers report their training loss */
    m->accuracy = (float)sc.accuracy;
    m->f1 = (float)(cm.tp + cm.fn ? sc.f1 : sc.accuracy);
    m->n_val = n;
    if (sk) fmq_sketch_from(sk, l->vscore, l->vlab, n, l->ops->channels(l), l->scratch);
}
