/* fedmq-sim: a federated run in one process, for sweeps (bench/eval). The coordinator and every
 * agent are the daemons' own code (fedmq_coord, fedmq_agent) talking over the in-process bus
 * (mem://, core/net/mq_mem.c) instead of a broker: the same strategy, model, codec and wire
 * encoding, so a simulated run and a real one with the same data and seeds give the same
 * global models (tests/integration/test_sim.py checks it).
 *
 * Each --agent FILE[,FILE...] becomes one agent, named as fedmq-replay names the first file's
 * site, fed all the files' flows with labels in the order `fedmq-replay --with-labels` would
 * publish them before a real run (by time since each file's start). Then the coordinator starts,
 * and the loop steps it and each agent in turn until the configured rounds are done. Each pass
 * steps the agents in a fresh random order (seeded by the coordinator's `seed`; `--order fixed`
 * for index order): real agents train in parallel and reach the broker in no fixed order, and a
 * fixed order hands every GSFS quorum to the same first agents. Rounds close
 * when every agent has sent (expected_agents = the number of agents, deadline effectively off)
 * unless set otherwise: single-threaded stepping makes wall-clock deadlines meaningless here.
 *
 * New sites (--new-site FILE): once the federation is done, one more agent per file joins it
 * as a new site would: it adopts the final global model (retained on the bus), receives the
 * file's flows in time order without their labels, and scores and judges each live through its
 * own calibration (learning on the fleet rule, then its own thresholds), exactly as
 * fedmq-agent does; it trains nothing. Its verdicts are compared with the file's labels
 * (unlabelled flows are scored but left out of the rates) and written to the summary's
 * "new_sites": the deployed rule's confusion matrix and rates, the calibration state each flow
 * was judged in, the final thresholds, and recall at 1% FPR of each score as a diagnostic.
 *
 * A site's own later traffic (--agent-test FILE[,FILE...] after an --agent): once the
 * federation is done, that agent (with its model, personalised or not, and its calibration as
 * they are) receives each FILE's flows without labels, each file a context of its own, and is
 * judged the same way; the summary's "agent_tests", one per file.
 *
 * Usage: fedmq-sim --agent FILE[,FILE...] [--agent-test FILE]... [--agent-set KEY=VALUE]...
 *                  [--coord-set KEY=VALUE]...
 *                  [--new-site FILE]... [--new-site-set KEY=VALUE]... [--order random|fixed]
 *                  [--summary FILE]
 * KEYs are those of deploy/agent.conf.example and deploy/coordinator.conf.example. The
 * coordinator writes its per-round metrics where `metrics_file` says; --summary gets one JSON
 * object with the CPU seconds of the coordinator and of each agent, and the wall time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "coord.h"
#include "fedmq/config.h"
#include "fedmq/connlog.h"
#include "fedmq/flow.h"
#include "fedmq/version.h"

#define SIM_MAX_SETS 64
#define SIM_MAX_FILES 64 /* per agent */

struct sim_opts {
    const char **files;
    int nfiles;
    const char **new_sites;
    int nnew;
    const char **agent_tests; /* per agent (index of --agent), NULL = none */
    const char *new_sets[SIM_MAX_SETS];
    int nnew_sets;
    const char *trace; /* per-flow verdicts of the new sites (one file, appended) */
    const char *agent_sets[SIM_MAX_SETS], *coord_sets[SIM_MAX_SETS];
    int nagent_sets, ncoord_sets;
    const char *summary;
    int fixed_order; /* step agents in index order instead of a seeded random one */
};

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "key=value" through a daemon's own setter; the error names the setting. */
static int apply_set(const char *kv, int (*fn)(void *, const char *, const char *, char *, size_t),
                     void *cfg, const char *const *bool_keys)
{
    char key[128], err[200] = "";
    const char *eq = strchr(kv, '=');
    size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
    int rc;
    if (n == 0 || n >= sizeof key) {
        fmq_log(FMQ_LOG_ERROR, "%s: expected KEY=VALUE", kv);
        return FMQ_EINVAL;
    }
    memcpy(key, kv, n);
    key[n] = 0;
    for (char *p = key; *p; p++)
        if (*p == '-') *p = '_';
    if (!eq) { /* a bare boolean key means true */
        int known = 0;
        for (int i = 0; bool_keys[i]; i++) known |= !strcmp(bool_keys[i], key);
        if (!known) {
            fmq_log(FMQ_LOG_ERROR, "%s: expected KEY=VALUE", kv);
            return FMQ_EINVAL;
        }
    }
    rc = fn(cfg, key, eq ? eq + 1 : "true", err, sizeof err);
    if (rc != 0) fmq_log(FMQ_LOG_ERROR, "%s: %s", kv, err[0] ? err : fmq_strerror(rc));
    return rc;
}

