/* fedmq-agent logic (see agent.h). Every message is handled on the daemon thread: sensor
 * records are parsed as hostile JSON, featurized, scored and buffered; a global model is decoded
 * into a scratch model and adopted only when it decodes whole and is newer than the one in use
 * (or comes from a new coordinator run). Nothing here allocates per flow. */
#include "agent.h"

#include <math.h>

#include "fedmq/dp.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void agent_cfg_default(struct agent_cfg *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->broker, "tcp://127.0.0.1:1883");
    fmq_tls_cfg_default(&c->tls);
    strcpy(c->task, "iot23");
    strcpy(c->root, "fedmq");
    c->buffer = 50000;
    c->val_fraction = 0.2;
    c->min_train = 100;
    c->threshold = 0.5;
    c->max_devices = 4096;
    c->status_interval = 5.0;
    c->update_retry = 10.0;
    c->giot_steps = 50;
    c->giot_batch = 16;
    c->giot_lr = 3e-3f;
    c->fp_budget = 0.01;
    c->giot_val_max = 2000;
    c->predict_rate = 20;
    c->explain_fields = 3;
    c->giot_cls_weight = 1.0f;
    c->giot_cls_balance = 0.5f;
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
    snprintf(a->t_receipt, sizeof a->t_receipt, "%s/%s/receipt/%s", cfg->root, cfg->task, cfg->id);
    a->bad_log = (struct fmq_ratelimit){10.0, 5, 0, 0, 0};
    /* sequence numbers start at the start time in microseconds, so they keep increasing across
     * restarts and the coordinator can refuse every replayed (agent, seq) */
    a->seq = (uint64_t)(fmq_now() * 1e6);
    if (cfg->attack)
        fmq_log(FMQ_LOG_WARN, "TEST MODE: this agent is Byzantine (attack %d, scale %g)",
                cfg->attack, cfg->attack_scale);
    a->X = malloc((size_t)cfg->buffer * FMQ_FEAT_DIM * sizeof(float));
    a->y = malloc((size_t)cfg->buffer * sizeof(float));
    a->idx = malloc((size_t)cfg->buffer * sizeof(uint32_t));
    if (!a->X || !a->y || !a->idx) return FMQ_ENOMEM;
    if ((rc = fmq_wire_dec_init(&a->dec)) != 0) return rc;
    if ((rc = agent_giot_init(a)) != 0) return rc;
    return fmq_feat_init(&a->fz, (size_t)cfg->max_devices, 16);
}

void agent_free_model_state(struct agent *a)
{
    fmq_model_free(&a->cur);
    fmq_model_free(&a->local);
    fmq_trainer_free(&a->tr);
    fmq_mlp_ws_free(&a->ws);
    free(a->delta);
    a->delta = NULL;
    fmq_codec_ws_free(&a->cws);
    fmq_ef_free(&a->ef);
    agent_giot_free_model(a);
    a->kind = 0;
    a->have_model = 0;
    a->gsfs_active = 0;
}

void agent_free(struct agent *a)
{
    fmq_mq_destroy(a->mq);
    agent_free_model_state(a);
    fmq_feat_free(&a->fz);
    agent_giot_free(a);
    fmq_wire_dec_free(&a->dec);
    fmq_buf_free(&a->out);
    fmq_buf_free(&a->tensor);
    fmq_buf_free(&a->sent);
    free(a->X);
    free(a->y);
    free(a->idx);
}

