/* fedmq-replay: publishes recorded Zeek conn.log flows to sensor topics, one Zeek-style JSON
 * object per flow on sensors/<site>/<device>/conn (template configurable), at the recorded pace
 * times --speed or as fast as possible (--fast). Several files play side by side, each from its
 * own start, as if each were a site going live at once. Labels travel only with --with-labels.
 * It counts what the broker confirmed (QoS 1 acknowledgements), never drops a flow it was given
 * (a full send buffer waits), and exits 1 when some flows were not confirmed within
 * --confirm-timeout seconds (the broker went away): their number is printed.
 * Usage: fedmq-replay [options] FILE... */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fedmq/config.h"
#include "fedmq/connlog.h"
#include "fedmq/mq.h"
#include "fedmq/version.h"

#define MAX_FILES 1024

struct opts {
    char broker[256];
    char client_id[64];
    struct fmq_tls_cfg tls;
    char topic[256]; /* template with {site} and {device} */
    char site[64];   /* "" = from each file name */
    double speed;    /* recorded pace multiplier */
    int fast;        /* ignore timestamps */
    int with_labels;
    double from, to; /* fraction range of each file, by time order */
    long limit;      /* stop after N flows, 0 = all */
    int qos;
    double progress;        /* seconds between progress lines */
    double confirm_timeout; /* seconds without progress before unconfirmed flows count lost */
    char *files[MAX_FILES];
    int nfiles;
};

struct item {
    double rel; /* seconds since its file's first replayed flow */
    int file;
    size_t idx;
};

static const char usage[] =
    "usage: fedmq-replay [--broker URI] [--speed X | --fast] [--with-labels]\n"
    "       [--range A:B] [--limit N] [--site NAME] [--topic TEMPLATE] [--qos 0|1]\n"
    "       [--confirm-timeout S]\n"
    "       FILE...\n"
    "TEMPLATE defaults to sensors/{site}/{device}/conn; {device} is id.orig_h and\n"
    "{site} the file name up to its first '.' (or --site). --range 0:0.7 plays the\n"
    "first 70% of each file's flows in time order.\n";

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    stop = 1;
}

static const char *const bools[] = {"fast", "with_labels", "tls_verify_hostname", NULL};

static int set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    struct opts *o = ud;
    long l;
    int rc;
    if (!*k) {
        if (o->nfiles == MAX_FILES) {
            snprintf(err, errlen, "at most %d files", MAX_FILES);
            return FMQ_EINVAL;
        }
        o->files[o->nfiles++] = (char *)v;
        return 0;
    }
    if (!strcmp(k, "broker")) return fmq_config_str(o->broker, sizeof o->broker, v);
    if (!strcmp(k, "client_id")) return fmq_config_str(o->client_id, sizeof o->client_id, v);
    if (fmq_tls_cfg_set(&o->tls, k, v, &rc)) return rc;
    if (!strcmp(k, "topic")) return fmq_config_str(o->topic, sizeof o->topic, v);
    if (!strcmp(k, "site")) return fmq_config_str(o->site, sizeof o->site, v);
    if (!strcmp(k, "speed")) return fmq_parse_double(v, 1e-3, 1e9, &o->speed);
    if (!strcmp(k, "fast")) return fmq_parse_bool(v, &o->fast);
    if (!strcmp(k, "with_labels")) return fmq_parse_bool(v, &o->with_labels);
    if (!strcmp(k, "limit")) return fmq_parse_long(v, 0, 1L << 40, &o->limit);
    if (!strcmp(k, "progress")) return fmq_parse_double(v, 0.1, 3600, &o->progress);
    if (!strcmp(k, "confirm_timeout")) return fmq_parse_double(v, 0.1, 86400, &o->confirm_timeout);
    if (!strcmp(k, "qos")) {
        rc = fmq_parse_long(v, 0, 1, &l);
        o->qos = (int)l;
        return rc;
    }
    if (!strcmp(k, "range")) {
        char *end;
        o->from = strtod(v, &end);
        if (*end != ':' || !(o->from >= 0 && o->from < 1)) goto bad_range;
        o->to = strtod(end + 1, &end);
        if (*end || !(o->to > o->from && o->to <= 1)) goto bad_range;
        return 0;
    bad_range:
        snprintf(err, errlen, "expected A:B with 0 <= A < B <= 1");
        return FMQ_EINVAL;
    }
    snprintf(err, errlen, "unknown option (see --help)");
    return FMQ_EINVAL;
}

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->rel != y->rel) return x->rel < y->rel ? -1 : 1;
    if (x->file != y->file) return x->file - y->file;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* True once the broker has confirmed nothing for `timeout` seconds while publishes wait. */
static int stalled(struct fmq_mq *mq, double timeout)
{
    static uint64_t acked;
    static double since;
    struct fmq_mq_stats st;
    fmq_mq_get_stats(mq, &st);
    if (st.acked != acked || since == 0) {
        acked = st.acked;
        since = fmq_mono();
        return 0;
    }
    return fmq_mono() - since > timeout;
}

