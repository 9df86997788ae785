/* The MLP (and logistic) learner: flow features (featurize.h) scored by a supervised model
 * (model.h) on one channel, FMQ_CH_SUP, the logit of P(malicious). Two rings: the labelled
 * rows training uses (cfg.buffer, oldest (1 - val_fraction) train, the newest validate) and the
 * features of every recent flow, labelled or not, which slots address (as many as the
 * calibration window holds). Alerts are explained by gradient x input on the normalised
 * features (Simonyan et al. 2014; Shrikumar et al. 2016). */
#include "fedmq/learner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mlp {
    struct fmq_model cur, local; /* global model in use, training copy */
    struct fmq_model pers;       /* personal model (fmq_learner_personalise) */
    int use_pers;                /* pers scores instead of cur */
    struct fmq_trainer tr;
    struct fmq_mlp_ws ws; /* scoring, batch 1 */
    struct fmq_featurizer fz;
    float *X, *y;  /* owned: labelled rows, cap x FMQ_FEAT_DIM and cap */
    uint32_t *idx; /* owned: cap, the session's split (train, then validation) */
    size_t cap, head, count;
    float *R; /* owned: features of the newest rcap flows, slot = row */
    size_t rcap, rhead;
    size_t ntrain, nval;
    struct fmq_train_opts o; /* this session's options */
    long chunks;             /* chunks trained in this session (GSFS) */
};

static struct mlp *M(struct fmq_learner *l)
{
    return l->impl;
}

static int mlp_init(struct fmq_learner *l)
{
    struct mlp *m = calloc(1, sizeof *m);
    if (!(l->impl = m)) return FMQ_ENOMEM;
    m->cap = l->cfg.buffer ? l->cfg.buffer : 1;
    m->rcap =
        l->cfg.recent > (size_t)l->cfg.calib.window ? l->cfg.recent : (size_t)l->cfg.calib.window;
    m->X = malloc(m->cap * FMQ_FEAT_DIM * sizeof(float));
    m->y = malloc(m->cap * sizeof(float));
    m->idx = malloc(m->cap * sizeof(uint32_t));
    m->R = malloc(m->rcap * FMQ_FEAT_DIM * sizeof(float));
    if (!m->X || !m->y || !m->idx || !m->R) return FMQ_ENOMEM;
    return fmq_feat_init(&m->fz, l->cfg.max_devices, 16);
}

static void drop_model(struct mlp *m)
{
    fmq_model_free(&m->pers);
    m->use_pers = 0;
    fmq_model_free(&m->cur);
    fmq_model_free(&m->local);
    fmq_trainer_free(&m->tr);
    fmq_mlp_ws_free(&m->ws);
}

static void mlp_free(struct fmq_learner *l)
{
    struct mlp *m = M(l);
    if (!m) return;
    drop_model(m);
    fmq_feat_free(&m->fz);
    free(m->X);
    free(m->y);
    free(m->idx);
    free(m->R);
    free(m);
    l->impl = NULL;
}

static int mlp_adopt(struct fmq_learner *l, const struct fmq_global *g, char *err, size_t errlen)
{
    struct mlp *m = M(l);
    const struct fmq_model *src = g->model;
    int rc;
    if (!src || !src->params ||
        (src->cfg.kind != FMQ_MODEL_MLP && src->cfg.kind != FMQ_MODEL_LOGREG)) {
        snprintf(err, errlen, "not an MLP or logistic model");
        return FMQ_EINVAL;
    }
    if (src->cfg.feat_version != FMQ_FEAT_VERSION || src->cfg.in_dim != FMQ_FEAT_DIM) {
        snprintf(err, errlen,
                 "global model uses feature version %d width %d, this agent %d width %d",
                 src->cfg.feat_version, src->cfg.in_dim, FMQ_FEAT_VERSION, FMQ_FEAT_DIM);
        return FMQ_EVERSION;
    }
    if (m->cur.params && memcmp(&src->cfg, &m->cur.cfg, sizeof src->cfg) == 0) {
        memcpy(m->cur.params, src->params, src->nparams * sizeof(float));
        memcpy(m->cur.norm_mean, src->norm_mean, (size_t)src->cfg.in_dim * sizeof(float));
        memcpy(m->cur.norm_std, src->norm_std, (size_t)src->cfg.in_dim * sizeof(float));
        m->cur.has_norm = src->has_norm;
        memcpy(m->cur.prof_mean, src->prof_mean, (size_t)src->cfg.in_dim * sizeof(float));
        memcpy(m->cur.prof_std, src->prof_std, (size_t)src->cfg.in_dim * sizeof(float));
        m->cur.has_prof = src->has_prof;
        return 0;
    }
    drop_model(m); /* another shape: nothing trained for the old one applies */
    if ((rc = fmq_model_copy(&m->cur, src)) || (rc = fmq_model_copy(&m->local, src)) ||
        (rc = fmq_trainer_init(&m->tr, src, &l->cfg.train, m->cap)) ||
        (rc = fmq_mlp_ws_init(&m->ws, src, 1)))
        return rc;
    if (src->cfg.window != m->fz.window) {
        fmq_feat_free(&m->fz);
        if ((rc = fmq_feat_init(&m->fz, l->cfg.max_devices, src->cfg.window)) != 0) return rc;
    }
    return 0;
}