size_t agent_held(const struct agent *a)
{
    return a->kind == FMQ_MODEL_GIOT ? a->gs.d.n : a->count;
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
    s.buffered = agent_held(a);
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
    o.tls = &a->cfg.tls;
    o.client_id = a->cfg.id;
    o.will_topic = a->t_status;
    o.will_payload = wb.data;
    o.will_len = wb.len;
    o.will_retained = 1;
    o.clean_session = a->cfg.clean_session;
    rc = fmq_mq_create(&a->mq, &o);
    fmq_buf_free(&wb);
    if (rc) return rc;
    for (int i = 0; i < a->cfg.nsensors; i++)
        if ((rc = fmq_mq_subscribe(a->mq, a->cfg.sensors[i], 1)) != 0) return rc;
    if ((rc = fmq_mq_subscribe(a->mq, a->t_global, 1)) != 0 ||
        (rc = fmq_mq_subscribe(a->mq, a->t_receipt, 1)) != 0)
        return rc;
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

size_t agent_json_escape(char *dst, size_t cap, const char *s)
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
    agent_json_escape(uid, sizeof uid, f->uid);
    agent_json_escape(oh, sizeof oh, f->orig_h);
    agent_json_escape(rh, sizeof rh, f->resp_h);
    agent_json_escape(svc, sizeof svc, f->service);
    agent_json_escape(st, sizeof st, f->conn_state);
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
    if (a->kind == FMQ_MODEL_GIOT) { /* the stream holds every flow; no labels needed */
        agent_giot_on_flow(a, &f);
        if (f.label != FMQ_LABEL_UNKNOWN) a->labelled++;
        return;
    }
    fmq_giot_stream_push(&a->gs, &f); /* ready should a GIoT model arrive */
    fmq_feat_extract(&a->fz, &f, x);
    if (a->have_model && a->round >= 1) {
        float p = fmq_model_score(&a->cur, &a->ws, x);
        if (p >= (float)a->cfg.threshold) publish_alert(a, &f, p);
    }
    if (f.label == FMQ_LABEL_UNKNOWN) return;
    a->labelled++;
    memcpy(a->X + a->head * FMQ_FEAT_DIM, x, sizeof x);
    a->y[a->head] = f.label == FMQ_LABEL_MALICIOUS ? 1.0f : 0.0f;
    if (a->cfg.attack == AGENT_ATTACK_LABEL_FLIP) a->y[a->head] = 1.0f - a->y[a->head];
    a->head = (a->head + 1) % (size_t)a->cfg.buffer;
    if (a->count < (size_t)a->cfg.buffer) a->count++;
}

/* ---- global model ---- */

void agent_take_plan(struct agent *a, const struct fmq_global *g)
{
    snprintf(a->run, sizeof a->run, "%s", g->run);
    a->version = g->version;
    a->round = g->round;
    a->phase = g->phase;
    a->plan = g->client;
    a->selected = g->self_selected;
    a->time_budget = 0;
    if (g->has_self_plan) { /* network and device sensing chose for this agent */
        a->plan.codec = g->self_plan.codec;
        a->plan.ratio = g->self_plan.ratio;
        a->time_budget = g->self_plan.time_budget;
    }
    a->pending = 1;
    a->gsfs_active = 0;
}

static int adopt(struct agent *a, struct fmq_model *m, const struct fmq_global *g)
{
    int rc, same = a->have_model && a->kind != FMQ_MODEL_GIOT &&
                   memcmp(&m->cfg, &a->cur.cfg, sizeof m->cfg) == 0;

    if (!same) {
        agent_free_model_state(a);
        if ((rc = fmq_model_copy(&a->cur, m)) || (rc = fmq_model_copy(&a->local, m)) ||
            (rc = fmq_trainer_init(&a->tr, m, &a->cfg.train, (size_t)a->cfg.buffer)) ||
            (rc = fmq_mlp_ws_init(&a->ws, m, 1)))
            return rc;
        if (!(a->delta = malloc(m->nparams * sizeof(float)))) return FMQ_ENOMEM;
        if ((rc = fmq_codec_ws_init(&a->cws, (uint32_t)m->nparams, a->cfg.train.seed)) ||
            (rc = fmq_ef_init(&a->ef, (uint32_t)m->nparams)))
            return rc;
        fmq_gsfs_trigger_init(&a->trig, m->nlayers);
        if (m->cfg.window != a->fz.window) {
            fmq_feat_free(&a->fz);
            if ((rc = fmq_feat_init(&a->fz, (size_t)a->cfg.max_devices, m->cfg.window)) != 0)
                return rc;
        }
        a->have_model = 1;
        a->kind = m->cfg.kind;
        a->dim = m->nparams;
    } else {
        memcpy(a->cur.params, m->params, m->nparams * sizeof(float));
        memcpy(a->cur.norm_mean, m->norm_mean, (size_t)m->cfg.in_dim * sizeof(float));
        memcpy(a->cur.norm_std, m->norm_std, (size_t)m->cfg.in_dim * sizeof(float));
        a->cur.has_norm = m->has_norm;
    }
    agent_take_plan(a, g);
    return 0;
}

