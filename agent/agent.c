/* fedmq-agent logic (see agent.h). Every message is handled on the daemon thread: sensor
 * records are parsed as hostile JSON and handed to the learners, the active one scores and
 * judges them (learner.h, calib.h); a global model is decoded into a scratch model and adopted
 * only when it decodes whole and is newer than the one in use (or comes from a new coordinator
 * run). Rounds, GSFS sessions and updates go through the learner's ops: nothing here branches
 * on the model kind. Nothing here allocates per flow. */
#include "agent.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fedmq/dp.h"

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
    c->stop_drain = 5.0;
    c->update_retry = 10.0;
    c->train = 1;
    fmq_learner_cfg_default(&c->learn);
    c->giot_val_max = (long)c->learn.val_max;
    c->log_level = FMQ_LOG_INFO;
    fmq_train_opts_default(&c->train_opts);
    fmq_calib_cfg_default(&c->calib);
}

/* The learners' settings from the agent's. */
static void learner_cfg(const struct agent_cfg *c, struct fmq_learner_cfg *l)
{
    *l = c->learn;
    l->buffer = (size_t)c->buffer;
    l->max_devices = (size_t)c->max_devices;
    l->val_fraction = c->val_fraction;
    l->val_max = (size_t)c->giot_val_max;
    l->train = c->train_opts;
    l->seed = c->train_opts.seed;
    l->calib = c->calib;
    l->calib.static_sup = fmq_calib_logit(c->threshold);
}

int agent_init(struct agent *a, const struct agent_cfg *cfg)
{
    struct fmq_learner_cfg lc;
    int kinds[AGENT_MAX_KINDS], rc;
    size_t nk;
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
    snprintf(a->t_secagg, sizeof a->t_secagg, "%s/%s/secagg/%s", cfg->root, cfg->task, cfg->id);
    snprintf(a->t_secagg_in, sizeof a->t_secagg_in, "%s/%s/secagg-to/%s", cfg->root, cfg->task,
             cfg->id);
    a->bad_log = (struct fmq_ratelimit){10.0, 5, 0, 0, 0};
    a->last_calib = -1;
    a->status_calib = -1;
    if (cfg->attack)
        fmq_log(FMQ_LOG_WARN, "TEST MODE: this agent is Byzantine (attack %d, scale %g)",
                cfg->attack, cfg->attack_scale);
    if ((rc = fmq_wire_dec_init(&a->dec)) != 0) return rc;
    learner_cfg(&a->cfg, &lc);
    nk = fmq_learner_kinds(kinds, AGENT_MAX_KINDS);
    for (size_t i = 0; i < nk && i < AGENT_MAX_KINDS; i++, a->nlrn++)
        if ((rc = fmq_learner_init(&a->lrn[i], kinds[i], &lc)) != 0) {
            a->nlrn++;
            return rc;
        }
    return 0;
}

void agent_set_stop(struct agent *a, const volatile sig_atomic_t *stop)
{
    a->stop = stop;
    for (int i = 0; i < a->nlrn; i++) a->lrn[i].cfg.stop = stop;
}

static void free_update_state(struct agent *a)
{
    free(a->delta);
    a->delta = NULL;
    fmq_codec_ws_free(&a->cws);
    fmq_ef_free(&a->ef);
    a->dim = 0;
}

void agent_free(struct agent *a)
{
    fmq_mq_destroy(a->mq);
    agent_sa_free(a);
    free_update_state(a);
    for (int i = 0; i < a->nlrn; i++) fmq_learner_free(&a->lrn[i]);
    fmq_wire_dec_free(&a->dec);
    fmq_buf_free(&a->out);
    fmq_buf_free(&a->tensor);
    fmq_buf_free(&a->sent);
}

static size_t held(const struct agent *a)
{
    return a->L ? a->L->ops->held(a->L) : 0;
}

/* The calibration state a status reports: the scoring learner's, -1 while nothing scores. */
static int calib_now(const struct agent *a)
{
    return a->L && a->scoring ? a->L->cal.state : -1;
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
    s.buffered = held(a);
    s.alerts = a->alerts;
    s.bad = a->bad;
    if ((a->status_calib = calib_now(a)) >= 0)
        snprintf(s.calib, sizeof s.calib, "%s", fmq_calib_state_name(a->status_calib));
    s.ts = fmq_now();
    if (fmq_wire_encode_status(&s, &a->out) == 0)
        fmq_mq_publish(a->mq, a->t_status, a->out.data, a->out.len, 1, 1);
    a->last_status = fmq_mono();
}

