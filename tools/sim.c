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
 * Usage: fedmq-sim --agent FILE[,FILE...]... [--agent-set KEY=VALUE]... [--coord-set KEY=VALUE]...
 *                  [--order random|fixed] [--summary FILE]
 * KEYs are those of deploy/agent.conf.example and deploy/coordinator.conf.example. The
 * coordinator writes its per-round metrics where `metrics_file` says; --summary gets one JSON
 * object with the CPU seconds of the coordinator and of each agent, and the wall time. */
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

#define SIM_MAX_SETS 64
#define SIM_MAX_FILES 64 /* per agent */

struct sim_opts {
    const char **files;
    int nfiles;
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
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: fedmq-sim --agent FILE[,FILE...]... [--agent-set KEY=VALUE]...\n"
                   "                 [--coord-set KEY=VALUE]... [--order random|fixed]\n"
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

/* Publishes every flow of the agent's files (comma-separated) to its sensor topics, in the
 * order fedmq-replay would, and lets the agent take them in. */
static int feed(struct fmq_mq *bus, struct agent *a, const char *list, double *cpu)
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
    for (size_t i = 0; i < nitems; i++) {
        const struct fmq_flow *fl = &flows[items[i].file][items[i].idx];
        char dev[sizeof fl->orig_h];
        int len = fmq_flow_to_json(fl, 1, json, sizeof json);
        if (len < 0) continue;
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
    struct fmq_rng rng;
    FILE *f;

    fmq_log_use_stderr("fedmq-sim", FMQ_LOG_WARN);
    o.files = calloc((size_t)argc, sizeof *o.files);
    if (!o.files || parse_args(argc, argv, &o) != 0) return 2;
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
    fmq_log_use_stderr("fedmq-sim", cc.log_level > FMQ_LOG_WARN ? FMQ_LOG_WARN : cc.log_level);

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
        if (agent_init(agents[n], &ac) != 0 || agent_connect(agents[n]) != 0) {
            fmq_log(FMQ_LOG_ERROR, "%s: cannot start agent %s", o.files[n], ac.id);
            n++;
            goto out;
        }
        if (feed(bus, agents[n], o.files[n], &agent_cpu[n]) != 0) {
            n++;
            goto out;
        }
    }

    if (coord_init(&c, &cc) != 0) goto out;
    fmq_rng_seed(&rng, cc.seed, 0x6f72646572ULL);
    {
        double t = cpu_now();
        if (coord_connect(&c) != 0) goto out;
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
                "\"peak_rss_kb\":%ld}\n",
                n, (unsigned long long)c.round, (unsigned long long)c.version, fmq_mono() - t0,
                coord_cpu, n ? sum / n : 0.0, max, fmq_peak_rss_kb());
        fclose(f);
    }
    rc = 0;
out:
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