/* {"seq":N,...} from the coordinator: the update with that sequence number is settled. */
static void on_receipt(struct agent *a, const struct fmq_mq_msg *m)
{
    const char *p = strstr((const char *)m->payload, "\"seq\":"); /* payload ends in NUL */
    const char *why = strstr((const char *)m->payload, "\"reason\":\"");
    unsigned long long seq;
    if (!p || sscanf(p + 6, "%llu", &seq) != 1 || seq != a->sent_seq) return;
    if (!a->sent_confirmed && why) /* settled all the same: the same bytes would fare the same */
        fmq_log(FMQ_LOG_WARN, "update #%llu refused by the coordinator: %.*s", seq,
                (int)strcspn(why + 10, "\""), why + 10);
    a->sent_confirmed = 1;
}

static void resend(struct agent *a, const char *why)
{
    a->resent++;
    a->sent_at = fmq_mono();
    fmq_log(FMQ_LOG_INFO, "%s: sending update #%llu for v%llu again", why,
            (unsigned long long)a->sent_seq, (unsigned long long)a->sent_version);
    fmq_mq_publish(a->mq, a->t_update, a->sent.data, a->sent.len, 1, 0);
}

static void on_global(struct agent *a, const struct fmq_mq_msg *m)
{
    struct fmq_model scratch = {0};
    struct fmq_gpt gscratch = {0};
    struct fmq_global g = {0};
    char err[256];
    int rc;

    if (m->len == 0) return; /* retained model cleared */
    g.model = &scratch;
    g.gpt = &gscratch;
    g.self = a->cfg.id;
    rc = fmq_wire_decode_global(&a->dec, m->payload, m->len, &g, err, sizeof err);
    if (rc != 0) {
        report_bad(a, m->topic, err);
        goto out;
    }
    if (strcmp(g.task, a->cfg.task) != 0) {
        report_bad(a, m->topic, "global model for another task");
        goto out;
    }
    if (g.kind != FMQ_MODEL_GIOT &&
        (scratch.cfg.feat_version != FMQ_FEAT_VERSION || scratch.cfg.in_dim != FMQ_FEAT_DIM)) {
        report_bad(a, m->topic, "global model uses another feature version or width");
        goto out;
    }
    /* a corrupt or poisoned model (non-finite or absurd parameters, a normalisation no real
     * features give) is refused: the agent keeps the model it has, and the next valid one
     * replaces it */
    if ((g.kind == FMQ_MODEL_GIOT
             ? fmq_params_check(gscratch.params, gscratch.nparams, err, sizeof err) ||
                   (gscratch.lora &&
                    fmq_params_check(gscratch.lora, gscratch.lora_n, err, sizeof err))
             : fmq_model_check(&scratch, err, sizeof err)) != 0) {
        char why[300];
        snprintf(why, sizeof why, "global model v%llu refused: %s", (unsigned long long)g.version,
                 err);
        report_bad(a, m->topic, why);
        goto out;
    }
    if (a->have_model && strcmp(g.run, a->run) == 0 && g.version == a->version &&
        g.ts > a->global_ts && a->sent_version == a->version && a->sent.len > 0) {
        /* the same version published again: the coordinator restarted or reconnected and may
         * have lost what it had not yet aggregated; the update goes again (same seq: it is
         * accepted once, and a receipt settles it) */
        a->global_ts = g.ts;
        if (!a->sent_confirmed) resend(a, "global model republished");
        goto out;
    }
    if (a->have_model && strcmp(g.run, a->run) == 0 && g.version <= a->version) goto out;
    rc = g.kind == FMQ_MODEL_GIOT ? agent_giot_adopt(a, &gscratch, &g) : adopt(a, &scratch, &g);
    if (rc != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot adopt global model v%llu: %s", (unsigned long long)g.version,
                fmq_strerror(rc));
        agent_free_model_state(a);
        goto out;
    }
    a->global_ts = g.ts;
    fmq_log(FMQ_LOG_INFO,
            "adopted global %s model v%llu (round %llu, phase %s, %s, codec %s%s, run %s)",
            g.kind == FMQ_MODEL_GIOT ? (gscratch.lora_rank ? "GIoT+LoRA" : "GIoT") : "MLP",
            (unsigned long long)g.version, (unsigned long long)g.round,
            g.phase == FMQ_PHASE_STATS ? "stats" : "train", g.strategy,
            fmq_codec_name(g.client.codec), g.self_selected ? "" : ", not sampled", g.run);