/* Creates the client and records the subscriptions (made at every connect). */
static int create_client(struct agent *a)
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
        (rc = fmq_mq_subscribe(a->mq, a->t_receipt, 1)) != 0 ||
        (a->cfg.train && (rc = fmq_mq_subscribe(a->mq, a->t_secagg_in, 1)) != 0))
        return rc;
    return 0;
}

int agent_connect(struct agent *a, double timeout_s)
{
    int rc;
    if (!a->mq && (rc = create_client(a)) != 0) return rc;
    if ((rc = fmq_mq_connect(a->mq, timeout_s)) != 0) return rc;
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

/* "null" for an unset text field (Zeek's '-'), else the escaped value in quotes. */
static const char *json_text(char *out, size_t cap, const char *v)
{
    char esc[128];
    if (!v[0]) return "null";
    fmq_json_escape(esc, sizeof esc, v);
    snprintf(out, cap, "\"%s\"", esc);
    return out;
}

/* "null" for an unset port (-1), else the number. */
static const char *json_port(char *out, size_t cap, int32_t p)
{
    if (p < 0) return "null";
    snprintf(out, cap, "%d", (int)p);
    return out;
}

/* One alert: the flow's identity, the verdict (which channels fired, at which thresholds, in
 * which calibration state) and the learner's own explanation. */
static void publish_alert(struct agent *a, const struct fmq_flow *f, uint32_t slot,
                          const struct fmq_verdict *v)
{
    char buf[4096], uid[96], oh[100], rh[100], svc[140], st[140], pr[140], op[16], rp[16],
        text[900], etext[1400], members[1800];
    size_t n;

    a->L->ops->explain(a->L, slot, v, members, sizeof members, text, sizeof text);
    fmq_json_escape(uid, sizeof uid, f->uid);
    fmq_json_escape(oh, sizeof oh, f->orig_h);
    fmq_json_escape(rh, sizeof rh, f->resp_h);
    fmq_json_escape(etext, sizeof etext, text);
    n = (size_t)snprintf(
        buf, sizeof buf,
        "{\"agent\":\"%s\",\"device\":\"%s\",\"ts\":%.6f,\"alert_ts\":%.3f,\"uid\":\"%s\","
        "\"id.orig_h\":\"%s\",\"id.orig_p\":%s,\"id.resp_h\":\"%s\",\"id.resp_p\":%s,"
        "\"proto\":%s,\"service\":%s,\"conn_state\":%s,\"model\":\"%s\",\"model_version\":%llu,"
        "\"calibration\":\"%s\",\"why\":[%s%s%s]%s,\"text\":\"%s\"}",
        a->cfg.id, oh, f->ts, fmq_now(), uid, oh, json_port(op, sizeof op, f->orig_p), rh,
        json_port(rp, sizeof rp, f->resp_p), json_text(pr, sizeof pr, f->proto),
        json_text(svc, sizeof svc, f->service), json_text(st, sizeof st, f->conn_state),
        a->L->ops->name, (unsigned long long)a->version, fmq_calib_state_name(v->state),
        v->why & FMQ_CH_BIT(FMQ_CH_SUP) ? "\"supervised\"" : "",
        (v->why & FMQ_CH_BIT(FMQ_CH_SUP)) && (v->why & FMQ_CH_BIT(FMQ_CH_NOV)) ? "," : "",
        v->why & FMQ_CH_BIT(FMQ_CH_NOV) ? "\"novelty\"" : "", members, etext);
    if (n >= sizeof buf) return; /* cannot happen with the field limits above */
    fmq_mq_publish(a->mq, a->t_alerts, buf, n, 0, 0);
    a->alerts++;
}

/* ---- sensor records ---- */

static void on_flow(struct agent *a, struct fmq_flow *f);

struct batch {
    struct agent *a;
    const char *topic;
};

static void on_batch_record(void *ud, const char *rec, size_t n, size_t k)
{
    struct batch *b = ud;
    struct fmq_flow f;
    char err[200], why[240];
    if (fmq_flow_from_json(rec, n, &f, err, sizeof err) != 0) {
        snprintf(why, sizeof why, "record %zu of the batch: %s", k + 1, err);
        report_bad(b->a, b->topic, why);
        return;
    }
    on_flow(b->a, &f);
}

/* One record per message, or a batch in one (NDJSON lines or a JSON array of records): the
 * common single record is decoded once; a message holding more is framed and each record
 * decoded on its own, so a bad one costs only itself. */
static void on_sensor(struct agent *a, const struct fmq_mq_msg *m)
{
    struct fmq_flow f;
    char err[200];
    const char *p = (const char *)m->payload;

    if (fmq_flow_from_json(p, m->len, &f, err, sizeof err) == 0) {
        on_flow(a, &f);
        return;
    }
    if (fmq_flow_json_batch(p, m->len)) {
        struct batch b = {a, m->topic};
        if (fmq_flow_json_each(p, m->len, on_batch_record, &b, err, sizeof err) >= 0) return;
    }
    report_bad(a, m->topic, err);
}

/* One decoded record (the caller's: test modes may flip its label): scored and kept. */
static void on_flow(struct agent *a, struct fmq_flow *f)
{
    struct fmq_verdict v;

    a->flows++;
    if (f->label != FMQ_LABEL_UNKNOWN) {
        a->labelled++;
        /* test mode: label flipping trains on inverted labels; model replacement too, and then
         * claims a huge count (update_header) */
        if (a->cfg.attack == AGENT_ATTACK_LABEL_FLIP || a->cfg.attack == AGENT_ATTACK_REPLACE)
            f->label = !f->label;
    }
    for (int i = 0; i < a->nlrn; i++) {
        struct fmq_learner *l = &a->lrn[i];
        uint32_t slot;
        if (a->L && l != a->L) continue; /* a model is in use: only its learner holds data */
        if (l != a->L || !a->scoring) {  /* no model yet: every kind's data, for the first one */
            fmq_learner_ingest(l, f);
            continue;
        }
        slot = fmq_learner_observe(l, f, &v);
        if (v.alert) publish_alert(a, f, slot, &v);
        if (a->on_verdict) a->on_verdict(a->on_verdict_ud, f, &v);
        if (l->cal.state != a->last_calib) {
            fmq_log(FMQ_LOG_INFO, "calibration %s after %llu flows: thresholds sup %.4g nov %.4g",
                    fmq_calib_state_name(l->cal.state), (unsigned long long)l->cal.seen,
                    l->cal.thr[FMQ_CH_SUP], l->cal.thr[FMQ_CH_NOV]);
            a->last_calib = l->cal.state;
        }
    }
}

/* ---- global model ---- */

static void take_plan(struct agent *a, const struct fmq_global *g)
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

/* The codec workspace and error-feedback residual follow the trainable size. */
static int size_update_state(struct agent *a, size_t n)
{
    int rc;
    if (n == a->dim && a->delta) return 0;
    free_update_state(a);
    if (!(a->delta = malloc(n * sizeof(float)))) return FMQ_ENOMEM;
    if ((rc = fmq_codec_ws_init(&a->cws, (uint32_t)n, a->cfg.train_opts.seed)) ||
        (rc = fmq_ef_init(&a->ef, (uint32_t)n)))
        return rc;
    a->dim = n;
    return 0;
}

/* A receipt's count: a whole JSON number in [0, 2^53), or -1. */
static int receipt_count(const cJSON *o, const char *key, unsigned long long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble >= 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (unsigned long long)v->valuedouble;
    return 0;
}

/* {"seq":N,"status":S,"current":V,...} from the coordinator (schemas/topics.md). applied and
 * duplicate: in a saved model, settled. accepted: held in the open round, so the timer waits
 * again. stale: settled, and when the coordinator is ahead an older queued model is not
 * trained on; when it is behind our model its next one is taken. refused: dropped for good. */
static void on_receipt(struct agent *a, const struct fmq_mq_msg *m)
{
    cJSON *o = cJSON_ParseWithLength((const char *)m->payload, m->len);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "reason");
    unsigned long long seq, current = 0;
    const char *status, *why;
    if (!cJSON_IsObject(o) || receipt_count(o, "seq", &seq) || !cJSON_IsString(st) ||
        (cJSON_GetObjectItemCaseSensitive(o, "current") && receipt_count(o, "current", &current))) {
        a->bad++;
        fmq_log(FMQ_LOG_WARN, "dropped receipt on %s: not a receipt (schemas/topics.md)", m->topic);
        cJSON_Delete(o);
        return;
    }
    status = st->valuestring;
    why = cJSON_IsString(rs) ? rs->valuestring : "no reason";
    if (seq != a->sent_seq || a->sent_confirmed) goto out;
    if (!strcmp(status, "accepted")) {
        a->sent_at = fmq_mono();
        goto out;
    }
    a->sent_confirmed = 1;
    if (!strcmp(status, "stale") && current > a->version) {
        a->behind = current;
        fmq_log(FMQ_LOG_INFO, "update #%llu for v%llu is stale: the coordinator is at v%llu", seq,
                (unsigned long long)a->version, current);
    } else if (!strcmp(status, "stale") && current && current < a->version) {
        a->rewind = 1;
        fmq_log(FMQ_LOG_WARN,
                "the coordinator is at v%llu, behind our v%llu: taking its next "
                "model",
                current, (unsigned long long)a->version);
    } else if (!strcmp(status, "refused"))
        fmq_log(FMQ_LOG_WARN, "update #%llu for v%llu refused by the coordinator: %.200s", seq,
                (unsigned long long)a->version, why);
out:
    cJSON_Delete(o);
}

