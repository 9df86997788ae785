/* fedmq-agent, GIoT mode: when the global model is a GIoT transformer, every flow goes into a
 * bounded stream (tokenized, linked to its device's previous flow) and is scored live by its
 * negative log-likelihood given the device's recent flows. The alert threshold is calibrated on
 * the newest flows to a false-positive budget (labelled malicious flows, when labels are
 * present, are left out of the calibration; without labels the site's recent traffic is taken as
 * normal). Alerts carry the model's own explanation (least likely fields, their probability,
 * the expected value) and its predicted next flow for the device. Training is self-supervised
 * (next-token), needs no labels, and moves either every parameter or, in adapter mode, only the
 * LoRA adapters. */
#include "agent.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int agent_giot_init(struct agent *a)
{
    size_t n = (size_t)a->cfg.giot_val_max;
    int rc = fmq_giot_stream_init(&a->gs, (size_t)a->cfg.buffer, (size_t)a->cfg.max_devices);
    if (rc) return rc;
    a->gscore = malloc(n * sizeof(float));
    a->glab = malloc(n * sizeof(float));
    a->gscratch = malloc(n * sizeof(float));
    if (!a->gscore || !a->glab || !a->gscratch) return FMQ_ENOMEM;
    a->predict_rl = (struct fmq_ratelimit){1.0, (int)a->cfg.predict_rate, 0, 0, 0};
    return 0;
}

void agent_giot_free_model(struct agent *a)
{
    fmq_gpt_free(&a->gcur);
    fmq_gpt_free(&a->glocal);
    fmq_giot_trainer_free(&a->gtr);
    fmq_giot_trainer_free(&a->gsc);
    a->gthr_ok = 0;
}

void agent_giot_free(struct agent *a)
{
    agent_giot_free_model(a);
    fmq_giot_stream_free(&a->gs);
    free(a->gscore);
    free(a->glab);
    free(a->gscratch);
    a->gscore = a->glab = a->gscratch = NULL;
}

static int same_shape(const struct fmq_gpt *x, const struct fmq_gpt *y)
{
    return memcmp(&x->cfg, &y->cfg, sizeof x->cfg) == 0 && x->lora_rank == y->lora_rank;
}

static void copy_weights(struct fmq_gpt *dst, const struct fmq_gpt *src)
{
    memcpy(dst->params, src->params, src->nparams * sizeof(float));
    if (src->lora_rank) {
        memcpy(dst->lora, src->lora, src->lora_n * sizeof(float));
        dst->lora_alpha = src->lora_alpha;
    }
}

int agent_giot_adopt(struct agent *a, struct fmq_gpt *m, const struct fmq_global *g)
{
    int rc, K = g->giot_context;
    float lr = g->client.lr > 0 ? g->client.lr : a->cfg.giot_lr;

    if (a->kind != FMQ_MODEL_GIOT || !same_shape(m, &a->gcur) || a->gtr.K != K) {
        size_t n;
        agent_free_model_state(a); /* a different model: drop every trace of the old one */
        if ((rc = fmq_gpt_copy(&a->gcur, m)) || (rc = fmq_gpt_copy(&a->glocal, m)) ||
            (rc = fmq_giot_trainer_init(&a->gtr, m, a->cfg.giot_batch, K, lr, 0.01f,
                                        a->cfg.train.seed)) ||
            (rc = fmq_giot_trainer_init(&a->gsc, m, 1, K, lr, 0.01f, a->cfg.train.seed)))
            return rc;
        fmq_gpt_trainable(m, &n);
        if (!(a->delta = malloc(n * sizeof(float)))) return FMQ_ENOMEM;
        if ((rc = fmq_codec_ws_init(&a->cws, (uint32_t)n, a->cfg.train.seed)) ||
            (rc = fmq_ef_init(&a->ef, (uint32_t)n)))
            return rc;
        a->dim = n;
        a->kind = FMQ_MODEL_GIOT;
        a->have_model = 1;
    } else
        copy_weights(&a->gcur, m);
    a->gtr.opt.lr = lr;
    a->gtr.cls_weight = m->cfg.classes >= 2 ? a->cfg.giot_cls_weight : 0.0f;
    a->gtr.cls_balance = a->cfg.giot_cls_balance;
    agent_take_plan(a, g);
    a->gcal_due = 1; /* a new model needs its own threshold */
    return 0;
}