static int mlp_channels(const struct fmq_learner *l)
{
    const struct mlp *m = l->impl;
    return FMQ_CH_BIT(FMQ_CH_SUP) | (m->cur.has_prof ? FMQ_CH_BIT(FMQ_CH_NOV) : 0);
}

static uint32_t mlp_ingest(struct fmq_learner *l, const struct fmq_flow *f)
{
    struct mlp *m = M(l);
    uint32_t slot = (uint32_t)m->rhead;
    float *x = m->R + (size_t)slot * FMQ_FEAT_DIM;
    fmq_feat_extract(&m->fz, f, x);
    m->rhead = (m->rhead + 1) % m->rcap;
    if (f->label != FMQ_LABEL_UNKNOWN) {
        memcpy(m->X + m->head * FMQ_FEAT_DIM, x, FMQ_FEAT_DIM * sizeof(float));
        m->y[m->head] = f->label == FMQ_LABEL_MALICIOUS ? 1.0f : 0.0f;
        m->head = (m->head + 1) % m->cap;
        if (m->count < m->cap) m->count++;
    }
    return slot;
}

static void mlp_new_context(struct fmq_learner *l)
{
    fmq_feat_reset(&M(l)->fz);
}

/* The model live scoring uses: the personal one when on, else the global one. */
static struct fmq_model *scorer(struct mlp *m)
{
    return m->use_pers ? &m->pers : &m->cur;
}

static void mlp_score(struct fmq_learner *l, const uint32_t *slots, size_t n, float *out)
{
    struct mlp *m = M(l);
    struct fmq_model *mod = scorer(m);
    for (size_t i = 0; i < n; i++) {
        const float *x = m->R + (size_t)slots[i] * FMQ_FEAT_DIM;
        out[i * FMQ_NCH + FMQ_CH_SUP] = fmq_model_logit(mod, &m->ws, x);
        out[i * FMQ_NCH + FMQ_CH_NOV] = mod->has_prof ? fmq_model_novelty(mod, x, NULL) : NAN;
    }
}

static int mlp_personalise(struct fmq_learner *l, int on)
{
    struct mlp *m = M(l);
    if (on == 1 && m->local.params) {
        if (!m->pers.params && fmq_model_copy(&m->pers, &m->local) != 0) return m->use_pers = 0;
        memcpy(m->pers.params, m->local.params, m->local.nparams * sizeof(float));
        memcpy(m->pers.norm_mean, m->local.norm_mean, FMQ_FEAT_DIM * sizeof(float));
        memcpy(m->pers.norm_std, m->local.norm_std, FMQ_FEAT_DIM * sizeof(float));
        memcpy(m->pers.prof_mean, m->local.prof_mean, FMQ_FEAT_DIM * sizeof(float));
        memcpy(m->pers.prof_std, m->local.prof_std, FMQ_FEAT_DIM * sizeof(float));
        m->pers.has_norm = m->local.has_norm;
        m->pers.has_prof = m->local.has_prof;
        m->use_pers = 1;
    } else if (on == 0)
        m->use_pers = 0;
    return m->use_pers;
}

/* Oldest (1 - val_fraction) of the labelled rows into idx[0..ntrain), the newest after them. */
static void split(struct fmq_learner *l)
{
    struct mlp *m = M(l);
    size_t start = (m->head + m->cap - m->count) % m->cap;
    m->nval = (size_t)floor((double)m->count * l->cfg.val_fraction);
    m->ntrain = m->count - m->nval;
    for (size_t i = 0; i < m->count; i++) m->idx[i] = (uint32_t)((start + i) % m->cap);
}

static size_t mlp_val_scores(struct fmq_learner *l, int local, float *out, int8_t *labels,
                             size_t cap)
{
    struct mlp *m = M(l);
    const struct fmq_model *mod = local ? &m->local : &m->cur;
    size_t n;
    split(l);
    n = m->nval < cap ? m->nval : cap;
    for (size_t i = 0; i < n; i++) { /* the newest n validation rows */
        uint32_t k = m->idx[m->ntrain + (m->nval - n) + i];
        const float *x = m->X + (size_t)k * FMQ_FEAT_DIM;
        out[i * FMQ_NCH + FMQ_CH_SUP] = fmq_model_logit(mod, &m->ws, x);
        out[i * FMQ_NCH + FMQ_CH_NOV] = mod->has_prof ? fmq_model_novelty(mod, x, NULL) : NAN;
        labels[i] = m->y[k] > 0.5f ? FMQ_LABEL_MALICIOUS : FMQ_LABEL_BENIGN;
    }
    return n;
}