out:
    fmq_model_free(&scratch);
    fmq_gpt_free(&gscratch);
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

/* The validation metric GSFS watches and the update reports: F1 when the validation split holds
 * malicious flows, else accuracy (a benign-only site has no F1). */
static double validate(struct agent *a, const struct fmq_model *m, size_t ntrain, size_t nval,
                       struct fmq_scores *sc)
{
    struct fmq_confusion cm = {0};
    for (size_t i = 0; i < nval; i++) {
        uint32_t k = a->idx[ntrain + i];
        float p = fmq_model_score(m, &a->ws, a->X + (size_t)k * FMQ_FEAT_DIM);
        fmq_confusion_add(&cm, a->y[k] > 0.5f, p >= (float)a->cfg.threshold);
    }
    fmq_scores_from(&cm, sc);
    return cm.tp + cm.fn > 0 ? sc->f1 : sc->accuracy;
}

static void train_opts_for(struct agent *a, struct fmq_train_opts *o)
{
    *o = a->cfg.train;
    if (a->plan.lr > 0) o->lr = a->plan.lr;
    o->proximal_mu = a->plan.proximal_mu;
    o->prox_ref = a->plan.proximal_mu > 0 ? a->cur.params : NULL;
}

/* Test mode: a slow uplink holds the update for len/bps seconds after its send timestamp. */
static void simulate_uplink(struct agent *a, size_t len)
{
    if (a->cfg.simulate_uplink_bps > 0) {
        double d = (double)len / a->cfg.simulate_uplink_bps;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Fields every update carries: identity, base version, sequence number, examples, send time. */
static void update_header(struct agent *a, struct fmq_update *u, size_t ntrain)
{
    memset(u, 0, sizeof *u);
    strcpy(u->agent, a->cfg.id);
    strcpy(u->task, a->cfg.task);
    u->base_version = a->version;
    u->seq = ++a->seq;
    u->n_examples = ntrain;
    { /* test mode: the count an attack claims */
        int at = a->cfg.attack;
        uint64_t claim = a->cfg.attack_count;
        if (!claim && (at == AGENT_ATTACK_REPLACE || at == AGENT_ATTACK_HUGE_COUNT ||
                       at == AGENT_ATTACK_HUGE_VALUES))
            claim = (uint64_t)1 << 40;
        if (claim) u->n_examples = claim;
    }
    u->ts = fmq_now();
    u->no_ids = !a->plan.ids; /* the update topic names agent and task */
    u->compact = a->plan.envelope == FMQ_WIRE_UPDATE_COMPACT;
}

static int publish_update(struct agent *a, const struct fmq_update *u)
{
    int rc;
    if ((rc = fmq_wire_encode_update(u, &a->out)) != 0) return rc;
    simulate_uplink(a, a->out.len);
    if ((rc = fmq_mq_publish(a->mq, a->t_update, a->out.data, a->out.len, 1, 0)) != 0) return rc;
    { /* keep it until the next version: a restarted coordinator may need it again */
        if (a->sent.cap < a->out.len) {
            uint8_t *p = realloc(a->sent.data, a->out.len);
            if (p) a->sent.data = p, a->sent.cap = a->out.len;
        }
        if (a->sent.cap >= a->out.len) {
            memcpy(a->sent.data, a->out.data, a->out.len);
            a->sent.len = a->out.len;
            a->sent_version = a->version;
            a->sent_seq = u->seq;
            a->sent_confirmed = 0;
            a->sent_at = fmq_mono();
            a->retry_wait = a->cfg.update_retry;
        }
    }
    a->updates++;
    a->bytes_sent += a->out.len;
    return 0;
}

int agent_attack_parse(const char *s, int *attack)
{
    static const char *const names[] = {
        "none",         "sign-flip",         "scale",      "label-flip",  "noise",
        "alie",         "model-replacement", "huge-count", "huge-values", "stats-poison",
        "stats-extreme"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i])) {
            *attack = i;
            return 0;
        }
    return FMQ_EINVAL;
}