/* Slots of the newest min(cap, n x val_fraction) flows (at least one) into idx, oldest first;
 * returns how many. The training slots are the older ones: ntrain = n - that. */
static size_t newest(const struct agent *a, uint32_t *idx, size_t *ntrain)
{
    const struct fmq_giot_stream *s = &a->gs;
    size_t n = s->d.n, nval = (size_t)floor((double)n * a->cfg.val_fraction);
    size_t start = (s->head + s->cap - n) % s->cap;
    if (nval > (size_t)a->cfg.giot_val_max) nval = (size_t)a->cfg.giot_val_max;
    if (nval < 1) nval = 1;
    *ntrain = n - nval;
    for (size_t i = 0; i < n; i++) a->idx[i] = (uint32_t)((start + i) % s->cap);
    if (idx) memcpy(idx, a->idx + *ntrain, nval * sizeof *idx);
    return nval;
}

/* Scores the validation flows with m; sets *thr to the threshold that lets fp_budget of the
 * normal ones through, fills the metrics at it (F1 when malicious flows are labelled). */
static void validate(struct agent *a, const struct fmq_gpt *m, size_t ntrain, size_t nval,
                     float *thr, struct fmq_local_metrics *lm)
{
    struct fmq_confusion cm;
    struct fmq_scores sc;
    double mean = 0;
    fmq_giot_score(&a->gtr, m, &a->gs.d, a->idx + ntrain, nval, a->gscore);
    for (size_t k = 0; k < nval; k++) {
        a->glab[k] = a->gs.d.label[a->idx[ntrain + k]] == FMQ_LABEL_MALICIOUS;
        mean += a->gscore[k];
    }
    fmq_recall_at_fpr(a->gscore, a->glab, nval, a->cfg.fp_budget, a->gscratch, thr, &cm);
    if (cm.tn + cm.fp == 0) /* every validation flow is labelled malicious: no normal to learn */
        *thr = fmq_quantile(memcpy(a->gscratch, a->gscore, nval * sizeof(float)), nval,
                            1.0 - a->cfg.fp_budget);
    fmq_scores_from(&cm, &sc);
    lm->loss = (float)(mean / (double)nval / FMQ_TOK_PER_FLOW); /* nats per token */
    lm->accuracy = (float)sc.accuracy;
    lm->f1 = (float)(cm.tp + cm.fn ? sc.f1 : sc.accuracy);
    lm->n_val = nval;
}

void agent_giot_due(struct agent *a)
{
    struct fmq_local_metrics lm;
    size_t ntrain, nval;
    if (!a->gcal_due || a->gs.d.n < (size_t)a->cfg.min_train) return;
    nval = newest(a, NULL, &ntrain);
    validate(a, &a->gcur, ntrain, nval, &a->gthr, &lm);
    a->gthr_ok = 1;
    a->gcal_due = 0;
    fmq_log(FMQ_LOG_INFO,
            "GIoT v%llu: alert threshold %.2f nats (%.1f%% of %zu recent flows), "
            "validation %.3f nats/token",
            (unsigned long long)a->version, a->gthr, a->cfg.fp_budget * 100, nval, lm.loss);
}

