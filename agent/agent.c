/* fedmq-agent logic (see agent.h). Every message is handled on the daemon thread: sensor
 * records are parsed as hostile JSON, featurized, scored and buffered; a global model is decoded
 * into a scratch model and adopted only when it decodes whole and is newer than the one in use
 * (or comes from a new coordinator run). Nothing here allocates per flow. */
#include "agent.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void agent_cfg_default(struct agent_cfg *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->broker, "tcp://127.0.0.1:1883");
    strcpy(c->task, "iot23");
    strcpy(c->root, "fedmq");
    c->buffer = 50000;
    c->val_fraction = 0.2;
    c->min_train = 100;
    c->threshold = 0.5;
    c->max_devices = 4096;
    c->status_interval = 5.0;
    c->log_level = FMQ_LOG_INFO;
    fmq_train_opts_default(&c->train);
}

int agent_init(struct agent *a, const struct agent_cfg *cfg)
{
    int rc;
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    if (!fmq_id_valid(cfg->id) || !fmq_id_valid(cfg->task)) {
        fmq_log(FMQ_LOG_ERROR, "agent id and task must be 1-63 characters of [A-Za-z0-9._-]");
        return FMQ_EINVAL;
    }
    if (cfg->nsensors == 0) {
        strcpy(a->cfg.sensors[0], "sensors/+/+/conn");
        a->cfg.nsensors = 1;
    }
    snprintf(a->t_global, sizeof a->t_global, "%s/%s/model/global", cfg->root, cfg->task);
    snprintf(a->t_update, sizeof a->t_update, "%s/%s/update/%s", cfg->root, cfg->task, cfg->id);
    snprintf(a->t_status, sizeof a->t_status, "%s/%s/status/%s", cfg->root, cfg->task, cfg->id);
    snprintf(a->t_alerts, sizeof a->t_alerts, "%s/%s/alerts/%s", cfg->root, cfg->task, cfg->id);
    a->bad_log = (struct fmq_ratelimit){10.0, 5, 0, 0, 0};
    a->X = malloc((size_t)cfg->buffer * FMQ_FEAT_DIM * sizeof(float));
    a->y = malloc((size_t)cfg->buffer * sizeof(float));
    a->idx = malloc((size_t)cfg->buffer * sizeof(uint32_t));
    if (!a->X || !a->y || !a->idx) return FMQ_ENOMEM;
    if ((rc = fmq_wire_dec_init(&a->dec)) != 0) return rc;
    return fmq_feat_init(&a->fz, (size_t)cfg->max_devices, 16);
}

static void free_model_state(struct agent *a)
{
    fmq_model_free(&a->cur);
    fmq_model_free(&a->local);
    fmq_trainer_free(&a->tr);
    fmq_mlp_ws_free(&a->ws);
    free(a->delta);
    a->delta = NULL;
    a->have_model = 0;
}

void agent_free(struct agent *a)
{
    fmq_mq_destroy(a->mq);
    free_model_state(a);
    fmq_feat_free(&a->fz);
    fmq_wire_dec_free(&a->dec);
    fmq_buf_free(&a->out);
    free(a->X);
    free(a->y);
    free(a->idx);
}

void agent_publish_status(struct agent *a, const char *state)
{
    struct fmq_status s;
    memset(&s, 0, sizeof s);
    strcpy(s.agent, a->cfg.id);
    strcpy(s.task, a->cfg.task);
    snprintf(s.state, sizeof s.state, "%s", state);
    s.model_version = a->version;
    s.flows = a->flows;
    s.labelled = a->labelled;
    s.buffered = a->count;
    s.alerts = a->alerts;
    s.bad = a->bad;
    s.ts = fmq_now();
    if (fmq_wire_encode_status(&s, &a->out) == 0)
        fmq_mq_publish(a->mq, a->t_status, a->out.data, a->out.len, 1, 1);
    a->last_status = fmq_mono();
}

