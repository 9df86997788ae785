/* fedmq-inspect: subscribes to topic filters and prints every message as one JSON line on
 * stdout: topic, retained flag, size, and the decoded envelope (update, global model, status,
 * secure aggregation step) or
 * the JSON text (metrics, alerts, sensor records) as a string. For operators and for the
 * integration tests, which read what really crossed the broker.
 * Usage: fedmq-inspect [--broker URI] [--count N] [--timeout S] [FILTER...] */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fedmq/config.h"
#include "fedmq/mq.h"
#include "fedmq/version.h"
#include "fedmq/wire.h"

#define MAX_FILTERS 16

struct opts {
    char broker[256];
    char client_id[64]; /* "" = fedmq-inspect-PID; with TLS it must equal the certificate CN */
    struct fmq_tls_cfg tls;
    long count;
    double timeout;
    const char *filters[MAX_FILTERS];
    int nfilters;
};

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    stop = 1;
}

static int set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    struct opts *o = ud;
    if (!*k) {
        if (o->nfilters == MAX_FILTERS) return FMQ_EINVAL;
        o->filters[o->nfilters++] = v;
        return 0;
    }
    if (!strcmp(k, "broker")) return fmq_config_str(o->broker, sizeof o->broker, v);
    if (!strcmp(k, "client_id")) return fmq_config_str(o->client_id, sizeof o->client_id, v);
    {
        int rc;
        if (fmq_tls_cfg_set(&o->tls, k, v, &rc)) return rc;
    }
    if (!strcmp(k, "count")) return fmq_parse_long(v, 0, 1L << 40, &o->count);
    if (!strcmp(k, "timeout")) return fmq_parse_double(v, 0, 1e7, &o->timeout);
    snprintf(err, errlen, "unknown option");
    return FMQ_EINVAL;
}

static void put_escaped(const uint8_t *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar((int)c);
    }
    putchar('"');
}

/* A status (JSON, or msgpack from an older agent): its fields, or why it is invalid. */
static void print_status(struct fmq_wire_dec *d, const struct fmq_mq_msg *m)
{
    struct fmq_status s;
    char err[256];
    if (fmq_wire_decode_status(d, m->payload, m->len, &s, err, sizeof err) == 0)
        printf("\"kind\":\"status\",\"agent\":\"%s\",\"state\":\"%s\",\"model\":%llu,"
               "\"flows\":%llu,\"labelled\":%llu,\"buffered\":%llu,\"alerts\":%llu,"
               "\"bad\":%llu,\"calib\":\"%s\",\"format\":\"%s\"",
               s.agent, s.state, (unsigned long long)s.model_version, (unsigned long long)s.flows,
               (unsigned long long)s.labelled, (unsigned long long)s.buffered,
               (unsigned long long)s.alerts, (unsigned long long)s.bad, s.calib,
               m->payload[0] == '{' ? "json" : "msgpack");
    else {
        printf("\"kind\":\"invalid\",\"error\":");
        put_escaped((const uint8_t *)err, strlen(err));
    }
}

