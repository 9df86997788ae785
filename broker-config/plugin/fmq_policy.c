/* fedmq broker policy (see fmq_policy.h). */
#include "fmq_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedmq/config.h"
#include "fedmq/gpt.h"

static const char *const deny_names[FMQ_DENY_COUNT] = {
    "ok",        "defer", "anonymous", "id_mismatch", "topic", "size",
    "malformed", "dim",   "task",      "forged",      "rate"};

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
    strcpy(p->sensors[0], "sensors");
    p->nsensors = 1;
    p->max_update_bytes = 4u << 20;
    p->max_dim = 1u << 20;
    p->rate = 5.0;
    p->burst = 20.0;
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
    else if (!strcmp(k, "sensors"))
        return set_list(p->sensors, &p->nsensors, v, err, errlen);
    else if (!strcmp(k, "max_update_bytes")) {
        if ((rc = fmq_parse_long(v, 64, FMQ_WIRE_MAX_PAYLOAD, &l)) == 0)
            p->max_update_bytes = (size_t)l;
    } else if (!strcmp(k, "max_dim")) {
        if ((rc = fmq_parse_long(v, 1, FMQ_MODEL_MAXPARAMS, &l)) == 0) p->max_dim = (uint32_t)l;
    } else if (!strcmp(k, "update_rate"))
        rc = fmq_parse_double(v, 0.001, 1e6, &p->rate);
    else if (!strcmp(k, "update_burst"))
        rc = fmq_parse_double(v, 1, 1e6, &p->burst);
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
    p->delta_cap = p->max_dim;
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

int fmq_policy_role(const struct fmq_policy *p, const char *u)
{
    if (!u || !*u) return FMQ_ROLE_NONE;
    if (listed((char(*)[FMQ_ID_MAX])p->coordinators, p->ncoordinators, u))
        return FMQ_ROLE_COORDINATOR;
    if (listed((char(*)[FMQ_ID_MAX])p->dashboards, p->ndashboards, u)) return FMQ_ROLE_DASHBOARD;
    if (listed((char(*)[FMQ_ID_MAX])p->sensors, p->nsensors, u)) return FMQ_ROLE_SENSOR;
    return fmq_id_valid(u) ? FMQ_ROLE_AGENT : FMQ_ROLE_NONE;
}

int fmq_policy_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) return 0;
    for (;;) {
        if (f[0] == '#') return 1;
        if (f[0] == '+')
            for (f++; *t && *t != '/'; t++) {
            }
        else {
            for (; *f && *f != '/'; f++, t++)
                if (*f != *t) return 0;
            if (*t && *t != '/') return 0;
        }
        if (!*f) return !*t;
        if (!*t) return !strcmp(f, "/#"); /* "a/#" also matches "a" */
        f++, t++;                         /* both at '/' */
    }
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

/* Role rules: access bits, pattern with %r = root, %u = identity. */
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
    {FMQ_ROLE_AGENT, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "sensors/%u/#"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/model/global"},
    /* at start it reads the retained model so it never publishes a lower version */
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/model/global"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/coordinator"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/metrics"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_WRITE, "%r/+/receipt/+"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/update/+"},
    {FMQ_ROLE_COORDINATOR, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/status/+"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/metrics"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/coordinator"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/alerts/#"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/+/status/#"},
    {FMQ_ROLE_DASHBOARD, FMQ_ACC_READ | FMQ_ACC_SUBSCRIBE, "%r/broker/#"},
    {FMQ_ROLE_SENSOR, FMQ_ACC_WRITE, "sensors/#"},
};

static void expand(const char *pat, const char *root, const char *u, char *out, size_t cap)
{
    size_t n = 0;
    for (; *pat && n + 1 < cap; pat++) {
        const char *v = NULL;
        if (pat[0] == '%' && pat[1] == 'r') v = root;
        if (pat[0] == '%' && pat[1] == 'u') v = u;
        if (v) {
            for (; *v && n + 1 < cap; v++) out[n++] = *v;
            pat++;
        } else
            out[n++] = *pat;
    }
    out[n] = 0;
}

static int topic_allowed(const struct fmq_policy *p, int role, const char *u, int access,
                         const char *topic)
{
    char pat[256];
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (rules[i].role != role || !(rules[i].access & access)) continue;
        expand(rules[i].pattern, p->root, u, pat, sizeof pat);
        if (access == FMQ_ACC_SUBSCRIBE ? fmq_policy_covers(pat, topic)
                                        : fmq_policy_match(pat, topic))
            return 1;
    }
    return 0;
}

/* Is this topic (or filter) in fedmq's namespace? */
static int ours(const struct fmq_policy *p, const char *t)
{
    size_t rl = strlen(p->root);
    if (t[0] == '#' || (t[0] == '+' && (t[1] == '/' || !t[1]))) return 1;
    if (!strncmp(t, p->root, rl) && (t[rl] == '/' || !t[rl])) return 1;
    return !strncmp(t, "sensors", 7) && (t[7] == '/' || !t[7]);
}

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

