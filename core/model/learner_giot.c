/* The GIoT learner: every flow, labelled or not, goes into a bounded token stream linked per
 * device (giot.h); the transformer scores it on the novelty channel (FMQ_CH_NOV, the negative
 * log-likelihood of its 10 tokens given the device's recent flows) and, when the model has a
 * supervised head, on FMQ_CH_SUP (the head's logit of malicious against benign), both from one
 * forward pass. Training is next-token prediction, which needs no labels, plus the head's loss
 * on labelled flows; in adapter mode only the LoRA adapters move. Alerts carry the model's own
 * explanation (least likely fields, their probability, the expected value) and, rate-limited,
 * its predicted next flow for the device. The optimizer state carries over from round to round
 * as it always has (AdamW, one trainer per learner). */
#include "fedmq/giot.h"
#include "fedmq/learner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct giot {
    struct fmq_giot_stream gs;
    struct fmq_gpt cur, local; /* global model in use, training copy */
    struct fmq_gpt pers;       /* personal model (fmq_learner_personalise) */
    int use_pers;
    struct fmq_giot_trainer tr;     /* training and batch scoring (giot_batch windows) */
    struct fmq_giot_trainer sc;     /* live scoring and explanations (one window) */
    uint32_t sc_slot;               /* the flow sc's activations hold, UINT32_MAX when none */
    const struct fmq_gpt *sc_model; /* ... and the model that scored it */
    float sc_nll;
    uint32_t *idx; /* owned: buffer, the split (train, then validation) */
    size_t ntrain, nval;
    struct fmq_ratelimit predict_rl;
    uint64_t predicted;
};

static struct giot *G(struct fmq_learner *l)
{
    return l->impl;
}

static int giot_init(struct fmq_learner *l)
{
    struct giot *g = calloc(1, sizeof *g);
    size_t cap = l->cfg.buffer;
    if (cap < l->cfg.recent) cap = l->cfg.recent;
    if (cap < (size_t)l->cfg.calib.window) cap = (size_t)l->cfg.calib.window;
    int rc;
    if (!(l->impl = g)) return FMQ_ENOMEM;
    if ((rc = fmq_giot_stream_init(&g->gs, cap, l->cfg.max_devices)) != 0) return rc;
    if (!(g->idx = malloc(cap * sizeof *g->idx))) return FMQ_ENOMEM;
    g->predict_rl = (struct fmq_ratelimit){1.0, (int)l->cfg.predict_rate, 0, 0, 0};
    g->sc_slot = UINT32_MAX;
    return 0;
}

static void drop_model(struct giot *g)
{
    fmq_gpt_free(&g->pers);
    g->use_pers = 0;
    fmq_gpt_free(&g->cur);
    fmq_gpt_free(&g->local);
    fmq_giot_trainer_free(&g->tr);
    fmq_giot_trainer_free(&g->sc);
}

static void giot_free(struct fmq_learner *l)
{
    struct giot *g = G(l);
    if (!g) return;
    drop_model(g);
    fmq_giot_stream_free(&g->gs);
    free(g->idx);
    free(g);
    l->impl = NULL;
}

static int same_shape(const struct fmq_gpt *x, const struct fmq_gpt *y)
{
    return x->params && memcmp(&x->cfg, &y->cfg, sizeof x->cfg) == 0 &&
           x->lora_rank == y->lora_rank;
}

static void copy_weights(struct fmq_gpt *dst, const struct fmq_gpt *src)
{
    memcpy(dst->params, src->params, src->nparams * sizeof(float));
    if (src->lora_rank) {
        memcpy(dst->lora, src->lora, src->lora_n * sizeof(float));
        dst->lora_alpha = src->lora_alpha;
    }
}