int agent_connect(struct agent *a)
{
    struct fmq_mq_opts o;
    struct fmq_status will;
    struct fmq_buf wb = {0};
    int rc;

    memset(&will, 0, sizeof will);
    strcpy(will.agent, a->cfg.id);
    strcpy(will.task, a->cfg.task);
    strcpy(will.state, "offline");
    will.ts = fmq_now();
    if ((rc = fmq_wire_encode_status(&will, &wb)) != 0) return rc;
    fmq_mq_opts_default(&o);
    o.uri = a->cfg.broker;
    o.client_id = a->cfg.id;
    o.will_topic = a->t_status;
    o.will_payload = wb.data;
    o.will_len = wb.len;
    o.will_retained = 1;
    rc = fmq_mq_create(&a->mq, &o);
    fmq_buf_free(&wb);
    if (rc) return rc;
    for (int i = 0; i < a->cfg.nsensors; i++)
        if ((rc = fmq_mq_subscribe(a->mq, a->cfg.sensors[i], 1)) != 0) return rc;
    if ((rc = fmq_mq_subscribe(a->mq, a->t_global, 1)) != 0) return rc;
    if ((rc = fmq_mq_connect(a->mq, 30.0)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO, "connected to %s; sensors %s%s; model %s", a->cfg.broker,
            a->cfg.sensors[0], a->cfg.nsensors > 1 ? " ..." : "", a->t_global);
    agent_publish_status(a, "online");
    return 0;
}

static void report_bad(struct agent *a, const char *topic, const char *why)
{
    a->bad++;
    if (fmq_ratelimit_ok(&a->bad_log)) {
        if (a->bad_log.suppressed)
            fmq_log(FMQ_LOG_WARN, "(%llu similar messages suppressed)",
                    (unsigned long long)a->bad_log.suppressed);
        a->bad_log.suppressed = 0;
        fmq_log(FMQ_LOG_WARN, "dropped message on %s: %s", topic, why);
    }
}

/* ---- alerts ---- */

struct reason {
    int feat;
    float value, contrib;
};

static size_t json_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            dst[n++] = '\\', dst[n++] = (char)c;
        else if (c < 0x20)
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
        else
            dst[n++] = (char)c;
    }
    dst[n] = 0;
    return n;
}

/* Publishes one alert: flow identity, score, and the three features that pushed the score up
 * most (gradient x input on the normalised features). */
static void publish_alert(struct agent *a, const struct fmq_flow *f, float p)
{
    char buf[2048], uid[96], oh[100], rh[100], svc[70], st[20], text[512];
    struct reason top[3] = {{-1, 0, 0}, {-1, 0, 0}, {-1, 0, 0}};
    float dx[FMQ_FEAT_DIM];
    const float *xn = a->ws.acts; /* normalised input of the last forward */
    size_t n = 0, tn = 0;

    fmq_mlp_input_grad(&a->cur, &a->ws, dx);
    for (int k = 0; k < FMQ_FEAT_DIM; k++) {
        float c = dx[k] * xn[k];
        for (int j = 0; j < 3; j++)
            if (top[j].feat < 0 || c > top[j].contrib) {
                memmove(&top[j + 1], &top[j], (size_t)(2 - j) * sizeof top[0]);
                top[j] = (struct reason){k, 0, c};
                break;
            }
    }
    json_escape(uid, sizeof uid, f->uid);
    json_escape(oh, sizeof oh, f->orig_h);
    json_escape(rh, sizeof rh, f->resp_h);
    json_escape(svc, sizeof svc, f->service);
    json_escape(st, sizeof st, f->conn_state);
    tn = (size_t)snprintf(text, sizeof text, "P(malicious)=%.4f >= %.2f; top factors:", p,
                          a->cfg.threshold);
    n = (size_t)snprintf(buf, sizeof buf,
                         "{\"agent\":\"%s\",\"device\":\"%s\",\"ts\":%.6f,\"uid\":\"%s\","
                         "\"id.orig_h\":\"%s\",\"id.orig_p\":%d,\"id.resp_h\":\"%s\","
                         "\"id.resp_p\":%d,\"proto\":\"%s\",\"service\":\"%s\","
                         "\"conn_state\":\"%s\",\"score\":%.6f,\"threshold\":%.4f,"
                         "\"model_version\":%llu,\"reasons\":[",
                         a->cfg.id, oh, f->ts, uid, oh, f->orig_p, rh, f->resp_p, f->proto, svc, st,
                         p, a->cfg.threshold, (unsigned long long)a->version);
    for (int j = 0; j < 3 && top[j].feat >= 0 && n < sizeof buf; j++) {
        const char *name = fmq_feat_name(top[j].feat);
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "%s{\"feature\":\"%s\",\"normalised\":%.3f,\"contribution\":%.3f}",
                              j ? "," : "", name, xn[top[j].feat], top[j].contrib);
        if (tn < sizeof text)
            tn += (size_t)snprintf(text + tn, sizeof text - tn, "%s %s (z=%.2f, %+.2f)",
                                   j ? "," : "", name, xn[top[j].feat], top[j].contrib);
    }
    if (n < sizeof buf) n += (size_t)snprintf(buf + n, sizeof buf - n, "],\"text\":\"%s\"}", text);
    if (n >= sizeof buf) return; /* cannot happen with the field limits above */
    fmq_mq_publish(a->mq, a->t_alerts, buf, n, 0, 0);
    a->alerts++;
}

