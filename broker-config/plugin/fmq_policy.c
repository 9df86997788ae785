/* fedmq broker policy (see fmq_policy.h). */
#include "fmq_policy.h"

#include <mosquitto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedmq/config.h"
#include "fedmq/flow.h"
#include "fedmq/gpt.h"

static const char *const deny_names[FMQ_DENY_COUNT] = {
    "ok",  "defer", "anonymous", "id_mismatch", "topic",  "size",     "malformed",
    "dim", "task",  "forged",    "rate",        "retain", "retained", "label"};

const char *fmq_deny_name(int d)
{
    return d >= 0 && d < FMQ_DENY_COUNT ? deny_names[d] : "?";
}

void fmq_policy_default(struct fmq_policy *p)
{
    memset(p, 0, sizeof *p);
    strcpy(p->root, "fedmq");
    strcpy(p->coordinators[0], "fedmq-coordinator");
    p->ncoordinators = 1;
    strcpy(p->dashboards[0], "dashboard");
    p->ndashboards = 1;
    strcpy(p->operators[0], "operator");
    p->noperators = 1;
    strcpy(p->sensor_suffix, ".sensors");
    p->max_update_bytes = 4u << 20;
    p->max_status_bytes = 1024; /* a status is about 150 bytes */
    p->max_alert_bytes = 8192;  /* an explained GIoT alert is under 2 kB */
    p->max_sensor_bytes = 8192; /* a Zeek conn record is under 1 kB */
    p->max_dim = 1u << 20;
    p->rate[FMQ_KIND_UPDATE] = 5.0, p->burst[FMQ_KIND_UPDATE] = 20.0;
    p->rate[FMQ_KIND_STATUS] = 2.0, p->burst[FMQ_KIND_STATUS] = 20.0; /* one per 5 s by default */
    p->rate[FMQ_KIND_ALERT] = 200.0, p->burst[FMQ_KIND_ALERT] = 2000.0;
    p->rate[FMQ_KIND_SECAGG] = 5.0, p->burst[FMQ_KIND_SECAGG] = 20.0; /* three per round */
    p->max_secagg_bytes = FMQ_WIRE_SA_MAX;
    p->max_retained = 4;
}

/* update_rate, status_burst, ...: the kind its first word names */
static int kind_of_option(const char *k)
{
    return !strncmp(k, "update", 6)   ? FMQ_KIND_UPDATE
           : !strncmp(k, "status", 6) ? FMQ_KIND_STATUS
           : !strncmp(k, "secagg", 6) ? FMQ_KIND_SECAGG
                                      : FMQ_KIND_ALERT;
}