static void sleep_until(double t)
{
    double d = t - fmq_mono();
    if (d > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct fmq_flow *flows[MAX_FILES] = {0};
    size_t nflows[MAX_FILES] = {0};
    char sites[MAX_FILES][64];
    struct item *items = NULL;
    size_t nitems = 0;
    struct fmq_mq *mq = NULL;
    struct fmq_mq_opts mo;
    struct fmq_mq_stats st;
    char json[4096], topic[512];
    double t0, last_progress;
    size_t sent = 0, failed = 0;
    int rc = 1, prc, tty = isatty(2);

    strcpy(o.broker, "tcp://127.0.0.1:1883");
    fmq_tls_cfg_default(&o.tls);
    snprintf(o.client_id, sizeof o.client_id, "fedmq-replay-%d", (int)getpid());
    strcpy(o.topic, "sensors/{site}/{device}/conn");
    o.speed = 1.0;
    o.to = 1.0;
    o.qos = 1;
    o.progress = 1.0;
    o.confirm_timeout = 60.0;
    fmq_log_use_stderr("fedmq-replay", FMQ_LOG_INFO);
    if ((prc = fmq_config_std_flags(argc, argv, "fedmq-replay", FMQ_VERSION, usage, 1)) >= 0)
        return prc;
    if (fmq_config_args(argc, argv, bools, set, &o) != 0 || o.nfiles == 0) {
        if (o.nfiles == 0) fmq_log(FMQ_LOG_ERROR, "no input files");
        return 2;
    }
    for (int f = 0; f < o.nfiles; f++) {
        long bad = 0;
        size_t from, to;
        if (fmq_connlog_read_all(o.files[f], &flows[f], &nflows[f], &bad) != 0) goto out;
        if (o.site[0])
            snprintf(sites[f], sizeof sites[f], "%s", o.site);
        else
            fmq_site_of(o.files[f], sites[f], sizeof sites[f]);
        from = (size_t)((double)nflows[f] * o.from);
        to = (size_t)((double)nflows[f] * o.to);
        struct item *grown = realloc(items, (nitems + (to - from) + 1) * sizeof *items);
        if (!grown) goto out;
        items = grown;
        for (size_t i = from; i < to; i++)
            items[nitems++] = (struct item){flows[f][i].ts - flows[f][from].ts, f, i};
        fmq_log(FMQ_LOG_INFO, "%s: site %s, flows %zu..%zu of %zu, %ld bad lines", o.files[f],
                sites[f], from, to, nflows[f], bad);
    }
    qsort(items, nitems, sizeof *items, cmp_item);
    if (o.limit > 0 && nitems > (size_t)o.limit) nitems = (size_t)o.limit;

    fmq_mq_opts_default(&mo);
    mo.uri = o.broker;
    mo.tls = &o.tls;
    mo.client_id = o.client_id;
    mo.max_buffered = 8192;
    mo.drop_oldest =
        0; /* a full buffer refuses (and the loop waits): nothing handed over is lost */
    if (fmq_mq_create(&mq, &mo)) goto out;
    if (fmq_mq_connect(mq, 30.0)) {
        fmq_log(FMQ_LOG_ERROR, "cannot connect to %s within 30 s", o.broker);
        goto out;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    t0 = last_progress = fmq_mono();
    for (size_t i = 0; i < nitems && !stop; i++) {
        const struct fmq_flow *fl = &flows[items[i].file][items[i].idx];
        int n;
        if (!o.fast) sleep_until(t0 + items[i].rel / o.speed);
        n = fmq_flow_to_json(fl, o.with_labels, json, sizeof json);
        if (n < 0) continue;
        fmq_sensor_topic(o.topic, sites[items[i].file], fl->orig_h, topic, sizeof topic);
        /* never drop a flow: when Paho's buffer is full, wait for it to drain and retry, but
         * not forever: a broker gone for confirm_timeout seconds ends the replay */
        while ((prc = fmq_mq_publish(mq, topic, json, (size_t)n, o.qos, 0)) == FMQ_EFULL && !stop &&
               !stalled(mq, o.confirm_timeout))
            sleep_until(fmq_mono() + 0.002);
        if (prc == FMQ_EFULL) break;
        if (prc != 0) {
            failed++;
            continue;
        }
        sent++;
        /* keep Paho's queue bounded when publishing as fast as possible */
        if ((sent & 63) == 0)
            while (fmq_mq_pending(mq) > 2048 && !stop && !stalled(mq, o.confirm_timeout))
                sleep_until(fmq_mono() + 0.002);
        if (fmq_mono() - last_progress >= o.progress) {
            fmq_mq_get_stats(mq, &st);
            fprintf(stderr,
                    "%sreplay: %zu/%zu flows (%.0f%%), %.0f msg/s, %.1f MB, recorded t+%.0f s%s",
                    tty ? "\r" : "", sent, nitems, 100.0 * (double)sent / (double)nitems,
                    (double)sent / (fmq_mono() - t0), st.bytes_out / 1e6, items[i].rel,
                    tty ? "" : "\n");
            last_progress = fmq_mono();
        }
    }
    while (fmq_mq_pending(mq) > 0 && !stalled(mq, o.confirm_timeout))
        sleep_until(fmq_mono() + 0.02);
    fmq_mq_get_stats(mq, &st);
    if (tty) fputc('\n', stderr);
    fmq_log(FMQ_LOG_INFO,
            "published %zu of %zu flows (%llu payload bytes) in %.2f s; the broker confirmed "
            "%llu%s",
            sent, nitems, (unsigned long long)st.bytes_out, fmq_mono() - t0,
            (unsigned long long)st.acked, stop ? " (interrupted)" : "");
    if (failed) fmq_log(FMQ_LOG_ERROR, "%zu flows could not be published", failed);
    if (st.acked < nitems)
        fmq_log(FMQ_LOG_ERROR, "%llu of %zu flows were not confirmed by the broker: lost",
                (unsigned long long)(nitems - st.acked), nitems);
    rc = stop || failed || st.acked < nitems ? 1 : 0;
out:
    fmq_mq_destroy(mq);
    for (int f = 0; f < o.nfiles; f++) free(flows[f]);
    free(items);
    return rc;
}