struct reason {
    int feat;
    float contrib;
};

static size_t mlp_explain(struct fmq_learner *l, uint32_t slot, const struct fmq_verdict *v,
                          char *json, size_t cap, char *text, size_t tcap)
{
    struct mlp *m = M(l);
    struct reason top[3] = {{-1, 0}, {-1, 0}, {-1, 0}};
    struct fmq_model *mod = scorer(m);
    float dx[FMQ_FEAT_DIM], z = fmq_model_logit(mod, &m->ws, m->R + (size_t)slot * FMQ_FEAT_DIM);
    const float *xn = m->ws.acts; /* normalised input of that forward */
    float thr = v->thr[FMQ_CH_SUP];
    double pthr = isfinite(thr) ? fmq_sigmoid(thr) : 1.0;
    size_t n, tn;

    fmq_mlp_input_grad(mod, &m->ws, dx);
    for (int k = 0; k < FMQ_FEAT_DIM; k++) {
        float c = dx[k] * xn[k];
        for (int j = 0; j < 3; j++)
            if (top[j].feat < 0 || c > top[j].contrib) {
                memmove(&top[j + 1], &top[j], (size_t)(2 - j) * sizeof top[0]);
                top[j] = (struct reason){k, c};
                break;
            }
    }
    n = (size_t)snprintf(json, cap, ",\"score\":%.6f,\"threshold\":%.6g,\"reasons\":[",
                         fmq_sigmoid(z), pthr);
    tn = (size_t)snprintf(text, tcap, "P(malicious)=%.4f > %.4g; top factors:", fmq_sigmoid(z),
                          pthr);
    for (int j = 0; j < 3 && top[j].feat >= 0; j++) {
        const char *name = fmq_feat_name(top[j].feat);
        if (n < cap)
            n +=
                (size_t)snprintf(json + n, cap - n,
                                 "%s{\"feature\":\"%s\",\"normalised\":%.3f,\"contribution\":%.3f}",
                                 j ? "," : "", name, xn[top[j].feat], top[j].contrib);
        if (tn < tcap)
            tn += (size_t)snprintf(text + tn, tcap - tn, "%s %s (z=%.2f, %+.2f)", j ? "," : "",
                                   name, xn[top[j].feat], top[j].contrib);
    }
    if (n < cap) n += (size_t)snprintf(json + n, cap - n, "]");
    if (mod->has_prof && n < cap) { /* the features least like the fleet's benign traffic */
        const float *raw = m->R + (size_t)slot * FMQ_FEAT_DIM;
        float c[FMQ_FEAT_DIM], nov = fmq_model_novelty(mod, raw, c);
        int un[3] = {-1, -1, -1};
        for (int k = 0; k < FMQ_FEAT_DIM; k++)
            for (int j = 0; j < 3; j++)
                if (un[j] < 0 || c[k] > c[un[j]]) {
                    memmove(&un[j + 1], &un[j], (size_t)(2 - j) * sizeof un[0]);
                    un[j] = k;
                    break;
                }
        char tj[32] = "null"; /* the channel cannot alert yet: null, not a sentinel */
        if (isfinite(v->thr[FMQ_CH_NOV])) snprintf(tj, sizeof tj, "%.3f", v->thr[FMQ_CH_NOV]);
        n += (size_t)snprintf(json + n, cap - n,
                              ",\"novelty\":%.3f,\"novelty_threshold\":%s,"
                              "\"unusual\":[",
                              nov, tj);
        if (v->why & FMQ_CH_BIT(FMQ_CH_NOV) && tn < tcap)
            tn += (size_t)snprintf(text + tn, tcap - tn,
                                   "; novelty %.1f > %.1f; unlike the "
                                   "fleet's benign flows:",
                                   nov, v->thr[FMQ_CH_NOV]);
        for (int j = 0; j < 3 && n < cap; j++) {
            const char *name = fmq_feat_name(un[j]);
            n +=
                (size_t)snprintf(json + n, cap - n,
                                 "%s{\"feature\":\"%s\",\"value\":%.3g,\"benign_mean\":%.3g,"
                                 "\"nll\":%.2f}",
                                 j ? "," : "", name, raw[un[j]], m->cur.prof_mean[un[j]], c[un[j]]);
            if (v->why & FMQ_CH_BIT(FMQ_CH_NOV) && tn < tcap)
                tn += (size_t)snprintf(text + tn, tcap - tn, "%s %s=%.3g (benign mean %.3g)",
                                       j ? "," : "", name, raw[un[j]], mod->prof_mean[un[j]]);
        }
        if (n < cap) n += (size_t)snprintf(json + n, cap - n, "]");
    }
    return n < cap ? n : cap - 1;
}