static int giot_adopt(struct fmq_learner *l, const struct fmq_global *gl, char *err, size_t errlen)
{
    struct giot *g = G(l);
    const struct fmq_gpt *m = gl->gpt;
    int rc, K = gl->giot_context;
    float lr = gl->client.lr > 0 ? gl->client.lr : l->cfg.giot_lr;
    g->sc_slot = UINT32_MAX; /* new weights: no activation of the old ones explains a flow */
    if (!m || !m->params) {
        snprintf(err, errlen, "not a GIoT model");
        return FMQ_EINVAL;
    }
    if (!same_shape(&g->cur, m) || g->tr.K != K) {
        drop_model(g); /* a different model: drop every trace of the old one */
        if ((rc = fmq_gpt_copy(&g->cur, m)) || (rc = fmq_gpt_copy(&g->local, m)) ||
            (rc = fmq_giot_trainer_init(&g->tr, m, l->cfg.giot_batch, K, lr, 0.01f, l->cfg.seed)) ||
            (rc = fmq_giot_trainer_init(&g->sc, m, 1, K, lr, 0.01f, l->cfg.seed))) {
            snprintf(err, errlen, "cannot hold a GIoT model with context %d: %s", K,
                     fmq_strerror(rc));
            return rc;
        }
    } else
        copy_weights(&g->cur, m);
    g->tr.opt.lr = lr;
    g->tr.cls_weight = m->cfg.classes >= 2 ? l->cfg.giot_cls_weight : 0.0f;
    g->tr.cls_balance = l->cfg.giot_cls_balance;
    return 0;
}

static int giot_channels(const struct fmq_learner *l)
{
    const struct giot *g = l->impl;
    return FMQ_CH_BIT(FMQ_CH_NOV) | (g->cur.cfg.classes >= 2 ? FMQ_CH_BIT(FMQ_CH_SUP) : 0);
}

static uint32_t giot_ingest(struct fmq_learner *l, const struct fmq_flow *f)
{
    G(l)->sc_slot = UINT32_MAX; /* the window of a slot changes as the stream moves */
    return (uint32_t)fmq_giot_stream_push(&G(l)->gs, f);
}

static void giot_new_context(struct fmq_learner *l)
{
    fmq_giot_stream_forget_devices(&G(l)->gs);
}

static void score_with(struct giot *g, const struct fmq_gpt *m, const uint32_t *slots, size_t n,
                       float *out)
{
    struct fmq_giot_trainer *t = n == 1 ? &g->sc : &g->tr;
    fmq_giot_score_both(t, m, &g->gs.d, slots, n, out + FMQ_CH_NOV,
                        m->cfg.classes >= 2 ? out + FMQ_CH_SUP : NULL, FMQ_NCH);
    if (n == 1) { /* an alert on this flow explains from these activations (giot_explain) */
        g->sc_slot = slots[0];
        g->sc_model = m;
        g->sc_nll = out[FMQ_CH_NOV];
    }
    if (m->cfg.classes < 2)
        for (size_t i = 0; i < n; i++) out[i * FMQ_NCH + FMQ_CH_SUP] = NAN;
}

static void giot_score(struct fmq_learner *l, const uint32_t *slots, size_t n, float *out)
{
    struct giot *g = G(l);
    score_with(g, g->use_pers ? &g->pers : &g->cur, slots, n, out);
}

static int giot_personalise(struct fmq_learner *l, int on)
{
    struct giot *g = G(l);
    g->sc_slot = UINT32_MAX;
    if (on == 1 && g->local.params) {
        if (!g->pers.params && fmq_gpt_copy(&g->pers, &g->local) != 0) return g->use_pers = 0;
        copy_weights(&g->pers, &g->local);
        g->use_pers = 1;
    } else if (on == 0)
        g->use_pers = 0;
    return g->use_pers;
}

/* The newest min(val_max, n x val_fraction) flows of the stream (at least one) validate; the
 * older ones train: idx[0..ntrain) then idx[ntrain..ntrain + nval). */