static int parse_args(int argc, char **argv, struct sim_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            printf("fedmq-sim %s\n", FMQ_VERSION);
            exit(0);
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: fedmq-sim --agent FILE[,FILE...]... [--agent-set KEY=VALUE]...\n"
                   "                 [--agent-test FILE]... [--coord-set KEY=VALUE]...\n"
                   "                 [--new-site FILE]...\n"
                   "                 [--new-site-set KEY=VALUE]... [--new-site-trace FILE]\n"
                   "                 [--order random|fixed]\n"
                   "                 [--summary FILE]\n"
                   "KEYs: deploy/agent.conf.example, deploy/coordinator.conf.example\n");
            exit(0);
        }
        if (!v) {
            fmq_log(FMQ_LOG_ERROR, "%s: missing value", a);
            return FMQ_EINVAL;
        }
        if (!strcmp(a, "--agent"))
            o->files[o->nfiles++] = v;
        else if (!strcmp(a, "--agent-test") && o->nfiles > 0)
            o->agent_tests[o->nfiles - 1] = v;
        else if (!strcmp(a, "--new-site"))
            o->new_sites[o->nnew++] = v;
        else if (!strcmp(a, "--new-site-set") && o->nnew_sets < SIM_MAX_SETS)
            o->new_sets[o->nnew_sets++] = v;
        else if (!strcmp(a, "--new-site-trace"))
            o->trace = v;
        else if (!strcmp(a, "--agent-set") && o->nagent_sets < SIM_MAX_SETS)
            o->agent_sets[o->nagent_sets++] = v;
        else if (!strcmp(a, "--coord-set") && o->ncoord_sets < SIM_MAX_SETS)
            o->coord_sets[o->ncoord_sets++] = v;
        else if (!strcmp(a, "--summary"))
            o->summary = v;
        else if (!strcmp(a, "--order") && (!strcmp(v, "random") || !strcmp(v, "fixed")))
            o->fixed_order = !strcmp(v, "fixed");
        else {
            fmq_log(FMQ_LOG_ERROR, "%s: unknown option (or more than %d settings)", a,
                    SIM_MAX_SETS);
            return FMQ_EINVAL;
        }
        i++;
    }
    if (o->nfiles == 0) {
        fmq_log(FMQ_LOG_ERROR, "no --agent FILE given");
        return FMQ_EINVAL;
    }
    return 0;
}

/* Steps an agent until its queue is empty and no GSFS session is running. */
static void drain_agent(struct agent *a, double *cpu)
{
    double t0 = cpu_now();
    do agent_step(a, 0);
    while (fmq_mq_queued(a->mq) > 0 || a->gsfs_active);
    *cpu += cpu_now() - t0;
}

struct item {
    double rel; /* seconds since its file's first flow */
    int file;
    size_t idx;
};