static int rate_ok(struct fmq_policy *p, const char *id, double now)
{
    uint64_t h = hash_id(id);
    size_t k = (size_t)h & (FMQ_POLICY_RATE_SLOTS - 1), probes = 0;
    struct fmq_rate_slot *s;
    while (p->rates[k].key && p->rates[k].key != h && probes++ < FMQ_POLICY_RATE_SLOTS)
        k = (k + 1) & (FMQ_POLICY_RATE_SLOTS - 1);
    if (probes >= FMQ_POLICY_RATE_SLOTS) { /* full: start over rather than stop limiting */
        memset(p->rates, 0, sizeof p->rates);
        k = (size_t)h & (FMQ_POLICY_RATE_SLOTS - 1);
    }
    s = &p->rates[k];
    if (!s->key) *s = (struct fmq_rate_slot){h, p->burst, now};
    s->tokens += (now - s->last) * p->rate;
    if (s->tokens > p->burst) s->tokens = p->burst;
    s->last = now;
    if (s->tokens < 1.0) return 0;
    s->tokens -= 1.0;
    return 1;
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

static int check_update(struct fmq_policy *p, const char *u, const char *topic, const void *payload,
                        size_t len, double now)
{
    struct fmq_update up;
    char err[256], task[FMQ_ID_MAX];
    int rc;
    if (len > p->max_update_bytes) return FMQ_DENY_SIZE;
    memset(&up, 0, sizeof up);
    up.delta = p->delta;
    up.delta_cap = p->dim ? p->dim : p->delta_cap; /* observe() sized delta for dim */
    up.stats = &p->moments;
    up.benign = &p->bmoments;
    rc = fmq_wire_decode_update(&p->dec, payload, len, p->dim, &up, err, sizeof err);
    if (rc == FMQ_EDIM) return FMQ_DENY_DIM;
    if (rc != 0) return FMQ_DENY_MALFORMED;
    if (up.no_ids && fmq_update_topic_ids(&up, topic, err, sizeof err) != 0)
        return FMQ_DENY_MALFORMED; /* then the checks below hold the topic against itself */
    topic_task(topic, task, sizeof task);
    if (strcmp(up.task, task) != 0 || (p->task[0] && strcmp(up.task, p->task) != 0))
        return FMQ_DENY_TASK;
    if (strcmp(up.agent, u) != 0) return FMQ_DENY_FORGED;
    if (!rate_ok(p, u, now)) return FMQ_DENY_RATE;
    p->allowed_updates++;
    return FMQ_DENY_OK;
}

int fmq_policy_check(struct fmq_policy *p, const char *client_id, const char *u, int access,
                     const char *topic, const void *payload, size_t len, double now)
{
    int role = fmq_policy_role(p, u), d;
    char pat[256];

    if (role == FMQ_ROLE_NONE)
        d = FMQ_DENY_ANONYMOUS;
    else if (!client_id || strcmp(client_id, u) != 0)
        d = FMQ_DENY_ID_MISMATCH;
    else if (!ours(p, topic))
        return FMQ_DENY_DEFER;
    else if (!topic_allowed(p, role, u, access, topic))
        d = FMQ_DENY_TOPIC;
    else {
        expand("%r/+/update/+", p->root, u, pat, sizeof pat);
        if (access == FMQ_ACC_WRITE && fmq_policy_match(pat, topic))
            d = check_update(p, u, topic, payload, len, now);
        else
            d = FMQ_DENY_OK;
    }
    if (d != FMQ_DENY_OK) p->denied[d]++;
    return d;
}

void fmq_policy_observe(struct fmq_policy *p, const char *u, const char *topic, const void *payload,
                        size_t len)
{
    struct fmq_model m = {0};
    struct fmq_gpt g = {0};
    struct fmq_global gl = {0};
    char pat[256], err[256];
    expand("%r/+/model/global", p->root, u ? u : "", pat, sizeof pat);
    if (fmq_policy_role(p, u) != FMQ_ROLE_COORDINATOR || !fmq_policy_match(pat, topic) || !len)
        return;
    gl.model = &m;
    gl.gpt = &g;
    if (fmq_wire_decode_global(&p->dec, payload, len, &gl, err, sizeof err) == 0) {
        size_t n = m.nparams;
        if (gl.kind == FMQ_MODEL_GIOT) fmq_gpt_trainable(&g, &n);
        if (n > p->delta_cap) {
            float *d = realloc(p->delta, n * sizeof(float));
            if (!d) goto out; /* keep the old model's dim: updates for the new one are refused */
            p->delta = d;
            p->delta_cap = n;
        }
        p->dim = (uint32_t)n;
        p->model_version = gl.version;
    }
out:
    fmq_model_free(&m);
    fmq_gpt_free(&g);
}

size_t fmq_policy_metrics_json(const struct fmq_policy *p, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap,
                                "{\"allowed_updates\":%llu,\"model_dim\":%u,\"model_version\":%llu,"
                                "\"denied\":{",
                                (unsigned long long)p->allowed_updates, p->dim,
                                (unsigned long long)p->model_version);
    for (int d = FMQ_DENY_ANONYMOUS; d < FMQ_DENY_COUNT && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":%llu", d > FMQ_DENY_ANONYMOUS ? "," : "",
                              deny_names[d], (unsigned long long)p->denied[d]);
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "}}");
    return n < cap ? n : cap - 1;
}