/* ---- sensor records ---- */

static void on_sensor(struct agent *a, const struct fmq_mq_msg *m)
{
    struct fmq_flow f;
    float x[FMQ_FEAT_DIM];
    char err[200];

    if (fmq_flow_from_json((const char *)m->payload, m->len, &f, err, sizeof err) != 0) {
        report_bad(a, m->topic, err);
        return;
    }
    a->flows++;
    fmq_feat_extract(&a->fz, &f, x);
    if (a->have_model && a->round >= 1) {
        float p = fmq_model_score(&a->cur, &a->ws, x);
        if (p >= (float)a->cfg.threshold) publish_alert(a, &f, p);
    }
    if (f.label == FMQ_LABEL_UNKNOWN) return;
    a->labelled++;
    memcpy(a->X + a->head * FMQ_FEAT_DIM, x, sizeof x);
    a->y[a->head] = f.label == FMQ_LABEL_MALICIOUS ? 1.0f : 0.0f;
    a->head = (a->head + 1) % (size_t)a->cfg.buffer;
    if (a->count < (size_t)a->cfg.buffer) a->count++;
}

/* ---- global model ---- */

static int adopt(struct agent *a, struct fmq_model *m, const struct fmq_global *g)
{
    int rc, same = a->have_model && memcmp(&m->cfg, &a->cur.cfg, sizeof m->cfg) == 0;

    if (!same) {
        free_model_state(a);
        if ((rc = fmq_model_copy(&a->cur, m)) || (rc = fmq_model_copy(&a->local, m)) ||
            (rc = fmq_trainer_init(&a->tr, m, &a->cfg.train, (size_t)a->cfg.buffer)) ||
            (rc = fmq_mlp_ws_init(&a->ws, m, 1)))
            return rc;
        if (!(a->delta = malloc(m->nparams * sizeof(float)))) return FMQ_ENOMEM;
        if (m->cfg.window != a->fz.window) {
            fmq_feat_free(&a->fz);
            if ((rc = fmq_feat_init(&a->fz, (size_t)a->cfg.max_devices, m->cfg.window)) != 0)
                return rc;
        }
        a->have_model = 1;
    } else {
        memcpy(a->cur.params, m->params, m->nparams * sizeof(float));
        memcpy(a->cur.norm_mean, m->norm_mean, (size_t)m->cfg.in_dim * sizeof(float));
        memcpy(a->cur.norm_std, m->norm_std, (size_t)m->cfg.in_dim * sizeof(float));
        a->cur.has_norm = m->has_norm;
    }
    snprintf(a->run, sizeof a->run, "%s", g->run);
    a->version = g->version;
    a->round = g->round;
    a->phase = g->phase;
    a->pending = 1;
    return 0;
}

static void on_global(struct agent *a, const struct fmq_mq_msg *m)
{
    struct fmq_model scratch = {0};
    struct fmq_global g = {0};
    char err[256];
    int rc;

    if (m->len == 0) return; /* retained model cleared */
    g.model = &scratch;
    rc = fmq_wire_decode_global(&a->dec, m->payload, m->len, &g, err, sizeof err);
    if (rc != 0) {
        report_bad(a, m->topic, err);
        goto out;
    }
    if (strcmp(g.task, a->cfg.task) != 0) {
        report_bad(a, m->topic, "global model for another task");
        goto out;
    }
    if (scratch.cfg.feat_version != FMQ_FEAT_VERSION || scratch.cfg.in_dim != FMQ_FEAT_DIM) {
        report_bad(a, m->topic, "global model uses another feature version or width");
        goto out;
    }
    if (a->have_model && strcmp(g.run, a->run) == 0 && g.version <= a->version) goto out;
    if ((rc = adopt(a, &scratch, &g)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot adopt global model v%llu: %s", (unsigned long long)g.version,
                fmq_strerror(rc));
        free_model_state(a);
        goto out;
    }
    fmq_log(FMQ_LOG_INFO, "adopted global model v%llu (round %llu, phase %s, run %s)",
            (unsigned long long)g.version, (unsigned long long)g.round,
            g.phase == FMQ_PHASE_STATS ? "stats" : "train", g.run);
out:
    fmq_model_free(&scratch);
}

/* ---- local round ---- */