static int set_list(char (*dst)[FMQ_ID_MAX], int *n, const char *v, char *err, size_t errlen)
{
    char tmp[1024], *save = NULL, *tok;
    if (strlen(v) >= sizeof tmp) {
        snprintf(err, errlen, "list too long");
        return FMQ_EINVAL;
    }
    strcpy(tmp, v);
    *n = 0;
    for (tok = strtok_r(tmp, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (*n == FMQ_POLICY_MAX_NAMES || !fmq_id_valid(tok)) {
            snprintf(err, errlen, "expected up to %d ids of [A-Za-z0-9._-], got \"%s\"",
                     FMQ_POLICY_MAX_NAMES, tok);
            return FMQ_EINVAL;
        }
        strcpy(dst[(*n)++], tok);
    }
    return 0;
}

int fmq_policy_set(struct fmq_policy *p, const char *k, const char *v, char *err, size_t errlen)
{
    long l;
    int rc = 0;
    if (!strcmp(k, "root")) {
        if (!fmq_id_valid(v))
            rc = FMQ_EINVAL;
        else
            snprintf(p->root, sizeof p->root, "%s", v);
    } else if (!strcmp(k, "task")) {
        if (*v && !fmq_id_valid(v))
            rc = FMQ_EINVAL;
        else
            snprintf(p->task, sizeof p->task, "%s", v);
    } else if (!strcmp(k, "coordinators"))
        return set_list(p->coordinators, &p->ncoordinators, v, err, errlen);
    else if (!strcmp(k, "dashboards"))
        return set_list(p->dashboards, &p->ndashboards, v, err, errlen);
    else if (!strcmp(k, "operators"))
        return set_list(p->operators, &p->noperators, v, err, errlen);
    else if (!strcmp(k, "labellers"))
        return set_list(p->labellers, &p->nlabellers, v, err, errlen);
    else if (!strcmp(k, "sensors")) {
        snprintf(err, errlen,
                 "the shared sensor identity is gone: each site's feed is <site>%s "
                 "(sensor_suffix; broker-config/README.md)",
                 p->sensor_suffix);
        return FMQ_EINVAL;
    } else if (!strcmp(k, "sensor_suffix")) {
        if (!*v || strlen(v) >= sizeof p->sensor_suffix || !fmq_id_valid(v))
            rc = FMQ_EINVAL;
        else
            snprintf(p->sensor_suffix, sizeof p->sensor_suffix, "%s", v);
    } else if (!strcmp(k, "max_update_bytes") || !strcmp(k, "max_status_bytes") ||
               !strcmp(k, "max_alert_bytes") || !strcmp(k, "max_sensor_bytes")) {
        size_t *dst = k[4] == 'u'   ? &p->max_update_bytes
                      : k[4] == 's' ? (k[5] == 't' ? &p->max_status_bytes : &p->max_sensor_bytes)
                                    : &p->max_alert_bytes;
        if ((rc = fmq_parse_long(v, 64, FMQ_WIRE_MAX_PAYLOAD, &l)) == 0) *dst = (size_t)l;
    } else if (!strcmp(k, "max_dim")) {
        if ((rc = fmq_parse_long(v, 1, FMQ_MODEL_MAXPARAMS, &l)) == 0) p->max_dim = (uint32_t)l;
    } else if (!strcmp(k, "max_retained")) {
        if ((rc = fmq_parse_long(v, 0, FMQ_POLICY_RETAINED_MAX, &l)) == 0) p->max_retained = (int)l;
    } else if (!strcmp(k, "update_rate") || !strcmp(k, "status_rate") || !strcmp(k, "alert_rate") ||
               !strcmp(k, "secagg_rate"))
        rc = fmq_parse_double(v, 0.001, 1e6, &p->rate[kind_of_option(k)]);
    else if (!strcmp(k, "update_burst") || !strcmp(k, "status_burst") ||
             !strcmp(k, "alert_burst") || !strcmp(k, "secagg_burst"))
        rc = fmq_parse_double(v, 1, 1e6, &p->burst[kind_of_option(k)]);
    else if (!strcmp(k, "metrics_interval"))
        return 0; /* the plugin's, not the policy's */
    else {
        snprintf(err, errlen, "unknown option (see broker-config/README.md)");
        return FMQ_EINVAL;
    }
    if (rc) snprintf(err, errlen, "invalid value \"%s\"", v);
    return rc;
}

int fmq_policy_init(struct fmq_policy *p)
{
    int rc = fmq_wire_dec_init(&p->dec);
    if (rc) return rc;
    p->delta_cap = p->max_dim > FMQ_STATS_SECURE_DIM ? p->max_dim : FMQ_STATS_SECURE_DIM;
    p->delta = malloc(p->delta_cap * sizeof(float));
    return p->delta ? 0 : FMQ_ENOMEM;
}

void fmq_policy_free(struct fmq_policy *p)
{
    fmq_wire_dec_free(&p->dec);
    free(p->delta);
    p->delta = NULL;
}

static int listed(char (*names)[FMQ_ID_MAX], int n, const char *u)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], u)) return 1;
    return 0;
}

/* The site of a sensor identity "<site><suffix>" into site (FMQ_ID_MAX); 0 when u is none. */
static int sensor_site(const struct fmq_policy *p, const char *u, char *site)
{
    size_t n = strlen(u), k = strlen(p->sensor_suffix);
    if (n <= k || strcmp(u + n - k, p->sensor_suffix) != 0) return 0;
    memcpy(site, u, n - k);
    site[n - k] = 0;
    return fmq_id_valid(site);
}