static void split(struct fmq_learner *l)
{
    struct giot *g = G(l);
    const struct fmq_giot_stream *s = &g->gs;
    size_t n = s->d.n, nval = (size_t)floor((double)n * l->cfg.val_fraction);
    size_t start = (s->head + s->cap - n) % s->cap;
    if (nval > l->cfg.val_max) nval = l->cfg.val_max;
    if (nval < 1) nval = n ? 1 : 0;
    g->ntrain = n - nval;
    g->nval = nval;
    for (size_t i = 0; i < n; i++) g->idx[i] = (uint32_t)((start + i) % s->cap);
}

static size_t giot_val_scores(struct fmq_learner *l, int local, float *out, int8_t *labels,
                              size_t cap)
{
    struct giot *g = G(l);
    size_t n;
    split(l);
    n = g->nval < cap ? g->nval : cap;
    score_with(g, local ? &g->local : &g->cur, g->idx + g->ntrain + (g->nval - n), n, out);
    for (size_t i = 0; i < n; i++) labels[i] = g->gs.d.label[g->idx[g->ntrain + (g->nval - n) + i]];
    return n;
}

static size_t giot_explain(struct fmq_learner *l, uint32_t slot, const struct fmq_verdict *v,
                           char *json, size_t cap, char *text, size_t tcap)
{
    struct giot *g = G(l);
    char why[600], next[600], esc[700];
    const struct fmq_gpt *mod = g->use_pers ? &g->pers : &g->cur;
    float nll;
    if (g->sc_slot == slot && g->sc_model == mod) { /* just scored: no second forward pass */
        nll = g->sc_nll;
        fmq_giot_explain_last(&g->sc, mod, l->cfg.explain_fields, why, sizeof why);
    } else
        nll = fmq_giot_explain(&g->sc, mod, &g->gs.d, slot, l->cfg.explain_fields, why, sizeof why);
    g->sc_slot = UINT32_MAX; /* predicting the next flow below reuses sc */
    float thr = v->thr[FMQ_CH_NOV], head = v->score[FMQ_CH_SUP];
    int predict = l->cfg.predict_rate <= 0 || fmq_ratelimit_ok(&g->predict_rl);
    size_t n;
    char tj[32] = "null"; /* no threshold yet (a site learning with no fleet rule): null */
    if (isfinite(thr)) snprintf(tj, sizeof tj, "%.4f", thr);
    n = (size_t)snprintf(json, cap, ",\"score\":%.4f,\"threshold\":%s,\"p_malicious\":%.4f", nll,
                         tj, isnan(head) ? 0.0 : (double)fmq_sigmoid(head));
    snprintf(text, tcap, "NLL %.1f nats %s %.1f%s; %s", nll,
             nll > thr ? ">" : "<=", isfinite(thr) ? thr : INFINITY,
             v->why & FMQ_CH_BIT(FMQ_CH_SUP) ? "; supervised head: attack" : "", why);
    if (predict) {
        fmq_giot_predict_next(&g->sc, mod, &g->gs.d, slot, next, sizeof next);
        g->predicted++;
        fmq_json_escape(esc, sizeof esc, next);
        if (n < cap) n += (size_t)snprintf(json + n, cap - n, ",\"predicted_next\":\"%s\"", esc);
    } else if (n < cap)
        n += (size_t)snprintf(json + n, cap - n, ",\"predicted_next\":null");
    return n < cap ? n : cap - 1;
}

static size_t giot_held(const struct fmq_learner *l)
{
    return ((const struct giot *)l->impl)->gs.d.n;
}

static int giot_train_begin(struct fmq_learner *l, const struct fmq_client_plan *plan,
                            size_t *ntrain)
{
    struct giot *g = G(l);
    if (!g->cur.params) return FMQ_EINVAL;
    split(l);
    *ntrain = g->ntrain;
    if (g->ntrain < 1) return FMQ_EINVAL;
    if (plan->lr > 0) g->tr.opt.lr = plan->lr;
    copy_weights(&g->local, &g->cur);
    return 0;
}