/* Test mode: what a Byzantine agent sends instead of its honest change d. */
static void apply_attack(struct agent *a, float *d, size_t n)
{
    double s = a->cfg.attack_scale, rms = 0;
    struct fmq_rng r;
    switch (a->cfg.attack) {
    case AGENT_ATTACK_SIGN_FLIP:
    case AGENT_ATTACK_HUGE_COUNT:
        for (size_t i = 0; i < n; i++) d[i] *= (float)-(s > 0 ? s : 1.0);
        break;
    case AGENT_ATTACK_REPLACE: /* the change already came from inverted labels */
        for (size_t i = 0; i < n; i++) d[i] *= (float)(s > 0 ? s : 1.0);
        break;
    case AGENT_ATTACK_HUGE_VALUES:
        for (size_t i = 0; i < n; i++) d[i] = (float)(s > 0 ? s : 3e38);
        break;
    case AGENT_ATTACK_SCALE:
        for (size_t i = 0; i < n; i++) d[i] *= (float)(s > 0 ? s : 10.0);
        break;
    case AGENT_ATTACK_NOISE:
        fmq_rng_seed(&r, a->cfg.attack_seed ^ a->seq, 0x6e6f697365ULL);
        for (size_t i = 0; i < n; i++) d[i] = (float)((s > 0 ? s : 1.0) * fmq_rng_normal(&r));
        break;
    case AGENT_ATTACK_ALIE:
        for (size_t i = 0; i < n; i++) rms += (double)d[i] * d[i];
        rms = sqrt(rms / (double)n);
        for (size_t i = 0; i < n; i++) /* against the descent direction, a few RMS per weight */
            d[i] -= (float)((s > 0 ? s : 1.5) * rms * (d[i] > 0 ? 1.0 : d[i] < 0 ? -1.0 : 0.0));
        break;
    default:
        break;
    }
}