static size_t mlp_held(const struct fmq_learner *l)
{
    return ((const struct mlp *)l->impl)->count;
}

static int mlp_train_begin(struct fmq_learner *l, const struct fmq_client_plan *plan,
                           size_t *ntrain)
{
    struct mlp *m = M(l);
    if (!m->cur.params) return FMQ_EINVAL;
    split(l);
    memcpy(m->local.params, m->cur.params, m->cur.nparams * sizeof(float));
    memcpy(m->local.norm_mean, m->cur.norm_mean, FMQ_FEAT_DIM * sizeof(float));
    memcpy(m->local.norm_std, m->cur.norm_std, FMQ_FEAT_DIM * sizeof(float));
    m->local.has_norm = m->cur.has_norm;
    memcpy(m->local.prof_mean, m->cur.prof_mean, FMQ_FEAT_DIM * sizeof(float));
    memcpy(m->local.prof_std, m->cur.prof_std, FMQ_FEAT_DIM * sizeof(float));
    m->local.has_prof = m->cur.has_prof;
    m->o = l->cfg.train;
    if (plan->lr > 0) m->o.lr = plan->lr;
    m->o.proximal_mu = plan->proximal_mu;
    m->o.prox_ref = plan->proximal_mu > 0 ? m->cur.params : NULL;
    m->chunks = 0;
    *ntrain = m->ntrain;
    return m->ntrain ? 0 : FMQ_EINVAL;
}

static int mlp_train_steps(struct fmq_learner *l, long steps, float *loss)
{
    struct mlp *m = M(l);
    struct fmq_train_opts o = m->o;
    uint64_t base = l->cfg.train.seed * 6364136223846793005ULL;
    if (steps == 0) /* one synchronous round: the configured epochs */
        o.seed = base + l->version;
    else {        /* a GSFS chunk of the session, its optimizer state carried over */
        split(l); /* flows arrived since the last chunk */
        o.epochs = 1;
        o.max_steps = steps;
        o.resume = m->chunks > 0;
        o.seed = base + l->version * 1000003ULL + (uint64_t)m->chunks;
        m->chunks++;
    }
    return fmq_train(&m->tr, &m->local, &o, m->X, m->y, m->idx, m->ntrain, loss);
}

static long mlp_round_steps(const struct fmq_learner *l, int *batch)
{
    const struct mlp *m = l->impl;
    size_t b = (size_t)l->cfg.train.batch;
    *batch = l->cfg.train.batch;
    return (long)l->cfg.train.epochs * (long)((m->ntrain + b - 1) / b);
}

static int mlp_layer_norms(const struct fmq_learner *l, double *norms, int max)
{
    const struct mlp *m = l->impl;
    if (m->local.nlayers > max) return 0;
    fmq_model_layer_norms(&m->local, m->tr.ws.grads, norms);
    return m->local.nlayers;
}

static float *mlp_params(struct fmq_learner *l, int local, size_t *n)
{
    struct mlp *m = M(l);
    *n = m->cur.nparams;
    return local ? m->local.params : m->cur.params;
}

static int mlp_stats(struct fmq_learner *l, struct fmq_moments *mo, struct fmq_moments *ben,
                     size_t *n)
{
    struct mlp *m = M(l);
    split(l);
    fmq_moments_clear(mo);
    fmq_moments_clear(ben);
    for (size_t i = 0; i < m->ntrain; i++) {
        const float *x = m->X + (size_t)m->idx[i] * FMQ_FEAT_DIM;
        fmq_moments_add(mo, x);
        if (m->y[m->idx[i]] < 0.5f) fmq_moments_add(ben, x);
    }
    *n = m->ntrain;
    return 0;
}

const struct fmq_learner_ops fmq_learner_mlp = {
    .version = FMQ_LEARNER_OPS_VERSION,
    .name = "mlp",
    .kind = FMQ_MODEL_MLP,
    .primary = FMQ_CH_SUP,
    .init = mlp_init,
    .free = mlp_free,
    .adopt = mlp_adopt,
    .channels = mlp_channels,
    .ingest = mlp_ingest,
    .new_context = mlp_new_context,
    .score = mlp_score,
    .val_scores = mlp_val_scores,
    .explain = mlp_explain,
    .held = mlp_held,
    .train_begin = mlp_train_begin,
    .train_steps = mlp_train_steps,
    .round_steps = mlp_round_steps,
    .layer_norms = mlp_layer_norms,
    .params = mlp_params,
    .personalise = mlp_personalise,
    .stats = mlp_stats,
};