static void print_msg(struct fmq_wire_dec *d, const struct fmq_mq_msg *m)
{
    static float delta[FMQ_MODEL_MAXPARAMS / 64];
    static struct fmq_moments mo, bmo;
    char type[16], err[256];

    printf("{\"topic\":");
    put_escaped((const uint8_t *)m->topic, strlen(m->topic));
    printf(",\"retained\":%s,\"bytes\":%zu,", m->retained ? "true" : "false", m->len);
    if (m->len > 0 && m->payload[0] == '{' && strstr(m->topic, "/status/")) {
        print_status(d, m);
        printf(",\"text\":");
        put_escaped(m->payload, m->len);
    } else if (m->len > 0 && m->payload[0] == '{') {
        printf("\"kind\":\"json\",\"text\":");
        put_escaped(m->payload, m->len);
    } else if (m->len == 0) {
        printf("\"kind\":\"empty\"");
    } else if (fmq_wire_peek(d, m->payload, m->len, type, err, sizeof err) != 0) {
        printf("\"kind\":\"invalid\",\"error\":");
        put_escaped((const uint8_t *)err, strlen(err));
    } else if (!strcmp(type, "update")) {
        struct fmq_update u = {0};
        u.delta = delta;
        u.delta_cap = sizeof delta / sizeof delta[0];
        u.stats = &mo;
        u.benign = &bmo;
        if (fmq_wire_decode_update(d, m->payload, m->len, 0, &u, err, sizeof err) != 0 ||
            fmq_update_topic_ids(&u, m->topic, err, sizeof err) != 0) {
            printf("\"kind\":\"invalid\",\"error\":");
            put_escaped((const uint8_t *)err, strlen(err));
        } else {
            printf("\"kind\":\"update\",\"agent\":\"%s\",\"task\":\"%s\",\"base\":%llu,"
                   "\"seq\":%llu,\"n\":%llu,\"codec\":\"%s\",\"dim\":%u,\"stats\":%s,"
                   "\"loss\":%.6f,\"val_acc\":%.6f,\"val_f1\":%.6f,\"sketch_benign\":%ld",
                   u.agent, u.task, (unsigned long long)u.base_version, (unsigned long long)u.seq,
                   (unsigned long long)u.n_examples, fmq_codec_name(u.codec), u.dim,
                   u.has_stats ? "true" : "false", u.metrics.loss, u.metrics.accuracy, u.metrics.f1,
                   u.has_sketch ? (long)u.sketch.n : -1L);
            if (u.codec == FMQ_CODEC_MASKED) { /* the share of words within +-2^24 as int32:
                                                  0.8% when masked, all for a clear change */
                uint32_t small = 0;
                for (uint32_t i = 0; i < u.dim; i++) {
                    int32_t w;
                    memcpy(&w, &u.delta[i], sizeof w);
                    small += w > -(1 << 24) && w < (1 << 24);
                }
                printf(",\"words_small\":%.6f", u.dim ? (double)small / u.dim : 0.0);
            }
        }
    } else if (!strcmp(type, "secagg")) {
        struct fmq_secagg_msg sm;
        struct fmq_buf data = {0};
        if (fmq_wire_decode_secagg(d, m->payload, m->len, 0, &sm, &data, err, sizeof err) == 0)
            printf("\"kind\":\"secagg\",\"step\":%d,\"version\":%llu,\"phase\":%d,"
                   "\"data_bytes\":%zu",
                   sm.step, (unsigned long long)sm.version, sm.phase, sm.len);
        else {
            printf("\"kind\":\"invalid\",\"error\":");
            put_escaped((const uint8_t *)err, strlen(err));
        }
        fmq_buf_free(&data);
    } else if (!strcmp(type, "global")) {
        struct fmq_model mdl = {0};
        struct fmq_global g = {0};
        g.model = &mdl;
        if (fmq_wire_decode_global(d, m->payload, m->len, &g, err, sizeof err) == 0)
            printf("\"kind\":\"global\",\"task\":\"%s\",\"run\":\"%s\",\"version\":%llu,"
                   "\"round\":%llu,\"phase\":\"%s\",\"strategy\":\"%s\",\"model\":\"%s\","
                   "\"params\":%zu,\"norm\":%s,\"profile\":%s,\"rule_sites\":%u",
                   g.task, g.run, (unsigned long long)g.version, (unsigned long long)g.round,
                   g.phase == FMQ_PHASE_STATS   ? "stats"
                   : g.phase == FMQ_PHASE_CALIB ? "calib"
                                                : "train",
                   g.strategy, mdl.cfg.kind == FMQ_MODEL_MLP ? "mlp" : "logreg", mdl.nparams,
                   mdl.has_norm ? "true" : "false", mdl.has_prof ? "true" : "false",
                   g.rule.channels ? g.rule.sites : 0);
        else {
            printf("\"kind\":\"invalid\",\"error\":");
            put_escaped((const uint8_t *)err, strlen(err));
        }
        fmq_model_free(&mdl);
    } else if (!strcmp(type, "status")) {
        print_status(d, m);
    } else
        printf("\"kind\":\"unknown\",\"type\":\"%s\"", type);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct fmq_mq *mq = NULL;
    struct fmq_mq_opts mo;
    struct fmq_wire_dec d = {0};
    char cid[64];
    long seen = 0;
    double start;
    int rc = 1;

    strcpy(o.broker, "tcp://127.0.0.1:1883");
    fmq_tls_cfg_default(&o.tls);
    fmq_log_use_stderr("fedmq-inspect", FMQ_LOG_WARN);
    if (fmq_config_has_flag(argc, argv, "--version", "-V")) {
        printf("fedmq-inspect %s\n", FMQ_VERSION);
        return 0;
    }
    if (fmq_config_has_flag(argc, argv, "--help", "-h")) {
        printf("usage: fedmq-inspect [--broker URI] [--client-id ID] [--tls-ca F --tls-cert F "
               "--tls-key F]\n"
               "       [--count N] [--timeout S] [FILTER...]\n"
               "FILTER defaults to fedmq/#\n");
        return 0;
    }
    {
        static const char *const bools[] = {"tls_verify_hostname", NULL};
        if (fmq_config_args(argc, argv, bools, set, &o) != 0) return 2;
    }
    if (o.nfilters == 0) o.filters[o.nfilters++] = "fedmq/#";
    if (o.client_id[0])
        snprintf(cid, sizeof cid, "%s", o.client_id);
    else
        snprintf(cid, sizeof cid, "fedmq-inspect-%d", (int)getpid());
    fmq_mq_opts_default(&mo);
    mo.uri = o.broker;
    mo.tls = &o.tls;
    mo.client_id = cid;
    if (fmq_wire_dec_init(&d) || fmq_mq_create(&mq, &mo)) goto out;
    for (int i = 0; i < o.nfilters; i++)
        if (fmq_mq_subscribe(mq, o.filters[i], 1)) goto out;
    if (fmq_mq_connect(mq, 30.0)) {
        fmq_log(FMQ_LOG_ERROR, "cannot connect to %s within 30 s", o.broker);
        goto out;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    start = fmq_mono();
    while (!stop && (o.count == 0 || seen < o.count) &&
           (o.timeout == 0 || fmq_mono() - start < o.timeout)) {
        struct fmq_mq_msg *m;
        if (fmq_mq_poll(mq, &m, 100) == 0) {
            print_msg(&d, m);
            seen++;
        }
    }
    rc = 0;
out:
    fmq_mq_destroy(mq);
    fmq_wire_dec_free(&d);
    return rc;
}