int agent_send_delta(struct agent *a, const float *local, const float *cur, size_t n, size_t ntrain,
                     const struct fmq_local_metrics *lm, double sps, int trigger)
{
    struct fmq_update u;
    struct fmq_codec_opts co;
    int rc;

    for (size_t i = 0; i < n; i++) a->delta[i] = local[i] - cur[i];
    if (a->cfg.attack) apply_attack(a, a->delta, n);
    if (a->cfg.dp_clip > 0) { /* DP on the agent: nothing unclipped or noise-free leaves it */
        struct fmq_rng r;
        fmq_rng_seed(&r, (uint64_t)(fmq_now() * 1e6) ^ a->seq, 0x6c6470ULL);
        fmq_dp_clip(a->delta, n, a->cfg.dp_clip);
        if (a->cfg.dp_noise > 0)
            fmq_dp_noise_f32(a->delta, n, a->cfg.dp_noise * a->cfg.dp_clip, &r);
    }
    fmq_codec_opts_default(&co);
    co.codec = a->plan.codec;
    co.ratio = a->plan.ratio;
    co.block = a->plan.block;
    co.stochastic = a->plan.stochastic;
    if ((rc = fmq_ef_encode(&a->ef, &co, &a->cws, a->delta, &a->tensor)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot encode the update: %s", fmq_strerror(rc));
        return rc;
    }
    update_header(a, &u, ntrain);
    u.metrics = *lm;
    u.no_metrics = !a->plan.report; /* the coordinator's byte budget: README, Compression */
    u.sps = (float)sps;
    u.trigger = trigger;
    u.codec = co.codec;
    u.dim = (uint32_t)n;
    u.tensor = a->tensor.data;
    u.tensor_len = a->tensor.len;
    if ((rc = publish_update(a, &u)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO,
            "sent update #%llu for v%llu%s: %zu train / %llu val flows, loss %.4f, val acc %.4f "
            "f1 %.4f, %s %zu bytes",
            (unsigned long long)u.seq, (unsigned long long)a->version,
            trigger == 0               ? ""
            : trigger == FMQ_GSFS_NORM ? " (gradient-norm trigger)"
            : trigger == FMQ_GSFS_PERF ? " (performance trigger)"
                                       : " (both triggers)",
            ntrain, (unsigned long long)lm->n_val, lm->loss, lm->accuracy, lm->f1,
            fmq_codec_name(co.codec), a->out.len);
    return 0;
}

/* MLP: delta = local - global, encoded with the announced codec (error feedback keeps what
 * top-k and quantization left out). */
static int send_update(struct agent *a, size_t ntrain, size_t nval, float loss, double sps,
                       int trigger)
{
    struct fmq_scores sc;
    struct fmq_local_metrics lm;
    validate(a, &a->local, ntrain, nval, &sc);
    lm = (struct fmq_local_metrics){loss, (float)sc.accuracy, (float)sc.f1, nval};
    return agent_send_delta(a, a->local.params, a->cur.params, a->cur.nparams, ntrain, &lm, sps,
                            trigger);
}

/* Test mode: the statistics a poisoning agent sends instead of its own (agent.h). */
static void poison_stats(struct agent *a)
{
    struct fmq_moments *m = &a->moments;
    int extreme = a->cfg.attack == AGENT_ATTACK_STATS_EXTREME;
    double n = a->cfg.attack_count ? (double)a->cfg.attack_count : extreme ? 1e12 : 1;
    m->n = n < 1e12 ? n : 1e12;
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double lo, hi;
        fmq_feat_range(i, &lo, &hi);
        m->mean[i] = extreme ? hi : a->cfg.attack_scale > 0 ? a->cfg.attack_scale : 1e300;
        m->m2[i] = 0; /* all mass at the mean: the only variance a mean at the top allows */
    }
}

/* Test mode: model replacement trains on the inverted labels of the buffer (flipped before
 * training, flipped back after). */
static void attack_flip_labels(struct agent *a, size_t ntrain)
{
    if (a->cfg.attack != AGENT_ATTACK_REPLACE) return;
    for (size_t i = 0; i < ntrain; i++) a->y[a->idx[i]] = 1.0f - a->y[a->idx[i]];
}

static int send_stats(struct agent *a, size_t ntrain)
{
    struct fmq_update u;
    int rc;
    fmq_moments_clear(&a->moments);
    for (size_t i = 0; i < ntrain; i++)
        fmq_moments_add(&a->moments, a->X + (size_t)a->idx[i] * FMQ_FEAT_DIM);
    if (a->cfg.attack == AGENT_ATTACK_STATS_POISON || a->cfg.attack == AGENT_ATTACK_STATS_EXTREME)
        poison_stats(a);
    update_header(a, &u, ntrain);
    u.n_examples = (uint64_t)a->moments.n;
    u.has_stats = 1;
    u.stats = &a->moments;
    u.codec = FMQ_CODEC_NONE;
    if ((rc = publish_update(a, &u)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO, "sent statistics of %zu flows for v%llu, %zu bytes", ntrain,
            (unsigned long long)a->version, a->out.len);
    return 0;
}

/* Synchronous strategies: train E epochs from the global model, send one update. */
static int do_round(struct agent *a)
{
    struct fmq_train_opts o;
    size_t ntrain, nval;
    double t0 = fmq_mono();
    float loss = 0;
    int rc;

    split(a, &ntrain, &nval);
    if (a->phase == FMQ_PHASE_STATS) return send_stats(a, ntrain);
    memcpy(a->local.params, a->cur.params, a->cur.nparams * sizeof(float));
    memcpy(a->local.norm_mean, a->cur.norm_mean, FMQ_FEAT_DIM * sizeof(float));
    memcpy(a->local.norm_std, a->cur.norm_std, FMQ_FEAT_DIM * sizeof(float));
    train_opts_for(a, &o);
    o.seed = a->cfg.train.seed * 6364136223846793005ULL + a->version;
    attack_flip_labels(a, ntrain);
    rc = fmq_train(&a->tr, &a->local, &o, a->X, a->y, a->idx, ntrain, &loss);
    attack_flip_labels(a, ntrain);
    if (rc != 0) {
        fmq_log(FMQ_LOG_ERROR, "local training failed (%s); no update sent for v%llu",
                fmq_strerror(rc), (unsigned long long)a->version);
        return rc;
    }
    return send_update(a, ntrain, nval, loss, (double)ntrain * o.epochs / (fmq_mono() - t0 + 1e-9),
                       0);
}

/* GSFS: start a session for the new global model (reference metric = the global model's). */
static void gsfs_start(struct agent *a)
{
    struct fmq_scores sc;
    size_t ntrain, nval;
    split(a, &ntrain, &nval);
    memcpy(a->local.params, a->cur.params, a->cur.nparams * sizeof(float));
    memcpy(a->local.norm_mean, a->cur.norm_mean, FMQ_FEAT_DIM * sizeof(float));
    memcpy(a->local.norm_std, a->cur.norm_std, FMQ_FEAT_DIM * sizeof(float));
    fmq_gsfs_trigger_reference(&a->trig, validate(a, &a->cur, ntrain, nval, &sc));
    agent_gsfs_begin(
        a, (long)a->cfg.train.epochs *
               (long)((ntrain + (size_t)a->cfg.train.batch - 1) / (size_t)a->cfg.train.batch));
}

void agent_gsfs_begin(struct agent *a, long budget)
{
    a->gsfs_budget = budget;
    a->gsfs_uploads = 0;
    a->gsfs_checks = 0;
    a->gsfs_active = 1;
    a->gsfs_deadline = a->time_budget > 0 ? fmq_mono() + a->time_budget : 0;
}

void agent_gsfs_end_check(struct agent *a)
{
    if (a->gsfs_budget <= 0 || (a->gsfs_deadline > 0 && fmq_mono() > a->gsfs_deadline) ||
        (a->plan.max_uploads > 0 && a->gsfs_uploads >= a->plan.max_uploads)) {
        if (a->gsfs_uploads == 0)
            fmq_log(FMQ_LOG_INFO, "GSFS: no trigger fired for v%llu in %ld checks; nothing sent",
                    (unsigned long long)a->version, a->gsfs_checks);
        a->gsfs_active = 0;
    }
}

int agent_gsfs_check(struct agent *a, const double *layer_norms, double metric)
{
    struct fmq_gsfs_params gp;
    fmq_gsfs_params_default(&gp);
    gp.alpha = a->plan.alpha;
    gp.beta = a->plan.beta;
    gp.delta_perf = a->plan.delta_perf;
    gp.warmup = a->plan.warmup;
    return fmq_gsfs_trigger_check(&a->trig, &gp, layer_norms, metric);
}

/* One chunk of eval_every mini-batches, then the triggers. */
static void gsfs_chunk(struct agent *a)
{
    struct fmq_train_opts o;
    struct fmq_scores sc;
    double norms[FMQ_MLP_MAXHIDDEN + 1], metric, t0 = fmq_mono();
    size_t ntrain, nval;
    float loss = 0;
    int fired;

    split(a, &ntrain, &nval);
    train_opts_for(a, &o);
    o.epochs = 1;
    o.max_steps = a->plan.eval_every < a->gsfs_budget ? a->plan.eval_every : a->gsfs_budget;
    o.resume = a->gsfs_checks > 0;
    o.seed = a->cfg.train.seed * 6364136223846793005ULL + a->version * 1000003ULL +
             (uint64_t)a->gsfs_checks;
    if (fmq_train(&a->tr, &a->local, &o, a->X, a->y, a->idx, ntrain, &loss) != 0) {
        fmq_log(FMQ_LOG_ERROR, "local training diverged; GSFS session for v%llu ends",
                (unsigned long long)a->version);
        a->gsfs_active = 0;
        return;
    }
    a->gsfs_budget -= o.max_steps;
    a->gsfs_checks++;
    fmq_model_layer_norms(&a->local, a->tr.ws.grads, norms);
    metric = validate(a, &a->local, ntrain, nval, &sc);
    fired = agent_gsfs_check(a, norms, metric);
    if (fired && (a->plan.max_uploads == 0 || a->gsfs_uploads < a->plan.max_uploads)) {
        double sps = (double)o.max_steps * o.batch / (fmq_mono() - t0 + 1e-9);
        if (send_update(a, ntrain, nval, loss, sps, fired) == 0) {
            a->gsfs_uploads++;
            fmq_gsfs_trigger_reference(&a->trig, metric);
        }
    }
    agent_gsfs_end_check(a);
}

int agent_step(struct agent *a, int timeout_ms)
{
    struct fmq_mq_msg *m;
    struct fmq_mq_stats st;
    int rc = fmq_mq_poll(a->mq, &m, a->gsfs_active ? 0 : timeout_ms);

    if (rc == 0) {
        if (strcmp(m->topic, a->t_global) == 0)
            on_global(a, m);
        else if (strcmp(m->topic, a->t_receipt) == 0)
            on_receipt(a, m);
        else
            on_sensor(a, m);
    }
    fmq_mq_get_stats(a->mq, &st);
    if (st.reconnects != a->reconnects) { /* the link came back: nothing unconfirmed stays lost */
        a->reconnects = st.reconnects;
        if (a->sent.len && !a->sent_confirmed) resend(a, "reconnected");
    }
    if (a->sent.len && !a->sent_confirmed && a->retry_wait > 0 &&
        fmq_mono() - a->sent_at >= a->retry_wait) {
        /* no receipt in time: the update or its receipt was lost on a link that never showed
         * a disconnect; the coordinator applies each seq once, so sending again is safe */
        char why[64];
        snprintf(why, sizeof why, "no receipt after %.0f s", a->retry_wait);
        resend(a, why);
        if (a->retry_wait < 16 * a->cfg.update_retry) a->retry_wait *= 2;
    }
    if (a->kind == FMQ_MODEL_GIOT) agent_giot_due(a);
    if (a->pending && agent_held(a) >= (size_t)a->cfg.min_train && agent_held(a) >= 2) {
        a->pending = 0;
        if (!a->selected && a->phase == FMQ_PHASE_TRAIN)
            fmq_log(FMQ_LOG_INFO, "not sampled for v%llu", (unsigned long long)a->version);
        else if (a->phase == FMQ_PHASE_TRAIN && a->plan.gsfs)
            a->kind == FMQ_MODEL_GIOT ? (void)agent_giot_gsfs_start(a) : gsfs_start(a);
        else if (a->kind == FMQ_MODEL_GIOT)
            agent_giot_round(a);
        else
            do_round(a);
        agent_publish_status(a, "online");
    }
    if (a->gsfs_active && (rc != 0 || a->flows % 64 == 0))
        a->kind == FMQ_MODEL_GIOT ? agent_giot_gsfs_chunk(a) : gsfs_chunk(a);
    if (fmq_mono() - a->last_status >= a->cfg.status_interval) agent_publish_status(a, "online");
    return 0;
}