static void publish_alert(struct agent *a, const struct fmq_flow *f, size_t slot, float nll,
                          float pmal, const char *why)
{
    char buf[3072], uid[96], oh[100], rh[100], svc[70], st[20], text[700], next[700], ntext[600];
    int predict = a->cfg.predict_rate <= 0 || fmq_ratelimit_ok(&a->predict_rl);
    size_t n;

    if (predict) {
        fmq_giot_predict_next(&a->gsc, &a->gcur, &a->gs.d, slot, ntext, sizeof ntext);
        a->predicted++;
        next[0] = '"';
        n = 1 + agent_json_escape(next + 1, sizeof next - 3, ntext);
        next[n] = '"', next[n + 1] = 0;
    } else
        strcpy(next, "null");
    agent_json_escape(uid, sizeof uid, f->uid);
    agent_json_escape(oh, sizeof oh, f->orig_h);
    agent_json_escape(rh, sizeof rh, f->resp_h);
    agent_json_escape(svc, sizeof svc, f->service);
    agent_json_escape(st, sizeof st, f->conn_state);
    agent_json_escape(text, sizeof text, why);
    n = (size_t)snprintf(buf, sizeof buf,
                         "{\"agent\":\"%s\",\"device\":\"%s\",\"ts\":%.6f,\"uid\":\"%s\","
                         "\"id.orig_h\":\"%s\",\"id.orig_p\":%d,\"id.resp_h\":\"%s\","
                         "\"id.resp_p\":%d,\"proto\":\"%s\",\"service\":\"%s\","
                         "\"conn_state\":\"%s\",\"model\":\"giot\",\"score\":%.4f,"
                         "\"threshold\":%.4f,\"p_malicious\":%.4f,\"model_version\":%llu,"
                         "\"text\":\"NLL %.1f nats %s %.1f%s; %s\",\"predicted_next\":%s}",
                         a->cfg.id, oh, f->ts, uid, oh, f->orig_p, rh, f->resp_p, f->proto, svc, st,
                         nll, a->gthr, pmal < 0 ? 0.0f : pmal, (unsigned long long)a->version, nll,
                         nll > a->gthr ? ">" : "<=", a->gthr,
                         pmal >= (float)a->cfg.threshold ? "; supervised head: attack" : "", text,
                         next);
    if (n >= sizeof buf) return; /* cannot happen with the field limits above */
    fmq_mq_publish(a->mq, a->t_alerts, buf, n, 0, 0);
    a->alerts++;
}

void agent_giot_on_flow(struct agent *a, const struct fmq_flow *f)
{
    size_t slot = fmq_giot_stream_push(&a->gs, f);
    char why[600];
    float nll, pmal;
    if (!a->gthr_ok) return;
    /* one forward pass scores the flow; the explanation reads the same probabilities */
    nll =
        fmq_giot_explain(&a->gsc, &a->gcur, &a->gs.d, slot, a->cfg.explain_fields, why, sizeof why);
    /* the supervised head, when the model has one, read from the same forward pass */
    pmal = a->gcur.cfg.classes >= 2 ? a->gsc.acts.cls_probs[1] : -1.0f;
    if (nll > a->gthr || pmal >= (float)a->cfg.threshold) publish_alert(a, f, slot, nll, pmal, why);
}

/* The train/validation split of the stream and a fresh local copy of the global model. */
static int start_local(struct agent *a, size_t *ntrain, size_t *nval)
{
    *nval = newest(a, NULL, ntrain);
    if (*ntrain < 1) {
        fmq_log(FMQ_LOG_WARN, "GIoT: no training flows yet for v%llu",
                (unsigned long long)a->version);
        return FMQ_EINVAL;
    }
    copy_weights(&a->glocal, &a->gcur);
    return 0;
}

int agent_giot_round(struct agent *a)
{
    struct fmq_local_metrics lm;
    size_t ntrain, nval, n;
    double t0 = fmq_mono();
    float loss, thr, *cur = fmq_gpt_trainable(&a->gcur, &n);

    if (start_local(a, &ntrain, &nval) != 0) return FMQ_EINVAL;
    loss = 0;
    for (long done = 0; done < a->cfg.giot_steps; done += 10) { /* stay responsive to SIGTERM */
        if (a->stop && *a->stop) return FMQ_EINVAL;
        loss = fmq_giot_train(&a->gtr, &a->glocal, &a->gs.d, a->idx, ntrain,
                              a->cfg.giot_steps - done < 10 ? a->cfg.giot_steps - done : 10);
    }
    if (!isfinite(loss)) {
        fmq_log(FMQ_LOG_ERROR, "GIoT local training diverged; no update sent for v%llu",
                (unsigned long long)a->version);
        return FMQ_ERANGE;
    }
    validate(a, &a->glocal, ntrain, nval, &thr, &lm);
    lm.loss = loss;
    return agent_send_delta(
        a, fmq_gpt_trainable(&a->glocal, &n), cur, n, ntrain, &lm,
        (double)a->cfg.giot_steps * a->cfg.giot_batch / (fmq_mono() - t0 + 1e-9), 0);
}