/* Oldest (1 - val_fraction) of the buffer into idx[0..ntrain), the newest after it. */
static void split(struct agent *a, size_t *ntrain, size_t *nval)
{
    size_t cap = (size_t)a->cfg.buffer, start = (a->head + cap - a->count) % cap;
    *nval = (size_t)floor((double)a->count * a->cfg.val_fraction);
    *ntrain = a->count - *nval;
    for (size_t i = 0; i < a->count; i++) a->idx[i] = (uint32_t)((start + i) % cap);
}

static int do_round(struct agent *a)
{
    struct fmq_update u;
    size_t ntrain, nval;
    double t0 = fmq_mono();
    int rc;

    split(a, &ntrain, &nval);
    memset(&u, 0, sizeof u);
    strcpy(u.agent, a->cfg.id);
    strcpy(u.task, a->cfg.task);
    u.base_version = a->version;
    u.seq = ++a->seq;
    u.n_examples = ntrain;
    if (a->phase == FMQ_PHASE_STATS) {
        fmq_moments_clear(&a->moments);
        for (size_t i = 0; i < ntrain; i++)
            fmq_moments_add(&a->moments, a->X + (size_t)a->idx[i] * FMQ_FEAT_DIM);
        u.has_stats = 1;
        u.stats = &a->moments;
        u.codec = FMQ_CODEC_NONE;
    } else {
        struct fmq_confusion cm = {0};
        struct fmq_scores sc;
        float loss = 0;
        memcpy(a->local.params, a->cur.params, a->cur.nparams * sizeof(float));
        memcpy(a->local.norm_mean, a->cur.norm_mean, FMQ_FEAT_DIM * sizeof(float));
        memcpy(a->local.norm_std, a->cur.norm_std, FMQ_FEAT_DIM * sizeof(float));
        a->cfg.train.seed = a->cfg.train.seed * 6364136223846793005ULL + a->version;
        rc = fmq_train(&a->tr, &a->local, &a->cfg.train, a->X, a->y, a->idx, ntrain, &loss);
        if (rc != 0) {
            fmq_log(FMQ_LOG_ERROR, "local training failed (%s); no update sent for v%llu",
                    fmq_strerror(rc), (unsigned long long)a->version);
            return rc;
        }
        for (size_t i = 0; i < nval; i++) {
            uint32_t k = a->idx[ntrain + i];
            float p = fmq_model_score(&a->local, &a->ws, a->X + (size_t)k * FMQ_FEAT_DIM);
            fmq_confusion_add(&cm, a->y[k] > 0.5f, p >= (float)a->cfg.threshold);
        }
        fmq_scores_from(&cm, &sc);
        for (size_t i = 0; i < a->cur.nparams; i++)
            a->delta[i] = a->local.params[i] - a->cur.params[i];
        u.metrics = (struct fmq_local_metrics){loss, (float)sc.accuracy, (float)sc.f1, nval};
        u.codec = FMQ_CODEC_DENSE_F32;
        u.dim = (uint32_t)a->cur.nparams;
        u.delta = a->delta;
        u.delta_cap = a->cur.nparams;
    }
    if ((rc = fmq_wire_encode_update(&u, &a->out)) != 0) return rc;
    if ((rc = fmq_mq_publish(a->mq, a->t_update, a->out.data, a->out.len, 1, 0)) != 0) return rc;
    a->updates++;
    fmq_log(FMQ_LOG_INFO,
            "sent %s update #%llu for v%llu: %zu train / %zu val flows, loss %.4f, val acc %.4f "
            "f1 %.4f, %zu bytes, %.2f s",
            u.has_stats ? "statistics" : "model", (unsigned long long)u.seq,
            (unsigned long long)a->version, ntrain, nval, u.metrics.loss, u.metrics.accuracy,
            u.metrics.f1, a->out.len, fmq_mono() - t0);
    return 0;
}

int agent_step(struct agent *a, int timeout_ms)
{
    struct fmq_mq_msg *m;
    int rc = fmq_mq_poll(a->mq, &m, timeout_ms);

    if (rc == 0) {
        if (strcmp(m->topic, a->t_global) == 0)
            on_global(a, m);
        else
            on_sensor(a, m);
    }
    if (a->pending && a->count >= (size_t)a->cfg.min_train &&
        a->count >= 2 /* at least one train and, with val_fraction > 0, one validation row */) {
        a->pending = 0;
        do_round(a);
        agent_publish_status(a, "online");
    }
    if (fmq_mono() - a->last_status >= a->cfg.status_interval) agent_publish_status(a, "online");
    return 0;
}