static int giot_train_steps(struct fmq_learner *l, long steps, float *loss)
{
    struct giot *g = G(l);
    long total = steps > 0 ? steps : l->cfg.giot_steps;
    float lo = 0;
    if (steps > 0) split(l); /* a GSFS chunk: flows arrived since the last one, the slots moved */
    for (long done = 0; done < total; done += 10) { /* stay responsive to SIGTERM */
        if (l->cfg.stop && *l->cfg.stop) return FMQ_EINVAL;
        lo = fmq_giot_train(&g->tr, &g->local, &g->gs.d, g->idx, g->ntrain,
                            total - done < 10 ? total - done : 10);
    }
    *loss = lo;
    return isfinite(lo) ? 0 : FMQ_ERANGE;
}

static long giot_round_steps(const struct fmq_learner *l, int *batch)
{
    *batch = l->cfg.giot_batch;
    return l->cfg.giot_steps;
}

/* The "layers" whose gradient norms GSFS's EWMA watches: parameter groups, embeddings (wte,
 * wpe), attention (ln1, qkv, attproj), MLP (ln2, fc, fcproj) and output (lnf, the head), or with
 * adapters the attention and the MLP adapters. */
static int giot_layer_norms(const struct fmq_learner *l, double *norms, int max)
{
    const struct giot *g = l->impl;
    const struct fmq_gpt *m = &g->local;
    static const int base_groups[] = {0, 2, 8, 14, FMQ_GPT_NTENSORS};
    static const int lora_groups[] = {0, 4, FMQ_LORA_NTENSORS};
    const int *grp = m->lora_rank ? lora_groups : base_groups;
    int ng = m->lora_rank ? 2 : 4, nt = m->lora_rank ? FMQ_LORA_NTENSORS : FMQ_GPT_NTENSORS;
    const float *gr = m->lora_rank ? g->tr.acts.lora_grads : g->tr.acts.grads;
    const float *origin = m->lora_rank ? m->lora : m->params;
    size_t total = m->lora_rank ? m->lora_n : m->nparams;
    if (ng > max) return 0;
    for (int k = 0; k < ng; k++) {
        const float *const *t =
            m->lora_rank ? (const float *const *)m->lt : (const float *const *)m->t;
        size_t from = (size_t)(t[grp[k]] - origin);
        size_t to = grp[k + 1] < nt ? (size_t)(t[grp[k + 1]] - origin) : total;
        double s = 0;
        for (size_t i = from; i < to; i++) s += (double)gr[i] * gr[i];
        norms[k] = sqrt(s);
    }
    return ng;
}

static float *giot_params(struct fmq_learner *l, int local, size_t *n)
{
    struct giot *g = G(l);
    return fmq_gpt_trainable(local ? &g->local : &g->cur, n);
}

static int giot_stats(struct fmq_learner *l, struct fmq_moments *m, struct fmq_moments *b,
                      size_t *n)
{
    (void)l, (void)m, (void)b, (void)n;
    return FMQ_EINVAL; /* tokens need no normalisation: GIoT has no statistics round */
}

const struct fmq_learner_ops fmq_learner_giot = {
    .version = FMQ_LEARNER_OPS_VERSION,
    .name = "giot",
    .kind = FMQ_MODEL_GIOT,
    .primary = FMQ_CH_NOV,
    .init = giot_init,
    .free = giot_free,
    .adopt = giot_adopt,
    .channels = giot_channels,
    .ingest = giot_ingest,
    .new_context = giot_new_context,
    .score = giot_score,
    .val_scores = giot_val_scores,
    .explain = giot_explain,
    .held = giot_held,
    .train_begin = giot_train_begin,
    .train_steps = giot_train_steps,
    .round_steps = giot_round_steps,
    .layer_norms = giot_layer_norms,
    .params = giot_params,
    .personalise = giot_personalise,
    .stats = giot_stats,
};