int fmq_policy_role(const struct fmq_policy *p, const char *u)
{
    char site[FMQ_ID_MAX];
    if (!u || !*u || !fmq_id_valid(u)) return FMQ_ROLE_NONE;
    if (listed((char(*)[FMQ_ID_MAX])p->coordinators, p->ncoordinators, u))
        return FMQ_ROLE_COORDINATOR;
    if (listed((char(*)[FMQ_ID_MAX])p->operators, p->noperators, u)) return FMQ_ROLE_OPERATOR;
    if (listed((char(*)[FMQ_ID_MAX])p->dashboards, p->ndashboards, u)) return FMQ_ROLE_DASHBOARD;
    if (sensor_site(p, u, site)) return FMQ_ROLE_SENSOR;
    return FMQ_ROLE_AGENT;
}

/* The broker's own matcher (exported by mosquitto to plugins, and by libmosquitto to the unit
 * tests), so that the plugin and the broker can never disagree on what a filter matches; an
 * invalid filter or topic matches nothing. */
int fmq_policy_match(const char *f, const char *t)
{
    bool result = false;
    return mosquitto_topic_matches_sub(f, t, &result) == MOSQ_ERR_SUCCESS && result;
}

int fmq_policy_covers(const char *g, const char *f)
{
    for (;;) {
        if (g[0] == '#') return 1;
        if (f[0] == '#') return 0; /* the filter reaches deeper than the pattern allows */
        if (g[0] == '+') {
            if (f[0] == '+')
                f++;
            else
                for (; *f && *f != '/'; f++) {
                }
            g++;
        } else {
            if (f[0] == '+') return 0;
            for (; *g && *g != '/'; g++, f++)
                if (*g != *f) return 0;
            if (*f && *f != '/') return 0;
        }
        if (!*g) return !*f;
        if (!*f) return 0;
        g++, f++;
    }
}