/* ---- GSFS with GIoT ----
 * The paper's triggers over the transformer: the "layers" whose gradient norms the EWMA watches
 * are parameter groups, embeddings (wte, wpe), attention (ln1, qkv, attproj), MLP (ln2, fc,
 * fcproj) and output (lnf, the head), or with adapters the attention and the MLP adapters; the
 * performance metric is validate()'s F1 (accuracy without malicious flows) at the 1%-FPR
 * likelihood threshold, as the update reports it. */
static int giot_layer_norms(const struct agent *a, double *norms)
{
    const struct fmq_gpt *m = &a->glocal;
    static const int base_groups[] = {0, 2, 8, 14, FMQ_GPT_NTENSORS};
    static const int lora_groups[] = {0, 4, FMQ_LORA_NTENSORS};
    const int *grp = m->lora_rank ? lora_groups : base_groups;
    int ng = m->lora_rank ? 2 : 4;
    const float *g = m->lora_rank ? a->gtr.acts.lora_grads : a->gtr.acts.grads;
    const float *origin = m->lora_rank ? m->lora : m->params;
    size_t total = m->lora_rank ? m->lora_n : m->nparams;
    for (int k = 0; k < ng; k++) {
        const float *const *t =
            m->lora_rank ? (const float *const *)m->lt : (const float *const *)m->t;
        size_t from = (size_t)(t[grp[k]] - origin);
        size_t to = grp[k + 1] < (m->lora_rank ? FMQ_LORA_NTENSORS : FMQ_GPT_NTENSORS)
                        ? (size_t)(t[grp[k + 1]] - origin)
                        : total;
        double s = 0;
        for (size_t i = from; i < to; i++) s += (double)g[i] * g[i];
        norms[k] = sqrt(s);
    }
    return ng;
}

int agent_giot_gsfs_start(struct agent *a)
{
    struct fmq_local_metrics lm;
    size_t ntrain, nval;
    double norms[FMQ_MLP_MAXHIDDEN + 1];
    float thr;
    int ng;

    if (start_local(a, &ntrain, &nval) != 0) return FMQ_EINVAL;
    ng = giot_layer_norms(a, norms);
    if (a->trig.nlayers != ng) fmq_gsfs_trigger_init(&a->trig, ng);
    validate(a, &a->gcur, ntrain, nval, &thr, &lm);
    fmq_gsfs_trigger_reference(&a->trig, lm.f1);
    agent_gsfs_begin(a, a->cfg.giot_steps);
    return 0;
}

void agent_giot_gsfs_chunk(struct agent *a)
{
    struct fmq_local_metrics lm;
    double norms[FMQ_MLP_MAXHIDDEN + 1], t0 = fmq_mono();
    long steps = a->plan.eval_every < a->gsfs_budget ? a->plan.eval_every : a->gsfs_budget;
    size_t ntrain, nval, n;
    float loss, thr, *cur = fmq_gpt_trainable(&a->gcur, &n);
    int fired;

    nval = newest(a, NULL, &ntrain); /* flows arrive between chunks: the slots move */
    loss = fmq_giot_train(&a->gtr, &a->glocal, &a->gs.d, a->idx, ntrain, steps < 1 ? 1 : steps);
    a->gsfs_budget -= steps < 1 ? 1 : steps;
    a->gsfs_checks++;
    if (!isfinite(loss)) {
        fmq_log(FMQ_LOG_ERROR, "GIoT local training diverged; GSFS session for v%llu ends",
                (unsigned long long)a->version);
        a->gsfs_active = 0;
        return;
    }
    giot_layer_norms(a, norms);
    validate(a, &a->glocal, ntrain, nval, &thr, &lm);
    lm.loss = loss;
    fired = agent_gsfs_check(a, norms, lm.f1);
    if (fired && (a->plan.max_uploads == 0 || a->gsfs_uploads < a->plan.max_uploads) &&
        agent_send_delta(a, fmq_gpt_trainable(&a->glocal, &n), cur, n, ntrain, &lm,
                         (double)steps * a->cfg.giot_batch / (fmq_mono() - t0 + 1e-9),
                         fired) == 0) {
        a->gsfs_uploads++;
        fmq_gsfs_trigger_reference(&a->trig, lm.f1);
    }
    agent_gsfs_end_check(a);
}