/* fedmq-replay's order: by time since each file's start, then file, then position. */
static int cmp_item(const void *x, const void *y)
{
    const struct item *a = x, *b = y;
    if (a->rel != b->rel) return a->rel < b->rel ? -1 : 1;
    if (a->file != b->file) return a->file - b->file;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* What a new site's agent said of each flow, against the flow's label. */
struct site_eval {
    int8_t *truth; /* owned: labels in the order the flows were published */
    size_t n, k;   /* published, judged */
    float *score;  /* owned: n x FMQ_NCH, the scores each flow was judged on */
    int8_t *lab;   /* owned: n, as truth but only for judged flows */
    struct fmq_confusion cm, state_cm[3];
    uint64_t unlabelled, unlabelled_alerts, judged_in[3], alerts, unmatched;
    int channels;
    FILE *trace; /* optional: one line per judged flow */
    /* false positives per conversation (device -> responder:port/proto), so a report can say
     * when one conversation makes most of a file's false positives; a fixed table, allocated
     * at the first false positive, and what it cannot hold is counted */
    struct conv_fp {
        char key[112];
        uint64_t fp;
    } * conv;
    size_t nconv;
    uint64_t conv_other;
};

#define CONV_SLOTS 4096 /* power of two; at most half filled */

/* Counts one benign flow that alerted against its conversation (FNV-1a, linear probing). */
static void count_conv_fp(struct site_eval *e, const struct fmq_flow *f)
{
    char key[112];
    uint64_t h = 1469598103934665603ULL;
    size_t i;
    snprintf(key, sizeof key, "%s -> %s:%d/%s", f->orig_h, f->resp_h, (int)f->resp_p, f->proto);
    if (!e->conv && !(e->conv = calloc(CONV_SLOTS, sizeof *e->conv))) {
        e->conv_other++;
        return;
    }
    for (const char *c = key; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    for (i = h & (CONV_SLOTS - 1); e->conv[i].fp; i = (i + 1) & (CONV_SLOTS - 1))
        if (!strcmp(e->conv[i].key, key)) {
            e->conv[i].fp++;
            return;
        }
    if (e->nconv >= CONV_SLOTS / 2) {
        e->conv_other++;
        return;
    }
    memcpy(e->conv[i].key, key, sizeof key);
    e->conv[i].fp = 1;
    e->nconv++;
}

static int cmp_conv(const void *a, const void *b)
{
    const struct conv_fp *x = a, *y = b;
    return x->fp < y->fp ? 1 : x->fp > y->fp ? -1 : strcmp(x->key, y->key);
}

/* The conversations with most false positives, as a JSON array of at most 3. */
static void conv_json(FILE *f, struct site_eval *e)
{
    size_t n = 0;
    fputs(",\"fp_conversations\":[", f);
    if (e->conv) {
        for (size_t i = 0; i < CONV_SLOTS; i++)
            if (e->conv[i].fp) e->conv[n++] = e->conv[i]; /* compacts; the table is done */
        qsort(e->conv, n, sizeof *e->conv, cmp_conv);
        for (size_t i = 0; i < n && i < 3; i++)
            fprintf(f, "%s{\"conversation\":\"%s\",\"fp\":%llu}", i ? "," : "", e->conv[i].key,
                    (unsigned long long)e->conv[i].fp);
        memset(e->conv + n, 0, (CONV_SLOTS - n) * sizeof *e->conv); /* no stale copies: a
                                                                       second report agrees */
    }
    fprintf(f, "],\"fp_conversation_count\":%zu,\"fp_conversations_uncounted\":%llu", n,
            (unsigned long long)e->conv_other);
}

static void on_verdict(void *ud, const struct fmq_flow *f, const struct fmq_verdict *v)
{
    struct site_eval *e = ud;
    int t;
    if (e->k >= e->n) {
        e->unmatched++;
        return;
    }
    t = e->truth[e->k];
    if (e->trace)
        fprintf(e->trace, "%zu\t%.6f\t%d\t%s\t%g\t%g\t%g\t%g\t%d\n", e->k, f->ts, t,
                fmq_calib_state_name(v->state), v->score[0], v->thr[0], v->score[1], v->thr[1],
                v->alert);
    memcpy(e->score + e->k * FMQ_NCH, v->score, FMQ_NCH * sizeof(float));
    e->lab[e->k] = (int8_t)t;
    e->k++;
    e->alerts += v->alert != 0;
    if (v->state >= 0 && v->state < 3) e->judged_in[v->state]++;
    if (t == FMQ_LABEL_UNKNOWN) {
        e->unlabelled++;
        e->unlabelled_alerts += v->alert != 0;
        return;
    }
    fmq_confusion_add(&e->cm, t == FMQ_LABEL_MALICIOUS, v->alert);
    if (t == FMQ_LABEL_BENIGN && v->alert) count_conv_fp(e, f);
    if (v->state >= 0 && v->state < 3)
        fmq_confusion_add(&e->state_cm[v->state], t == FMQ_LABEL_MALICIOUS, v->alert);
}

/* Publishes every flow of the agent's files (comma-separated) to its sensor topics, in the
 * order fedmq-replay would, and lets the agent take them in; with_labels 0 leaves the labels
 * out of the messages and records them in ev (a new site's evaluation). */
static int feed(struct fmq_mq *bus, struct agent *a, const char *list, double *cpu, int with_labels,
                struct site_eval *ev)
{
    struct fmq_flow *flows[SIM_MAX_FILES] = {0};
    size_t n[SIM_MAX_FILES] = {0}, nitems = 0, k = 0;
    struct item *items = NULL;
    char json[2048], topic[256], path[1024];
    const char *p = list;
    int nf = 0, rc = 0;

    while (*p && nf < SIM_MAX_FILES) {
        size_t len = strcspn(p, ",");
        long bad = 0;
        snprintf(path, sizeof path, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        if ((rc = fmq_connlog_read_all(path, &flows[nf], &n[nf], &bad)) != 0) {
            fmq_log(FMQ_LOG_ERROR, "%s: cannot read: %s", path, fmq_strerror(rc));
            goto out;
        }
        nitems += n[nf++];
    }
    if (!(items = malloc((nitems + 1) * sizeof *items))) {
        rc = FMQ_ENOMEM;
        goto out;
    }
    for (int f = 0; f < nf; f++)
        for (size_t i = 0; i < n[f]; i++)
            items[k++] = (struct item){flows[f][i].ts - flows[f][0].ts, f, i};
    qsort(items, nitems, sizeof *items, cmp_item);
    if (ev && (!(ev->truth = malloc(nitems + 1)) || !(ev->lab = malloc(nitems + 1)) ||
               !(ev->score = malloc((nitems + 1) * FMQ_NCH * sizeof(float))))) {
        rc = FMQ_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nitems; i++) {
        const struct fmq_flow *fl = &flows[items[i].file][items[i].idx];
        char dev[sizeof fl->orig_h];
        int len = fmq_flow_to_json(fl, with_labels, json, sizeof json);
        if (len < 0) continue;
        if (ev) ev->truth[ev->n++] = (int8_t)fl->label;
        snprintf(dev, sizeof dev, "%s", fl->orig_h);
        for (char *q = dev; *q; q++) /* as fedmq-replay: no wildcard or level in a level */
            if (*q == '+' || *q == '#' || *q == '/') *q = '_';
        snprintf(topic, sizeof topic, "sensors/%s/%s/conn", a->cfg.id, dev);
        fmq_mq_publish(bus, topic, json, (size_t)len, 1, 0);
        if ((i & 1023) == 1023) drain_agent(a, cpu); /* keep the queue short */
    }
    drain_agent(a, cpu);
out:
    for (int f = 0; f < nf; f++) free(flows[f]);
    free(items);
    return rc;
}

static double rate(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : -1.0;
}

/* recall at 1% FPR of one channel over the judged labelled flows; -1 when undefined */
static double channel_recall(const struct site_eval *e, int ch, float *x, float *y, float *scratch)
{
    size_t m = 0;
    for (size_t i = 0; i < e->k; i++)
        if (e->lab[i] >= 0 && !isnan(e->score[i * FMQ_NCH + ch])) {
            x[m] = e->score[i * FMQ_NCH + ch];
            y[m++] = e->lab[i] == FMQ_LABEL_MALICIOUS;
        }
    return m ? fmq_recall_at_fpr(x, y, m, 0.01, scratch, NULL, NULL) : -1.0;
}

/* v as a JSON number, null when not finite (a channel the model does not have). */
static const char *jnum(char *b, double v)
{
    if (isfinite(v))
        snprintf(b, 32, "%.6g", v);
    else
        strcpy(b, "null");
    return b;
}

/* One new site's figures as a JSON object. */
static void site_json(FILE *f, const char *file, struct site_eval *e, const struct agent *a)
{
    const struct fmq_confusion *m = &e->cm;
    uint64_t ben = m->fp + m->tn, mal = m->tp + m->fn;
    size_t k = e->k ? e->k : 1;
    float *x = malloc(k * sizeof *x), *y = malloc(k * sizeof *y), *sc = malloc(3 * k * sizeof *sc);
    double r[FMQ_NCH] = {-1, -1}, either = -1;
    const struct fmq_calib *cal = a->L ? &a->L->cal : NULL;
    char nb[8][32];
    if (x && y && sc) {
        for (int ch = 0; ch < FMQ_NCH; ch++) r[ch] = channel_recall(e, ch, x, y, sc);
        if (r[0] >= 0 && r[1] >= 0) { /* both channels: rank fusion as the coordinator reports */
            float *b = malloc(k * sizeof *b);
            size_t n = 0;
            if (b) {
                for (size_t i = 0; i < e->k; i++)
                    if (e->lab[i] >= 0) {
                        x[n] = e->score[i * FMQ_NCH + FMQ_CH_NOV];
                        b[n] = e->score[i * FMQ_NCH + FMQ_CH_SUP];
                        y[n++] = e->lab[i] == FMQ_LABEL_MALICIOUS;
                    }
                either = fmq_recall_at_fpr_either(x, b, y, n, 0.01, sc);
                free(b);
            }
        }
    }
    fprintf(f,
            "{\"test_file\":\"%s\",\"model\":\"%s\",\"malicious\":%llu,\"benign\":%llu,"
            "\"unlabelled\":%llu,\"judged\":%zu,\"tp\":%llu,\"fp\":%llu,\"tn\":%llu,"
            "\"fn\":%llu,\"fpr_deployed\":%.6f,\"recall_deployed\":%.6f,"
            "\"precision_deployed\":%.6f,\"f1_deployed\":%.6f,\"alerts_per_1k_benign\":%.3f,"
            "\"alerts\":%llu,\"unlabelled_alerts\":%llu,"
            "\"recall_at_1pct_fpr_supervised\":%.6f,\"recall_at_1pct_fpr_novelty\":%.6f,"
            "\"recall_at_1pct_fpr_either\":%.6f,"
            "\"judged_in\":{\"learning\":%llu,\"calibrated\":%llu,\"recalibrating\":%llu},"
            "\"fp_in\":{\"learning\":%llu,\"calibrated\":%llu,\"recalibrating\":%llu},"
            "\"tp_in\":{\"learning\":%llu,\"calibrated\":%llu,\"recalibrating\":%llu},"
            "\"final_state\":\"%s\",\"thr_supervised\":%s,\"thr_novelty\":%s,"
            "\"rule_supervised\":[%s,%s],\"rule_novelty\":[%s,%s],\"target\":[%s,%s],"
            "\"unmatched\":%llu",
            file, a->L ? a->L->ops->name : "none", (unsigned long long)mal, (unsigned long long)ben,
            (unsigned long long)e->unlabelled, e->k, (unsigned long long)m->tp,
            (unsigned long long)m->fp, (unsigned long long)m->tn, (unsigned long long)m->fn,
            rate(m->fp, ben), rate(m->tp, mal), rate(m->tp, m->tp + m->fp),
            mal ? 2.0 * (double)m->tp / (double)(2 * m->tp + m->fp + m->fn) : -1.0,
            ben ? 1000.0 * (double)m->fp / (double)ben : -1.0, (unsigned long long)e->alerts,
            (unsigned long long)e->unlabelled_alerts, r[FMQ_CH_SUP], r[FMQ_CH_NOV], either,
            (unsigned long long)e->judged_in[0], (unsigned long long)e->judged_in[1],
            (unsigned long long)e->judged_in[2], (unsigned long long)e->state_cm[0].fp,
            (unsigned long long)e->state_cm[1].fp, (unsigned long long)e->state_cm[2].fp,
            (unsigned long long)e->state_cm[0].tp, (unsigned long long)e->state_cm[1].tp,
            (unsigned long long)e->state_cm[2].tp, cal ? fmq_calib_state_name(cal->state) : "none",
            jnum(nb[0], cal ? cal->thr[FMQ_CH_SUP] : NAN),
            jnum(nb[1], cal ? cal->thr[FMQ_CH_NOV] : NAN),
            jnum(nb[2], cal && (cal->rule.channels & 1) ? cal->rule.thr[FMQ_CH_SUP] : NAN),
            jnum(nb[3], cal && (cal->rule.channels & 1) ? cal->rule.cap[FMQ_CH_SUP] : NAN),
            jnum(nb[4], cal && (cal->rule.channels & 2) ? cal->rule.thr[FMQ_CH_NOV] : NAN),
            jnum(nb[5], cal && (cal->rule.channels & 2) ? cal->rule.cap[FMQ_CH_NOV] : NAN),
            jnum(nb[6], cal ? cal->target[0] : NAN), jnum(nb[7], cal ? cal->target[1] : NAN),
            (unsigned long long)e->unmatched);
    conv_json(f, e); /* reorders e->conv: the site's last report */
    fputc('}', f);
    free(x);
    free(y);
    free(sc);
}

/* Changes whenever the coordinator took an update in, refused one or closed a round (status
 * messages, which agents send on a wall-clock timer, do not count). */
static uint64_t progress(const struct coord *c)
{
    return c->version * 1000003ULL + (uint64_t)c->participants * 7919ULL + c->rej_bad +
           c->rej_stale + c->rej_dup + c->rej_task + c->rej_phase + c->rej_replay +
           c->pool.superseded;
}

int main(int argc, char **argv)
{
    static struct coord c;
    static struct sim_opts o;
    struct coord_cfg cc;
    struct agent **agents = NULL;
    double *agent_cpu = NULL, coord_cpu = 0, t0 = fmq_mono(), deadline_default = 1e6;
    struct fmq_mq *bus = NULL;
    struct fmq_mq_opts mo;
    char bus_uri[64];
    int rc = 1, n = 0, explicit_expected = 0, explicit_deadline = 0, stalled = 0;
    int *order = NULL; /* this pass's stepping order */
    struct site_eval *sites = NULL, *tests = NULL;
    int ntests = 0, *test_agent = NULL;
    char **test_file = NULL;
    struct agent **site_agents = NULL;
    int nsites = 0;
    struct fmq_rng rng;
    FILE *f;

    fmq_log_use_stderr("fedmq-sim", FMQ_LOG_WARN);
    o.files = calloc((size_t)argc, sizeof *o.files);
    o.new_sites = calloc((size_t)argc, sizeof *o.new_sites);
    o.agent_tests = calloc((size_t)argc, sizeof *o.agent_tests);
    if (!o.files || !o.new_sites || !o.agent_tests || parse_args(argc, argv, &o) != 0) return 2;
    snprintf(bus_uri, sizeof bus_uri, "mem://sim-%ld", (long)getpid());
    agents = calloc((size_t)o.nfiles, sizeof *agents);
    agent_cpu = calloc((size_t)o.nfiles, sizeof *agent_cpu);
    order = calloc((size_t)o.nfiles, sizeof *order);
    if (!agents || !agent_cpu || !order) goto out;

    /* the coordinator's settings first: a bad one stops the run before any work */
    coord_cfg_default(&cc);
    for (int i = 0; i < o.ncoord_sets; i++) {
        if (apply_set(o.coord_sets[i], coord_cfg_set, &cc, coord_bool_keys) != 0) goto out;
        explicit_expected |= !strncmp(o.coord_sets[i], "expected_agents=", 16) ||
                             !strncmp(o.coord_sets[i], "expected-agents=", 16);
        explicit_deadline |= !strncmp(o.coord_sets[i], "deadline=", 9);
    }
    coord_cfg_finish(&cc);
    if (!explicit_expected) cc.expected_agents = o.nfiles;
    if (!explicit_deadline) cc.deadline = deadline_default;
    snprintf(cc.broker, sizeof cc.broker, "%s", bus_uri);
    /* warnings and errors by default: a sweep runs many; log_level=debug asks for more */
    fmq_log_use_stderr("fedmq-sim", cc.log_level == FMQ_LOG_INFO ? FMQ_LOG_WARN : cc.log_level);

    fmq_mq_opts_default(&mo);
    mo.uri = bus_uri;
    mo.client_id = "fedmq-sim-feed";
    if (fmq_mq_create(&bus, &mo) || fmq_mq_connect(bus, 1)) goto out;

    for (n = 0; n < o.nfiles; n++) {
        struct agent_cfg ac;
        agent_cfg_default(&ac);
        ac.update_retry = 0; /* receipts come within the same loop pass; wall time is no clock */
        for (int i = 0; i < o.nagent_sets; i++)
            if (apply_set(o.agent_sets[i], agent_cfg_set, &ac, agent_bool_keys) != 0) goto out;
        snprintf(ac.broker, sizeof ac.broker, "%s", bus_uri);
        {
            char first[1024];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(o.files[n], ","), o.files[n]);
            fmq_site_of(first, ac.id, sizeof ac.id);
        }
        snprintf(ac.sensors[0], sizeof ac.sensors[0], "sensors/%s/+/conn", ac.id);
        ac.nsensors = 1;
        if (!(agents[n] = calloc(1, sizeof **agents))) goto out;
        if (agent_init(agents[n], &ac) != 0 || agent_connect(agents[n], 30.0) != 0) {
            fmq_log(FMQ_LOG_ERROR, "%s: cannot start agent %s", o.files[n], ac.id);
            n++;
            goto out;
        }
        if (feed(bus, agents[n], o.files[n], &agent_cpu[n], 1, NULL) != 0) {
            n++;
            goto out;
        }
    }

    if (coord_init(&c, &cc) != 0) goto out;
    fmq_rng_seed(&rng, cc.seed, 0x6f72646572ULL);
    {
        double t = cpu_now();
        if (coord_connect(&c, 30.0) != 0) goto out;
        coord_cpu += cpu_now() - t;
    }
    while (!c.done) {
        double t = cpu_now();
        uint64_t before = progress(&c);
        do coord_step(&c, 0);
        while (fmq_mq_queued(c.mq) > 0 && !c.done);
        coord_cpu += cpu_now() - t;
        for (int i = 0; i < n; i++) order[i] = i;
        for (int i = n - 1; i > 0 && !o.fixed_order; i--) { /* Fisher-Yates */
            int j = (int)fmq_rng_below(&rng, (uint64_t)i + 1), swap = order[i];
            order[i] = order[j];
            order[j] = swap;
        }
        for (int i = 0; i < n && !c.done; i++) drain_agent(agents[order[i]], &agent_cpu[order[i]]);
        if (c.done || progress(&c) != before || fmq_mq_queued(c.mq) > 0) {
            stalled = 0;
            continue;
        }
        /* nothing moved in a whole pass: every agent is idle, so no update will come; the
         * round's deadline is simulated time that has now passed */
        if (stalled++ == 0) {
            coord_expire_deadline(&c);
            continue;
        }
        fmq_log(FMQ_LOG_ERROR,
                "stalled: round %llu has %d update(s), %ld needed, and no agent has anything "
                "left to send",
                c.phase == FMQ_PHASE_STATS ? 0ULL : (unsigned long long)c.round + 1, c.participants,
                cc.min_participants);
        goto out;
    }
    coord_print_summary(&c, stdout);
    if (o.nnew) {
        if (!(sites = calloc((size_t)o.nnew, sizeof *sites)) ||
            !(site_agents = calloc((size_t)o.nnew, sizeof *site_agents)))
            goto out;
        for (nsites = 0; nsites < o.nnew; nsites++) {
            struct agent_cfg ac;
            char id[FMQ_ID_MAX];
            double cpu = 0;
            agent_cfg_default(&ac);
            ac.update_retry = 0;
            for (int i = 0; i < o.nagent_sets; i++)
                if (apply_set(o.agent_sets[i], agent_cfg_set, &ac, agent_bool_keys) != 0) goto out;
            for (int i = 0; i < o.nnew_sets; i++)
                if (apply_set(o.new_sets[i], agent_cfg_set, &ac, agent_bool_keys) != 0) goto out;
            ac.train = 0; /* a new site joins to detect: the federation is done */
            snprintf(ac.broker, sizeof ac.broker, "%s", bus_uri);
            fmq_site_of(o.new_sites[nsites], id, sizeof id);
            snprintf(ac.id, sizeof ac.id, "new-%.50s", id);
            snprintf(ac.sensors[0], sizeof ac.sensors[0], "sensors/%s/+/conn", ac.id);
            ac.nsensors = 1;
            if (!(site_agents[nsites] = calloc(1, sizeof **site_agents))) goto out;
            if (agent_init(site_agents[nsites], &ac) != 0 ||
                agent_connect(site_agents[nsites], 30.0) != 0) {
                fmq_log(FMQ_LOG_ERROR, "%s: cannot start the new site's agent",
                        o.new_sites[nsites]);
                nsites++;
                goto out;
            }
            drain_agent(site_agents[nsites], &cpu); /* the retained global model first */
            site_agents[nsites]->on_verdict = on_verdict;
            site_agents[nsites]->on_verdict_ud = &sites[nsites];
            if (o.trace && !(sites[nsites].trace = fopen(o.trace, "a"))) {
                fmq_log(FMQ_LOG_ERROR, "%s: cannot write", o.trace);
                nsites++;
                goto out;
            }
            if (feed(bus, site_agents[nsites], o.new_sites[nsites], &cpu, 0, &sites[nsites]) != 0) {
                nsites++;
                goto out;
            }
        }
    }
    for (int i = 0; i < n; i++) /* a test file per listed name, comma-separated */
        for (const char *q = o.agent_tests[i]; q && *q;
             q += strcspn(q, ",") + (q[strcspn(q, ",")] == ','))
            ntests++;
    if (!(tests = calloc((size_t)(ntests ? ntests : 1), sizeof *tests)) ||
        !(test_agent = calloc((size_t)(ntests ? ntests : 1), sizeof *test_agent)) ||
        !(test_file = calloc((size_t)(ntests ? ntests : 1), sizeof *test_file)))
        goto out;
    ntests = 0;
    for (int i = 0; i < n; i++) {
        const char *q = o.agent_tests[i];
        while (q && *q) {
            size_t len = strcspn(q, ",");
            double cpu = 0;
            struct site_eval *e = &tests[ntests];
            if (!(test_file[ntests] = strndup(q, len))) goto out;
            test_agent[ntests++] = i;
            q += len + (q[len] == ',');
            agents[i]->cfg.train = 0; /* the federation is done: the site only detects now */
            agents[i]->on_verdict = on_verdict;
            agents[i]->on_verdict_ud = e;
            for (int k = 0; k < agents[i]->nlrn; k++) /* each file a site of its own */
                agents[i]->lrn[k].ops->new_context(&agents[i]->lrn[k]);
            if (feed(bus, agents[i], test_file[ntests - 1], &cpu, 0, e) != 0) goto out;
            agents[i]->on_verdict = NULL;
        }
    }
    if (o.summary) {
        double sum = 0, max = 0;
        if (!(f = fopen(o.summary, "w"))) {
            fmq_log(FMQ_LOG_ERROR, "%s: cannot write", o.summary);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            sum += agent_cpu[i];
            if (agent_cpu[i] > max) max = agent_cpu[i];
        }
        fprintf(f,
                "{\"agents\":%d,\"rounds\":%llu,\"version\":%llu,\"wall_s\":%.3f,"
                "\"coordinator_cpu_s\":%.4f,\"agent_cpu_s_mean\":%.4f,\"agent_cpu_s_max\":%.4f,"
                "\"peak_rss_kb\":%ld,\"new_sites\":[",
                n, (unsigned long long)c.round, (unsigned long long)c.version, fmq_mono() - t0,
                coord_cpu, n ? sum / n : 0.0, max, fmq_peak_rss_kb());
        for (int i = 0; i < nsites; i++) {
            char base[256];
            const char *b = strrchr(o.new_sites[i], '/');
            fmq_json_escape(base, sizeof base, b ? b + 1 : o.new_sites[i]);
            if (i) fputc(',', f);
            site_json(f, base, &sites[i], site_agents[i]);
        }
        fprintf(f, "],\"agent_tests\":[");
        for (int t = 0; t < ntests; t++) {
            char base[256];
            const char *b = strrchr(test_file[t], '/');
            fmq_json_escape(base, sizeof base, b ? b + 1 : test_file[t]);
            if (t) fputc(',', f);
            site_json(f, base, &tests[t], agents[test_agent[t]]);
        }
        fprintf(f, "]}\n");
        fclose(f);
    }
    rc = 0;
out:
    for (int i = 0; site_agents && i < nsites; i++)
        if (site_agents[i]) {
            agent_free(site_agents[i]);
            free(site_agents[i]);
        }
    for (int i = 0; sites && i < o.nnew; i++) {
        if (sites[i].trace) fclose(sites[i].trace);
        free(sites[i].conv);
        free(sites[i].truth);
        free(sites[i].lab);
        free(sites[i].score);
    }
    for (int t = 0; tests && t < ntests; t++) {
        free(tests[t].conv);
        free(tests[t].truth);
        free(tests[t].lab);
        free(tests[t].score);
        free(test_file[t]);
    }
    free(tests);
    free(test_agent);
    free(test_file);
    free(sites);
    free(site_agents);
    free(o.new_sites);
    free(o.agent_tests);
    coord_free(&c);
    for (int i = 0; i < n; i++)
        if (agents[i]) {
            agent_free(agents[i]);
            free(agents[i]);
        }
    fmq_mq_destroy(bus);
    free(agents);
    free(agent_cpu);
    free(o.files);
    free(order);
    return rc;
}