/* Role rules: access bits, pattern with %r = root, %u = identity, %s = a sensor's site. */
struct rule {
    int role, access;
    const char *pattern;
};
static const struct rule rules[] = {
    {FMQ_ROLE_AGENT, FMQ_ACC_WRITE, "%r/+/update/%u"},
    {FMQ_ROLE_AGENT, FMQ_ACC_WRITE, "%r/+/status/%u"},
    {FMQ_ROLE_AGENT, FMQ_ACC_WRITE, "%r/+/alerts/%u"},
    {FMQ_ROLE_AGENT, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/model/global"},
    {FMQ_ROLE_AGENT, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/receipt/%u"},
    {FMQ_ROLE_AGENT, FMQ_ACC_WRITE, "%r/+/secagg/%u"},
    {FMQ_ROLE_AGENT, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/secagg-to/%u"},
    {FMQ_ROLE_AGENT, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "sensors/%u/#"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/model/global"},
    /* at start it reads the retained model so it never publishes a lower version */
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/model/global"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/coordinator"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/metrics"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/receipt/+"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/secagg-to/+"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/secagg/+"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/update/+"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/status/+"},
    {FMQ_ROLE_OPERATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/metrics"},
    {FMQ_ROLE_OPERATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/coordinator"},
    {FMQ_ROLE_OPERATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/alerts/#"},
    {FMQ_ROLE_OPERATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/status/#"},
    {FMQ_ROLE_OPERATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/broker/#"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/metrics"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/coordinator"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/status/#"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/broker/#"},
    {FMQ_ROLE_SENSOR, FMQ_ACC_WRITE, "sensors/%s/#"},
};

static void expand(const struct fmq_policy *p, const char *pat, const char *u, char *out,
                   size_t cap)
{
    char site[FMQ_ID_MAX] = "";
    size_t n = 0;
    if (u && !sensor_site(p, u, site)) site[0] = 0;
    for (; *pat && n + 1 < cap; pat++) {
        const char *v = NULL;
        if (pat[0] == '%' && pat[1] == 'r') v = p->root;
        if (pat[0] == '%' && pat[1] == 'u') v = u ? u : "";
        if (pat[0] == '%' && pat[1] == 's') v = site[0] ? site : "\x01"; /* matches nothing */
        if (v) {
            for (; *v && n + 1 < cap; v++) out[n++] = *v;
            pat++;
        } else
            out[n++] = *pat;
    }
    out[n] = 0;
}

/* second topic level (the task) into out */
static void topic_task(const char *topic, char *out, size_t cap)
{
    const char *a = strchr(topic, '/'), *b;
    size_t n;
    out[0] = 0;
    if (!a) return;
    b = strchr(++a, '/');
    n = b ? (size_t)(b - a) : strlen(a);
    if (n < cap) memcpy(out, a, n), out[n] = 0;
}

static int under_root(const struct fmq_policy *p, const char *t)
{
    size_t rl = strlen(p->root);
    return !strncmp(t, p->root, rl) && (t[rl] == '/' || !t[rl]);
}

static int topic_allowed(const struct fmq_policy *p, int role, const char *u, int access,
                         const char *topic)
{
    char pat[256], task[FMQ_ID_MAX];
    if (access == FMQ_ACC_WRITE && under_root(p, topic)) {
        /* a task is a valid id, and <root>/broker/ is the plugin's own */
        topic_task(topic, task, sizeof task);
        if (!fmq_id_valid(task) || !strcmp(task, "broker")) return 0;
    }
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (rules[i].role != role || !(rules[i].access & access)) continue;
        expand(p, rules[i].pattern, u, pat, sizeof pat);
        if (access == FMQ_ACC_SUBSCRIBE ? fmq_policy_covers(pat, topic)
                                        : fmq_policy_match(pat, topic))
            return 1;
    }
    return 0;
}

/* Is this topic (or filter) in fedmq's namespace? */
static int ours(const struct fmq_policy *p, const char *t)
{
    if (t[0] == '#' || (t[0] == '+' && (t[1] == '/' || !t[1]))) return 1;
    if (under_root(p, t)) return 1;
    return !strncmp(t, "sensors", 7) && (t[7] == '/' || !t[7]);
}

/* A shared subscription "$share/<group>/<filter>": the filter, or NULL. */
static const char *share_filter(const char *t)
{
    const char *g;
    if (strncmp(t, "$share/", 7) != 0) return NULL;
    g = strchr(t + 7, '/');
    return g && g > t + 7 ? g + 1 : NULL;
}

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

/* The identity's slot: its token buckets and retained topics. */
static struct fmq_rate_slot *slot_of(struct fmq_policy *p, const char *id, double now)
{
    uint64_t h = hash_id(id);
    size_t k = (size_t)h & (FMQ_POLICY_RATE_SLOTS - 1), probes = 0;
    struct fmq_rate_slot *s;
    while (p->rates[k].key && p->rates[k].key != h && probes++ < FMQ_POLICY_RATE_SLOTS)
        k = (k + 1) & (FMQ_POLICY_RATE_SLOTS - 1);
    if (probes >= FMQ_POLICY_RATE_SLOTS) { /* full: start over rather than stop limiting (one
                                              slot per certificate: the CA bounds them) */
        memset(p->rates, 0, sizeof p->rates);
        k = (size_t)h & (FMQ_POLICY_RATE_SLOTS - 1);
    }
    s = &p->rates[k];
    if (!s->key) {
        memset(s, 0, sizeof *s);
        s->key = h;
        for (int i = 0; i < FMQ_KIND_N; i++) s->tokens[i] = p->burst[i], s->last[i] = now;
    }
    return s;
}

/* Charges one message of this kind to the identity's token bucket, before anything is decoded. */
static int rate_ok(struct fmq_policy *p, const char *id, int kind, double now)
{
    struct fmq_rate_slot *s = slot_of(p, id, now);
    s->tokens[kind] += (now - s->last[kind]) * p->rate[kind];
    if (s->tokens[kind] > p->burst[kind]) s->tokens[kind] = p->burst[kind];
    s->last[kind] = now;
    if (s->tokens[kind] < 1.0) return 0;
    s->tokens[kind] -= 1.0;
    return 1;
}

/* A retained publish: allowed for at most max_retained distinct topics per identity (clearing
 * one, an empty payload, always). */
static int retained_ok(struct fmq_policy *p, const char *id, const char *topic, size_t len,
                       double now)
{
    struct fmq_rate_slot *s = slot_of(p, id, now);
    uint64_t h = hash_id(topic);
    int free_at = -1;
    if (len == 0) return 1;
    for (int i = 0; i < p->max_retained; i++) {
        if (s->retained[i] == h) return 1;
        if (!s->retained[i] && free_at < 0) free_at = i;
    }
    if (free_at < 0) return 0;
    s->retained[free_at] = h;
    return 1;
}

static struct fmq_task_dim *task_dim(struct fmq_policy *p, const char *task, int create)
{
    struct fmq_task_dim *free_at = NULL, *oldest = NULL;
    for (int i = 0; i < FMQ_POLICY_MAX_TASKS; i++) {
        struct fmq_task_dim *t = &p->dims[i];
        if (t->task[0] && !strcmp(t->task, task)) return t;
        if (!t->task[0] && !free_at) free_at = t;
        if (t->task[0] && (!oldest || t->version < oldest->version)) oldest = t;
    }
    if (!create) return NULL;
    if (!free_at) free_at = oldest; /* more tasks than slots: the least advanced one goes */
    memset(free_at, 0, sizeof *free_at);
    snprintf(free_at->task, sizeof free_at->task, "%s", task);
    return free_at;
}

uint32_t fmq_policy_dim(const struct fmq_policy *p, const char *task)
{
    struct fmq_task_dim *t = task_dim((struct fmq_policy *)p, task, 0);
    return t ? t->dim : 0;
}

static int check_update(struct fmq_policy *p, const char *u, const char *topic, const void *payload,
                        size_t len)
{
    struct fmq_update up;
    char err[256], task[FMQ_ID_MAX];
    uint32_t dim;
    int rc;
    if (len > p->max_update_bytes) return FMQ_DENY_SIZE;
    topic_task(topic, task, sizeof task);
    dim = fmq_policy_dim(p, task);
    memset(&up, 0, sizeof up);
    up.delta = p->delta;
    up.delta_cap = dim ? dim : p->max_dim; /* observe() sized delta for every known dim */
    if (up.delta_cap < FMQ_STATS_SECURE_DIM) up.delta_cap = FMQ_STATS_SECURE_DIM;
    up.stats = &p->moments;
    up.benign = &p->bmoments;
    rc = fmq_wire_decode_update(&p->dec, payload, len, 0, &up, err, sizeof err);
    if (rc == FMQ_EDIM) return FMQ_DENY_DIM;
    if (rc != 0) return FMQ_DENY_MALFORMED;
    /* the model's dimension; a secure statistics round's masked vector has its own */
    if (up.codec != FMQ_CODEC_NONE && dim && up.dim != dim &&
        !(up.codec == FMQ_CODEC_MASKED && up.dim == FMQ_STATS_SECURE_DIM))
        return FMQ_DENY_DIM;
    if (up.no_ids && fmq_update_topic_ids(&up, topic, err, sizeof err) != 0)
        return FMQ_DENY_MALFORMED; /* then the checks below hold the topic against itself */
    if (strcmp(up.task, task) != 0 || (p->task[0] && strcmp(up.task, p->task) != 0))
        return FMQ_DENY_TASK;
    if (strcmp(up.agent, u) != 0) return FMQ_DENY_FORGED;
    p->allowed_updates++;
    return FMQ_DENY_OK;
}

/* Secure aggregation from an agent: bounded, a keys, shares or answer step (the steps the
 * coordinator sends are not an agent's to send), data of 2 to 255 agents. */
static int check_secagg(struct fmq_policy *p, const void *payload, size_t len)
{
    struct fmq_secagg_msg s;
    struct fmq_buf data = {0};
    char err[256];
    int rc;
    if (len > p->max_secagg_bytes) return FMQ_DENY_SIZE;
    rc = fmq_wire_decode_secagg(&p->dec, payload, len, 0, &s, &data, err, sizeof err);
    fmq_buf_free(&data);
    if (rc != 0 || (s.step != FMQ_SA_KEYS && s.step != FMQ_SA_SHARES && s.step != FMQ_SA_ANSWER))
        return FMQ_DENY_MALFORMED;
    return FMQ_DENY_OK;
}

static int check_status(struct fmq_policy *p, const char *u, const char *topic, const void *payload,
                        size_t len)
{
    struct fmq_status st;
    char err[256], task[FMQ_ID_MAX];
    if (len > p->max_status_bytes) return FMQ_DENY_SIZE;
    if (len == 0) return FMQ_DENY_OK; /* clears its retained status */
    if (fmq_wire_decode_status(&p->dec, payload, len, &st, err, sizeof err) != 0)
        return FMQ_DENY_MALFORMED;
    topic_task(topic, task, sizeof task);
    if (strcmp(st.task, task) != 0) return FMQ_DENY_TASK;
    return strcmp(st.agent, u) != 0 ? FMQ_DENY_FORGED : FMQ_DENY_OK;
}

static int check_alert(struct fmq_policy *p, const char *u, const void *payload, size_t len)
{
    char err[160], agent[FMQ_ID_MAX];
    if (len > p->max_alert_bytes) return FMQ_DENY_SIZE;
    if (fmq_json_object_check(payload, len, "agent", agent, sizeof agent, err, sizeof err) != 0)
        return FMQ_DENY_MALFORMED;
    return strcmp(agent, u) != 0 ? FMQ_DENY_FORGED : FMQ_DENY_OK;
}

static int check_sensor(struct fmq_policy *p, const char *u, const void *payload, size_t len)
{
    struct fmq_flow f;
    char err[200];
    if (len > p->max_sensor_bytes) return FMQ_DENY_SIZE;
    if (fmq_flow_from_json(payload, len, &f, err, sizeof err) != 0) return FMQ_DENY_MALFORMED;
    if (f.label != FMQ_LABEL_UNKNOWN &&
        !listed((char(*)[FMQ_ID_MAX])p->labellers, p->nlabellers, u))
        return FMQ_DENY_LABEL;
    return FMQ_DENY_OK;
}

/* The checks of one publish on a topic the role may use (fmq_policy.h, Messages). */
static int check_write(struct fmq_policy *p, int role, const char *u, const char *topic,
                       const void *payload, size_t len, int retain, double now)
{
    static const char *const kinds[FMQ_KIND_N] = {"%r/+/update/+", "%r/+/status/+", "%r/+/alerts/+",
                                                  "%r/+/secagg/+"};
    char pat[256];
    int kind = -1;
    if (role == FMQ_ROLE_COORDINATOR) return FMQ_DENY_OK; /* trusted: models, metrics, receipts */
    if (role == FMQ_ROLE_SENSOR) {
        if (retain) return FMQ_DENY_RETAIN; /* a stream of flows, never a state */
        return check_sensor(p, u, payload, len);
    }
    for (int k = 0; k < FMQ_KIND_N && kind < 0; k++) {
        expand(p, kinds[k], u, pat, sizeof pat);
        if (fmq_policy_match(pat, topic)) kind = k;
    }
    if (kind < 0) return FMQ_DENY_TOPIC;
    /* charged first: a malformed 4 MiB update costs the sender a token before any decoding */
    if (!rate_ok(p, u, kind, now)) return FMQ_DENY_RATE;
    if (retain && kind != FMQ_KIND_STATUS)
        return FMQ_DENY_RETAIN; /* replayed to every
                                    new coordinator */
    if (retain && !retained_ok(p, u, topic, len, now)) return FMQ_DENY_RETAINED;
    return kind == FMQ_KIND_UPDATE   ? check_update(p, u, topic, payload, len)
           : kind == FMQ_KIND_STATUS ? check_status(p, u, topic, payload, len)
           : kind == FMQ_KIND_SECAGG ? check_secagg(p, payload, len)
                                     : check_alert(p, u, payload, len);
}

int fmq_policy_check(struct fmq_policy *p, const char *client_id, const char *u, int access,
                     const char *topic, const void *payload, size_t len, int retain, double now)
{
    int role = fmq_policy_role(p, u), d;
    const char *shared = access == FMQ_ACC_SUBSCRIBE ? share_filter(topic) : NULL;

    if (role == FMQ_ROLE_NONE)
        d = FMQ_DENY_ANONYMOUS;
    else if (!client_id || strcmp(client_id, u) != 0)
        d = FMQ_DENY_ID_MISMATCH;
    else if (access == FMQ_ACC_UNSUBSCRIBE)
        return FMQ_DENY_OK; /* giving up a subscription reveals nothing */
    else if (shared)        /* a shared subscription: the coordinator's, spread over its replicas */
        d = role == FMQ_ROLE_COORDINATOR && topic_allowed(p, role, u, access, shared)
                ? FMQ_DENY_OK
                : FMQ_DENY_TOPIC;
    else if (!ours(p, topic))
        return FMQ_DENY_DEFER;
    else if (!topic_allowed(p, role, u, access, topic))
        d = FMQ_DENY_TOPIC;
    else if (access == FMQ_ACC_WRITE)
        d = check_write(p, role, u, topic, payload, len, retain, now);
    else
        d = FMQ_DENY_OK;
    if (d != FMQ_DENY_OK) p->denied[d]++;
    return d;
}

void fmq_policy_observe(struct fmq_policy *p, const char *u, const char *topic, const void *payload,
                        size_t len)
{
    struct fmq_model m = {0};
    struct fmq_gpt g = {0};
    struct fmq_global gl = {0};
    char pat[256], err[256], task[FMQ_ID_MAX];
    struct fmq_task_dim *t;
    expand(p, "%r/+/model/global", u, pat, sizeof pat);
    if (fmq_policy_role(p, u) != FMQ_ROLE_COORDINATOR || !fmq_policy_match(pat, topic) || !len)
        return;
    topic_task(topic, task, sizeof task);
    gl.model = &m;
    gl.gpt = &g;
    if (fmq_wire_decode_global(&p->dec, payload, len, &gl, err, sizeof err) == 0 &&
        !strcmp(gl.task, task) && (t = task_dim(p, task, 1))) {
        size_t n = m.nparams;
        if (gl.kind == FMQ_MODEL_GIOT) fmq_gpt_trainable(&g, &n);
        if (n > p->delta_cap) {
            float *d = realloc(p->delta, n * sizeof(float));
            if (!d) goto out; /* keep the old model's dim: updates for the new one are refused */
            p->delta = d;
            p->delta_cap = n;
        }
        t->dim = (uint32_t)n;
        t->version = gl.version;
    }
out:
    fmq_model_free(&m);
    fmq_gpt_free(&g);
}

size_t fmq_policy_metrics_json(const struct fmq_policy *p, char *buf, size_t cap)
{
    const struct fmq_task_dim *last = NULL;
    size_t n;
    for (int i = 0; i < FMQ_POLICY_MAX_TASKS; i++) /* the most recent model, and every task's */
        if (p->dims[i].task[0] && (!last || p->dims[i].version > last->version)) last = &p->dims[i];
    n = (size_t)snprintf(buf, cap,
                         "{\"allowed_updates\":%llu,\"model_dim\":%u,\"model_version\":%llu,"
                         "\"tasks\":{",
                         (unsigned long long)p->allowed_updates, last ? last->dim : 0,
                         (unsigned long long)(last ? last->version : 0));
    for (int i = 0, k = 0; i < FMQ_POLICY_MAX_TASKS && n < cap; i++)
        if (p->dims[i].task[0])
            n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":{\"dim\":%u,\"version\":%llu}",
                                  k++ ? "," : "", p->dims[i].task, p->dims[i].dim,
                                  (unsigned long long)p->dims[i].version);
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "},\"denied\":{");
    for (int d = FMQ_DENY_ANONYMOUS; d < FMQ_DENY_COUNT && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":%llu", d > FMQ_DENY_ANONYMOUS ? "," : "",
                              deny_names[d], (unsigned long long)p->denied[d]);
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "}}");
    return n < cap ? n : cap - 1;
}