static void resend(struct agent *a, const char *why)
{
    a->resent++;
    a->sent_at = fmq_mono();
    fmq_log(FMQ_LOG_INFO, "%s: sending update #%llu for v%llu again", why,
            (unsigned long long)a->sent_seq, (unsigned long long)a->sent_version);
    fmq_mq_publish(a->mq, a->t_update, a->sent.data, a->sent.len, 1, 0);
}

static struct fmq_learner *learner_of(struct agent *a, int kind)
{
    const struct fmq_learner_ops *ops = fmq_learner_find(kind);
    for (int i = 0; i < a->nlrn; i++)
        if (a->lrn[i].ops == ops) return &a->lrn[i];
    return NULL;
}

/* Where update send times are counted from (update_header): our wall clock when it agrees
 * with the coordinator's within a second (the link delay measured is then the uplink's, as
 * before), else the model's send time, on the coordinator's clock (the delay then also holds the
 * downlink, a small error next to a skewed clock's hours). */
static void anchor_clock(struct agent *a, double model_ts)
{
    double now = fmq_now();
    a->global_anchor = fabs(now - model_ts) <= 1.0 ? now : model_ts;
    a->global_mono = fmq_mono();
}

static void on_global(struct agent *a, const struct fmq_mq_msg *m)
{
    struct fmq_model scratch = {0};
    struct fmq_gpt gscratch = {0};
    struct fmq_global g = {0};
    struct fmq_learner *l;
    char err[256];
    size_t n;
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
    if (!(l = learner_of(a, g.kind))) {
        report_bad(a, m->topic, "global model of a kind this agent has no learner for");
        goto out;
    }
    if (g.version > FMQ_VERSION_MAX) {
        report_bad(a, m->topic, "global model version out of range");
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
    if (a->L && strcmp(g.run, a->run) == 0 && g.version == a->version && g.ts > a->global_ts &&
        !a->rewind) {
        /* the same version published again: the coordinator restarted or reconnected and may
         * have lost what it had not yet aggregated; the update goes again (same seq: it is
         * accepted once, and a receipt settles it). It is also the coordinator's current
         * version, whatever a stale receipt said before. */
        a->global_ts = g.ts;
        anchor_clock(a, g.ts);
        if (a->behind > a->version) { /* we were told of a newer one that never came */
            a->behind = 0;
            if (a->sent_version != a->version) a->pending = 1;
        }
        if (a->sent_version == a->version && a->sent.len > 0 && !a->sent_confirmed)
            resend(a, "global model republished");
        goto out;
    }
    if (a->L && strcmp(g.run, a->run) == 0 && g.version <= a->version && !a->rewind) goto out;
    if ((rc = fmq_learner_adopt(l, &g, &g.rule, err, sizeof err)) != 0) {
        report_bad(a, m->topic, err);
        goto out;
    }
    l->ops->params(l, 0, &n);
    if ((rc = size_update_state(a, n)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot adopt global model v%llu: %s", (unsigned long long)g.version,
                fmq_strerror(rc));
        a->L = NULL;
        goto out;
    }
    if (l != a->L || a->kind != g.kind) /* another model: the norm statistics start over */
        fmq_gsfs_trigger_init(&a->trig, 0);
    a->L = l;
    a->kind = g.kind;
    /* the model is deployed for scoring once it has been trained: round 0's is random */
    a->scoring = g.round >= 1;
    take_plan(a, &g);
    a->global_ts = g.ts;
    anchor_clock(a, g.ts);
    a->rewind = 0;
    if (a->behind <= g.version) a->behind = 0;
    fmq_log(FMQ_LOG_INFO,
            "adopted global %s model v%llu (round %llu, phase %s, %s, codec %s%s, run %s, %s)",
            l->ops->name, (unsigned long long)g.version, (unsigned long long)g.round,
            g.phase == FMQ_PHASE_STATS   ? "stats"
            : g.phase == FMQ_PHASE_CALIB ? "calib"
                                         : "train",
            g.strategy, fmq_codec_name(g.client.codec), g.self_selected ? "" : ", not sampled",
            g.run, g.rule.channels ? "fleet rule" : "no fleet rule yet");
out:
    fmq_model_free(&scratch);
    fmq_gpt_free(&gscratch);
}

/* ---- updates ---- */

/* Test mode: a slow uplink holds the update for len/bps seconds after its send timestamp. */
static void simulate_uplink(struct agent *a, size_t len)
{
    if (a->cfg.simulate_uplink_bps > 0) {
        double d = (double)len / a->cfg.simulate_uplink_bps;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Fields every update carries: identity, base version, sequence number, examples, send time,
 * and the sketch of the global model when there is one. The sequence number is keyed by the
 * coordinator's version, (base << 16) + k for the k-th update on that base, so no clock can
 * make it run backwards, and the send time is counted on the monotonic clock from the model's
 * arrival (anchor_clock), so neither a clock step nor a skewed agent clock looks like a slow
 * link. */
static void update_header(struct agent *a, struct fmq_update *u, size_t ntrain)
{
    memset(u, 0, sizeof *u);
    strcpy(u->agent, a->cfg.id);
    strcpy(u->task, a->cfg.task);
    u->base_version = a->version;
    if (a->seq_base != a->version) a->seq_base = a->version, a->seq_k = 0;
    if (a->seq_k < 0xffff) a->seq_k++;
    u->seq = a->seq = (a->version << 16) + a->seq_k;
    u->n_examples = ntrain;
    { /* test mode: the count an attack claims */
        int at = a->cfg.attack;
        uint64_t claim = a->cfg.attack_count;
        if (!claim && (at == AGENT_ATTACK_REPLACE || at == AGENT_ATTACK_HUGE_COUNT ||
                       at == AGENT_ATTACK_HUGE_VALUES))
            claim = (uint64_t)1 << 40;
        if (claim) u->n_examples = claim;
    }
    u->ts = a->global_anchor > 0 ? a->global_anchor + (fmq_mono() - a->global_mono) : fmq_now();
    u->no_ids = !a->plan.ids; /* the update topic names agent and task */
    u->compact = a->plan.envelope == FMQ_WIRE_UPDATE_COMPACT;
    /* the sketch travels with the validation metrics (client.report: agent_metrics on the
     * coordinator), so a byte-lean configuration sends none until a calibration round asks;
     * that round sends even an empty one (send_sketch) */
    if (a->sketch.n && a->plan.report) {
        u->has_sketch = 1;
        u->sketch = a->sketch;
    }
}

static int publish_update(struct agent *a, const struct fmq_update *u)
{
    int rc;
    if ((rc = fmq_wire_encode_update(u, &a->out)) != 0) return rc;
    simulate_uplink(a, a->out.len);
    if ((rc = fmq_mq_publish(a->mq, a->t_update, a->out.data, a->out.len, 1, 0)) != 0) return rc;
    { /* keep it until the next version: a restarted coordinator may need it again */
        if (fmq_buf_set(&a->sent, a->out.data, a->out.len) == 0) {
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
        "none",          "sign-flip",         "scale",      "label-flip",  "noise",
        "alie",          "model-replacement", "huge-count", "huge-values", "stats-poison",
        "stats-extreme", "secagg-forge"};
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

/* Publishes local - global as an update with the announced codec and error feedback. */
static int send_delta(struct agent *a, size_t ntrain, const struct fmq_local_metrics *lm,
                      double sps, int trigger)
{
    struct fmq_update u;
    struct fmq_codec_opts co;
    size_t n;
    const float *local = a->L->ops->params(a->L, 1, &n), *cur = a->L->ops->params(a->L, 0, &n);
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
    if (a->plan.secagg) /* masked: the coordinator sees only the round's sum */
        return agent_sa_begin(a, a->delta, (uint32_t)n, ntrain, lm);
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

int agent_send_masked(struct agent *a, const uint8_t *words, uint32_t dim, size_t ntrain,
                      const struct fmq_local_metrics *lm)
{
    struct fmq_update u;
    int rc;
    update_header(a, &u, ntrain ? ntrain : 1);
    if (lm) u.metrics = *lm;
    u.no_metrics = !lm || !a->plan.report;
    u.codec = FMQ_CODEC_MASKED;
    u.dim = dim;
    u.tensor = words;
    u.tensor_len = (size_t)dim * 4;
    if ((rc = publish_update(a, &u)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO, "sent masked update #%llu for v%llu: %u values, %zu bytes",
            (unsigned long long)u.seq, (unsigned long long)a->version, dim, a->out.len);
    return 0;
}

/* Test mode: the statistics a poisoning agent sends instead of its own (agent.h). */
static void poison_stats(struct agent *a, struct fmq_moments *m)
{
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

static int send_stats(struct agent *a)
{
    struct fmq_update u;
    struct fmq_moments mo, ben;
    size_t ntrain;
    int rc;
    if ((rc = a->L->ops->stats(a->L, &mo, &ben, &ntrain)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "a %s model has no statistics round", a->L->ops->name);
        return rc;
    }
    if (a->cfg.attack == AGENT_ATTACK_STATS_POISON || a->cfg.attack == AGENT_ATTACK_STATS_EXTREME) {
        poison_stats(a, &mo);
        ben.n = 0; /* the poisoner sends no profile */
    }
    if (a->plan.secagg) { /* masked: the coordinator sees only the sum over the sites */
        float v[FMQ_STATS_SECURE_DIM];
        fmq_stats_to_secure(&mo, &ben, v);
        return agent_sa_begin(a, v, FMQ_STATS_SECURE_DIM, (size_t)mo.n, NULL);
    }
    update_header(a, &u, ntrain);
    u.n_examples = (uint64_t)mo.n;
    u.has_stats = 1;
    u.stats = &mo;
    u.has_benign = ben.n > 0;
    u.benign = &ben;
    u.codec = FMQ_CODEC_NONE;
    if ((rc = publish_update(a, &u)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO, "sent statistics of %zu flows for v%llu, %zu bytes", ntrain,
            (unsigned long long)a->version, a->out.len);
    return 0;
}

/* The calibration round: the model as it is, measured on this site's benign validation flows
 * (an empty sketch says there are none, so the round need not wait for this agent). */
static int send_sketch(struct agent *a)
{
    struct fmq_update u;
    struct fmq_local_metrics gm;
    int rc;
    fmq_learner_validate(a->L, 0, &gm, &a->sketch);
    update_header(a, &u, gm.n_val ? gm.n_val : 1);
    u.has_sketch = 1;
    u.codec = FMQ_CODEC_NONE;
    if ((rc = publish_update(a, &u)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO, "sent the sketch of v%llu (%u benign validation flows), %zu bytes",
            (unsigned long long)a->version, a->sketch.n, a->out.len);
    return 0;
}

/* Local copy of the global model, the split, and the global model's validation metric and
 * sketch (the GSFS reference, and what the coordinator's fleet rule is made of). */
static int begin_local(struct agent *a, size_t *ntrain, struct fmq_local_metrics *gm)
{
    int rc = a->L->ops->train_begin(a->L, &a->plan, ntrain);
    if (rc != 0) {
        fmq_log(FMQ_LOG_WARN, "no training flows yet for v%llu", (unsigned long long)a->version);
        return rc;
    }
    fmq_learner_validate(a->L, 0, gm, &a->sketch);
    return 0;
}

/* Synchronous strategies: one round of local training from the global model, one update. */
static int do_round(struct agent *a)
{
    struct fmq_local_metrics gm, lm;
    size_t ntrain;
    double t0 = fmq_mono();
    float loss = 0;
    long steps;
    int rc, batch;

    if (a->phase == FMQ_PHASE_STATS) return send_stats(a);
    if (a->phase == FMQ_PHASE_CALIB) return send_sketch(a);
    if ((rc = begin_local(a, &ntrain, &gm)) != 0) return rc;
    steps = a->L->ops->round_steps(a->L, &batch);
    if ((rc = a->L->ops->train_steps(a->L, 0, &loss)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "local training failed (%s); no update sent for v%llu",
                fmq_strerror(rc), (unsigned long long)a->version);
        return rc;
    }
    fmq_learner_validate(a->L, 1, &lm, NULL);
    lm.loss = loss;
    rc = send_delta(a, ntrain, &lm, (double)steps * batch / (fmq_mono() - t0 + 1e-9), 0);
    if (a->plan.personal == FMQ_PERSONAL_FINETUNE) /* score with our fine-tuned copy */
        if (fmq_learner_personalise(a->L) != 0 && a->L->personal == 0)
            fmq_log(FMQ_LOG_DEBUG, "too few benign labels to personalise; the global model scores");
    return rc;
}

/* ---- GSFS sessions: chunked local training between the paper's trigger checks ---- */

static void gsfs_end_check(struct agent *a)
{
    if (a->gsfs_budget <= 0 || (a->gsfs_deadline > 0 && fmq_mono() > a->gsfs_deadline) ||
        (a->plan.max_uploads > 0 && a->gsfs_uploads >= a->plan.max_uploads)) {
        if (a->gsfs_uploads == 0)
            fmq_log(FMQ_LOG_INFO, "GSFS: no trigger fired for v%llu in %ld checks; nothing sent",
                    (unsigned long long)a->version, a->gsfs_checks);
        a->gsfs_active = 0;
    }
}

/* Starts a session for the new global model (reference metric = the global model's). */
static void gsfs_start(struct agent *a)
{
    struct fmq_local_metrics gm;
    size_t ntrain;
    if (begin_local(a, &ntrain, &gm) != 0) return;
    fmq_gsfs_trigger_reference(&a->trig, gm.f1);
    a->gsfs_budget = a->L->ops->round_steps(a->L, &a->gsfs_batch);
    a->gsfs_uploads = 0;
    a->gsfs_checks = 0;
    a->gsfs_active = 1;
    a->gsfs_deadline = a->time_budget > 0 ? fmq_mono() + a->time_budget : 0;
}

/* One chunk of eval_every optimizer steps, then the triggers with the announced constants. */
static void gsfs_chunk(struct agent *a)
{
    struct fmq_local_metrics lm;
    struct fmq_gsfs_params gp;
    double norms[FMQ_MLP_MAXHIDDEN + 1], t0 = fmq_mono();
    long steps = a->plan.eval_every < a->gsfs_budget ? a->plan.eval_every : a->gsfs_budget;
    size_t ntrain;
    float loss = 0;
    int fired, nl;

    if (steps < 1) steps = 1;
    if (a->L->ops->train_steps(a->L, steps, &loss) != 0) {
        fmq_log(FMQ_LOG_ERROR, "local training diverged; GSFS session for v%llu ends",
                (unsigned long long)a->version);
        a->gsfs_active = 0;
        return;
    }
    a->gsfs_budget -= steps;
    a->gsfs_checks++;
    nl = a->L->ops->layer_norms(a->L, norms, FMQ_MLP_MAXHIDDEN + 1);
    if (a->trig.nlayers != nl) { /* sized by the model's layers (or groups); reference kept */
        double ref = a->trig.m_ref;
        fmq_gsfs_trigger_init(&a->trig, nl);
        fmq_gsfs_trigger_reference(&a->trig, ref);
    }
    fmq_learner_validate(a->L, 1, &lm, NULL);
    lm.loss = loss;
    fmq_gsfs_params_default(&gp);
    gp.alpha = a->plan.alpha;
    gp.beta = a->plan.beta;
    gp.delta_perf = a->plan.delta_perf;
    gp.warmup = a->plan.warmup;
    fired = fmq_gsfs_trigger_check(&a->trig, &gp, norms, lm.f1);
    ntrain = a->L->ops->held(a->L) - lm.n_val;
    if (fired && (a->plan.max_uploads == 0 || a->gsfs_uploads < a->plan.max_uploads)) {
        double sps = (double)steps * a->gsfs_batch / (fmq_mono() - t0 + 1e-9);
        if (send_delta(a, ntrain, &lm, sps, fired) == 0) {
            a->gsfs_uploads++;
            fmq_gsfs_trigger_reference(&a->trig, lm.f1);
        }
    }
    gsfs_end_check(a);
}

static void dispatch(struct agent *a, const struct fmq_mq_msg *m)
{
    if (strcmp(m->topic, a->t_global) == 0)
        on_global(a, m);
    else if (strcmp(m->topic, a->t_receipt) == 0)
        on_receipt(a, m);
    else if (strcmp(m->topic, a->t_secagg_in) == 0)
        agent_sa_on_msg(a, m);
    else
        on_sensor(a, m);
}

size_t agent_drain(struct agent *a, double seconds, size_t *handled)
{
    const double end = fmq_mono() + seconds, quiet = 0.2;
    double last = fmq_mono();
    struct fmq_mq_msg *m;

    *handled = 0;
    a->pending = 0; /* a stop trains nothing: the next run trains on the next model */
    while (fmq_mono() < end) {
        if (fmq_mq_poll(a->mq, &m, 50) == 0) {
            dispatch(a, m);
            ++*handled;
            last = fmq_mono();
        } else if (fmq_mq_queued(a->mq) == 0 && fmq_mono() - last >= quiet) {
            return 0;
        }
    }
    return fmq_mq_queued(a->mq);
}

int agent_step(struct agent *a, int timeout_ms)
{
    struct fmq_mq_msg *m;
    struct fmq_mq_stats st;
    int rc = fmq_mq_poll(a->mq, &m, a->gsfs_active ? 0 : timeout_ms);

    if (rc == 0) dispatch(a, m);
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
    /* catch-up: a newer model waiting in the queue (a persistent session's backlog, a freeze)
     * makes this one moot: train once, on the newest */
    if (a->pending && fmq_mq_queued_on(a->mq, a->t_global) > 0) return 0;
    if (a->pending && a->behind > a->version) {
        fmq_log(FMQ_LOG_INFO, "v%llu is behind v%llu, the coordinator's: waiting for it",
                (unsigned long long)a->version, (unsigned long long)a->behind);
        a->pending = 0;
    }
    if (a->pending && !a->cfg.train) a->pending = 0; /* detection only */
    if (a->pending && held(a) >= (size_t)a->cfg.min_train && held(a) >= 2) {
        a->pending = 0;
        if (!a->selected && a->phase == FMQ_PHASE_TRAIN)
            fmq_log(FMQ_LOG_INFO, "not sampled for v%llu", (unsigned long long)a->version);
        else if (a->phase == FMQ_PHASE_TRAIN && a->plan.gsfs)
            gsfs_start(a);
        else
            do_round(a);
    }
    if (a->gsfs_active && (rc != 0 || a->flows % 64 == 0)) gsfs_chunk(a);
    { /* status every status_interval, however fast rounds go (an always-on fleet ran six rounds a
         second); a calibration state change sooner, at most once a second */
        double since = fmq_mono() - a->last_status;
        if (since >= a->cfg.status_interval || (calib_now(a) != a->status_calib && since >= 1.0))
            agent_publish_status(a, "online");
    }
    return 0;
}
