/* fedmq-coordinator round logic (see coord.h). One round: publish the global model (retained),
 * collect at most one update per agent whose base version is the current one, close the round
 * when every online agent (or expected_agents) has sent, or at the deadline once
 * min_participants have, then aggregate (moments merge in the stats phase, FedAvg afterwards),
 * evaluate, publish model and metrics. Rejected updates are counted by reason and never stop
 * the coordinator. No client's numbers are trusted: statistics must be moments real features
 * can have and are merged robustly, example counts are capped at a multiple of the round's
 * median, update norms are bounded, and a step that would make the model non-finite, absurd or
 * move it further than max_step_norm is never published (README, Security). */
#include "coord.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fedmq/connlog.h"

void coord_cfg_default(struct coord_cfg *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->broker, "tcp://127.0.0.1:1883");
    fmq_tls_cfg_default(&c->tls);
    strcpy(c->task, "iot23");
    strcpy(c->root, "fedmq");
    strcpy(c->client_id, "fedmq-coordinator");
    c->model =
        (struct fmq_model_config){FMQ_MODEL_MLP, FMQ_FEAT_DIM, 2, {32, 16}, FMQ_FEAT_VERSION, 16};
    c->seed = 1;
    c->min_participants = 1;
    c->deadline = 30.0;
    c->republish = 10.0;
    c->strategy = FMQ_STRAT_FEDAVG;
    fmq_strategy_defaults(FMQ_STRAT_FEDAVG, &c->sp);
    c->fraction_fit = 1.0;
    fmq_client_plan_default(&c->plan);
    fmq_gsfs_params_default(&c->gsfs);
    c->sensing = 0;
    c->sensing_p = (struct fmq_sensing_params){30.0, 0.25, 0.2};
    c->threshold = 0.5;
    c->test_from = 0.7;
    c->log_level = FMQ_LOG_INFO;
    c->giot = (struct fmq_gpt_config){0, 0, 2, 4, 32, 0}; /* the benchmarked edge config */
    c->giot_context = 4;
    c->robust = FMQ_ROBUST_KRUM_FILTER; /* bench/byzantine.py, bench/sim_sweep.py: README */
    c->robust_clip = 2.0;
    c->robust_trim = 0.2;
    c->robust_f = 0.3;
    c->robust_krum_tau = 3.0;
    c->robust_krum_cos = 0.2;
    c->robust_majority = 0.5;
    c->count_cap = 5.0;
    c->max_update_norm = 1000; /* 100x the largest honest update measured (README, Security) */
    c->max_step_norm = 100;
    c->dp_delta = 1e-5;
    c->lora_alpha = 8;
    c->giot_lr = 3e-3;
}

static void dp_budget_check(struct coord *c);

/* The model in use is one the federation may use (fmq_model_check; GIoT: every parameter). */
static int model_ok(const struct coord *c, char *err, size_t errlen)
{
    if (c->kind != FMQ_MODEL_GIOT) return fmq_model_check(&c->model, err, errlen);
    if (fmq_params_check(c->gpt.params, c->gpt.nparams, err, errlen)) return FMQ_ERANGE;
    return c->gpt.lora ? fmq_params_check(c->gpt.lora, c->gpt.lora_n, err, errlen) : 0;
}

int coord_init(struct coord *c, const struct coord_cfg *cfg)
{
    char err[200];
    struct fmq_rng r;
    int rc;

    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    if (!fmq_id_valid(cfg->task) || !strcmp(cfg->task, "broker")) {
        fmq_log(FMQ_LOG_ERROR, "task must be 1-63 characters of [A-Za-z0-9._-], and not \"broker\" "
                               "(<root>/broker/ is the broker plugin's)");
        return FMQ_EINVAL;
    }
    snprintf(c->t_global, sizeof c->t_global, "%s/%s/model/global", cfg->root, cfg->task);
    snprintf(c->t_update_filter, sizeof c->t_update_filter, "%s/%s/update/+", cfg->root, cfg->task);
    snprintf(c->t_status_filter, sizeof c->t_status_filter, "%s/%s/status/+", cfg->root, cfg->task);
    snprintf(c->t_metrics, sizeof c->t_metrics, "%s/%s/metrics", cfg->root, cfg->task);
    fmq_rng_seed(&r, (uint64_t)(fmq_now() * 1e6), (uint64_t)getpid());
    snprintf(c->run, sizeof c->run, "r%lld-%08x", (long long)fmq_now(), fmq_rng_u32(&r));
    c->bad_log = (struct fmq_ratelimit){10.0, 5, 0, 0, 0};
    if ((rc = fmq_wire_dec_init(&c->dec)) || (rc = coord_model_init(c)) ||
        (rc = fmq_robust_init(&c->rob, cfg->robust, c->dim)))
        return rc;
    c->rob.clip_mult = cfg->robust_clip;
    c->rob.trim = cfg->robust_trim;
    c->rob.f = cfg->robust_f;
    c->rob.krum_tau = cfg->robust_krum_tau;
    c->rob.krum_cos = cfg->robust_krum_cos;
    c->rob.majority = cfg->robust_majority;
    c->rob.count_cap = cfg->count_cap;
    if (!(c->delta = malloc(c->dim * sizeof(float))) ||
        !(c->guard_theta = malloc(c->dim * sizeof(float))) ||
        !(c->guard_m = malloc(c->dim * sizeof(double))) ||
        !(c->guard_v = malloc(c->dim * sizeof(double))) ||
        !(c->norms = malloc(COORD_MAX_AGENTS * sizeof(double))) ||
        !(c->mean = malloc(c->dim * sizeof(double))) ||
        !(c->selected = calloc(COORD_MAX_AGENTS, sizeof *c->selected)) ||
        !(c->plans = calloc(COORD_MAX_AGENTS, sizeof *c->plans)))
        return FMQ_ENOMEM;
    if ((rc = fmq_server_opt_init(&c->opt, cfg->strategy, &cfg->sp, c->dim)) ||
        (rc = fmq_gsfs_pool_init(&c->pool, &cfg->gsfs, c->dim, COORD_MAX_AGENTS)))
        return rc;
    fmq_rng_seed(&c->rng, cfg->seed, 0x73616d706c65ULL);
    fmq_rng_seed(&c->dp_rng, (uint64_t)(fmq_now() * 1e6) ^ (uint64_t)getpid(), 0x6470ULL);
    if (cfg->metrics_file[0] && !(c->metrics = fopen(cfg->metrics_file, "a"))) {
        fmq_log(FMQ_LOG_ERROR, "%s: cannot open metrics file", cfg->metrics_file);
        return FMQ_EIO;
    }
    c->version = 1;
    c->round = 0;
    c->phase = c->kind == FMQ_MODEL_GIOT ? FMQ_PHASE_TRAIN : FMQ_PHASE_STATS; /* no features */
    if ((rc = coord_state_load(c)) < 0) return rc;
    if (model_ok(c, err, sizeof err) != 0) { /* a poisoned checkpoint or saved model */
        fmq_log(FMQ_LOG_ERROR,
                "the starting model (%s) is not usable: %s; not starting (remove the state "
                "file to begin a new run)",
                rc == 0              ? cfg->state_file
                : cfg->init_model[0] ? cfg->init_model
                                     : "initial",
                err);
        return FMQ_ERANGE;
    }
    if (c->dp_rounds > 0 && cfg->dp_clip > 0 && cfg->dp_noise > 0) { /* resumed: budget left? */
        c->dp_eps = fmq_dp_epsilon_rdp(c->dp_rdp, cfg->dp_delta, NULL);
        dp_budget_check(c);
    }
    if (cfg->rounds > 0 && c->round >= (uint64_t)cfg->rounds) c->done = 1;
    return 0;
}

void coord_free(struct coord *c)
{
    fmq_mq_destroy(c->mq);
    coord_model_free(c);
    fmq_robust_free(&c->rob);
    fmq_wire_dec_free(&c->dec);
    fmq_buf_free(&c->out);
    free(c->delta);
    free(c->mean);
    free(c->selected);
    free(c->plans);
    free(c->guard_theta);
    free(c->guard_m);
    free(c->guard_v);
    free(c->norms);
    free(c->stats_in);
    free(c->stats_who);
    free(c->stats_kept);
    fmq_server_opt_free(&c->opt);
    fmq_gsfs_pool_free(&c->pool);
    if (c->metrics) fclose(c->metrics);
}

static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The number of the round being collected, as the logs and metrics name it (0 = statistics). */
static unsigned long long open_round(const struct coord *c)
{
    return c->phase == FMQ_PHASE_STATS ? 0 : (unsigned long long)c->round + 1;
}

static void publish_global(struct coord *c)
{
    struct fmq_global g;
    memset(&g, 0, sizeof g);
    strcpy(g.task, c->cfg.task);
    strcpy(g.run, c->run);
    g.version = c->version;
    g.round = c->round;
    g.phase = c->phase;
    snprintf(g.strategy, sizeof g.strategy, "%s", fmq_strategy_name(c->cfg.strategy));
    g.ts = fmq_now();
    g.client = c->cfg.plan;
    g.client.lr = (float)c->cfg.sp.eta_l;
    coord_model_to_global(c, &g);
    g.client.proximal_mu = c->cfg.strategy == FMQ_STRAT_FEDPROX ? (float)c->cfg.sp.proximal_mu : 0;
    g.client.gsfs = c->cfg.strategy == FMQ_STRAT_GSFS;
    c->nplans = 0;
    if (c->cfg.sensing && c->phase == FMQ_PHASE_TRAIN) {
        struct fmq_sensing_params sp = c->cfg.sensing_p;
        sp.deadline = c->cfg.deadline;
        for (int i = 0; i < c->nagents; i++) {
            struct fmq_agent_plan *p = &c->plans[c->nplans];
            if (fmq_sensing_plan(&sp, &c->agents[i].link, &g.client, c->dim, p)) {
                snprintf(p->agent, sizeof p->agent, "%s", c->agents[i].id);
                c->nplans++;
            }
        }
    }
    g.plans = c->plans;
    g.nplans = c->nplans;
    g.selected = (const char(*)[FMQ_ID_MAX])c->selected;
    g.nselected = c->phase == FMQ_PHASE_TRAIN ? c->nselected : 0;
    if (fmq_wire_encode_global(&g, &c->out) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot encode global model");
        return;
    }
    fmq_mq_publish(c->mq, c->t_global, c->out.data, c->out.len, 1, 1);
    coord_model_save(c, c->out.data, c->out.len);
    coord_state_save(c, c->out.data, c->out.len);
    c->last_model_bytes = c->out.len;
    c->round_start = c->last_publish = fmq_mono();
    c->republish_wait = c->cfg.republish;
    c->deadline_warned = c->deadline_expired = 0;
}

/* A round past its deadline without the updates it needs: an agent may have missed the model
 * (or its update was lost unseen). The same version goes again with a new send time, so an
 * agent that never adopted it trains, and one whose update has no receipt sends it again. The
 * round keeps its start time. */
static void nudge(struct coord *c)
{
    double start = c->round_start, now = fmq_mono(), wait = c->republish_wait;
    if (c->done || wait <= 0 || now - start < c->cfg.deadline || now - c->last_publish < wait)
        return;
    fmq_log(FMQ_LOG_WARN, "round %llu open for %.0f s with %d update(s): publishing v%llu again",
            open_round(c), now - start, c->participants, (unsigned long long)c->version);
    publish_global(c);
    c->round_start = start;
    c->republish_wait = wait < 16 * c->cfg.republish ? 2 * wait : wait;
}

int coord_connect(struct coord *c)
{
    struct fmq_mq_opts o;
    int rc;
    fmq_mq_opts_default(&o);
    o.uri = c->cfg.broker;
    o.tls = &c->cfg.tls;
    o.client_id = c->cfg.client_id;
    if ((rc = fmq_mq_create(&c->mq, &o)) != 0) return rc;
    if ((rc = fmq_mq_subscribe(c->mq, c->t_update_filter, 1)) ||
        (rc = fmq_mq_subscribe(c->mq, c->t_status_filter, 1)))
        return rc;
    if ((rc = fmq_mq_connect(c->mq, 30.0)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO, "connected to %s; run %s; model %s %zu parameters; %zu test flows",
            c->cfg.broker, c->run, coord_model_name(c), coord_model_params(c), c->ntest);
    publish_global(c);
    return 0;
}

static struct coord_agent *find_agent(struct coord *c, const char *id, int create)
{
    for (int i = 0; i < c->nagents; i++)
        if (strcmp(c->agents[i].id, id) == 0) return &c->agents[i];
    if (!create || c->nagents == COORD_MAX_AGENTS) return NULL;
    struct coord_agent *a = &c->agents[c->nagents++];
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", id);
    return a;
}

static void reject(struct coord *c, uint64_t *counter, const char *topic, const char *why)
{
    (*counter)++;
    if (fmq_ratelimit_ok(&c->bad_log)) {
        if (c->bad_log.suppressed)
            fmq_log(FMQ_LOG_WARN, "(%llu similar messages suppressed)",
                    (unsigned long long)c->bad_log.suppressed);
        c->bad_log.suppressed = 0;
        fmq_log(FMQ_LOG_WARN, "rejected message on %s: %s", topic, why);
    }
}

static const char *last_level(const char *topic)
{
    const char *s = strrchr(topic, '/');
    return s ? s + 1 : topic;
}

static void on_status(struct coord *c, const struct fmq_mq_msg *m)
{
    struct fmq_status s;
    struct coord_agent *a;
    char err[256];
    if (m->len == 0) return;
    if (fmq_wire_decode_status(&c->dec, m->payload, m->len, &s, err, sizeof err) != 0) {
        reject(c, &c->rej_bad, m->topic, err);
        return;
    }
    if (strcmp(s.agent, last_level(m->topic)) != 0 || strcmp(s.task, c->cfg.task) != 0) {
        reject(c, &c->rej_bad, m->topic, "status for another agent or task");
        return;
    }
    if (!(a = find_agent(c, s.agent, 1))) return;
    a->online = strcmp(s.state, "offline") != 0;
}

static int is_selected(const struct coord *c, const char *id)
{
    for (int i = 0; i < c->nselected; i++)
        if (strcmp(c->selected[i], id) == 0) return 1;
    return 0;
}

/* Samples ceil(fraction_fit x online) agents (at least min_participants) for the next round
 * (Flower's fraction_fit / min_fit_clients); all when fraction_fit is 1 or none is known. */
static void sample_agents(struct coord *c)
{
    int online[COORD_MAX_AGENTS], n = 0, k;
    c->nselected = 0;
    if (c->cfg.fraction_fit >= 1.0 || c->cfg.strategy == FMQ_STRAT_GSFS) return;
    for (int i = 0; i < c->nagents; i++)
        if (c->agents[i].online) online[n++] = i;
    if (n == 0) return;
    k = (int)ceil(c->cfg.fraction_fit * n);
    if (k < c->cfg.min_participants) k = (int)c->cfg.min_participants;
    if (k >= n) return;
    for (int i = 0; i < k; i++) { /* partial Fisher-Yates */
        int j = i + (int)fmq_rng_below(&c->rng, (uint32_t)(n - i)), t = online[i];
        online[i] = online[j];
        online[j] = t;
        snprintf(c->selected[i], FMQ_ID_MAX, "%s", c->agents[online[i]].id);
    }
    c->nselected = k;
}

/* End-to-end receipt on the agent's own topic: the agent keeps an update until it sees one. A
 * refusal says why (reason, or NULL). */
static void receipt(struct coord *c, const char *agent, uint64_t seq, uint64_t base,
                    const char *status, const char *reason)
{
    char topic[256], body[512], why[300];
    size_t k = 0;
    int n;
    for (const char *p = reason ? reason : ""; *p && k + 1 < sizeof why; p++) /* JSON-safe */
        why[k++] = *p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '\'' : *p;
    why[k] = 0;
    snprintf(topic, sizeof topic, "%s/%s/receipt/%s", c->cfg.root, c->cfg.task, agent);
    n = snprintf(body, sizeof body, "{\"seq\":%llu,\"version\":%llu,\"status\":\"%s\"%s%s%s}",
                 (unsigned long long)seq, (unsigned long long)base, status,
                 reason ? ",\"reason\":\"" : "", why, reason ? "\"" : "");
    fmq_mq_publish(c->mq, topic, body, (size_t)n, 1, 0);
}

static void send_receipt(struct coord *c, const struct fmq_update *u, const char *status)
{
    receipt(c, u->agent, u->seq, u->base_version, status, NULL);
}

/* An update refused for its numbers: counted, logged, and settled with the reason, so the
 * agent does not send it again; the agent has had its say in this round. */
static void refuse(struct coord *c, uint64_t *counter, const struct fmq_mq_msg *m,
                   const struct fmq_update *u, struct coord_agent *a, const char *why)
{
    reject(c, counter, m->topic, why);
    receipt(c, u->agent, u->seq, u->base_version, "refused", why);
    if (!a->refused && !a->in_round) c->refused_round++;
    a->refused = 1;
}

static double l2norm(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* Keeps an accepted statistics update for the robust merge at the round's close. */
static int stats_keep(struct coord *c, int agent, const struct fmq_moments *m)
{
    if (c->nstats == c->stats_cap) {
        int cap = c->stats_cap ? 2 * c->stats_cap : 16;
        struct fmq_moments *in = realloc(c->stats_in, (size_t)cap * sizeof *in);
        int *who, *kept;
        if (in) c->stats_in = in;
        who = realloc(c->stats_who, (size_t)cap * sizeof *who);
        if (who) c->stats_who = who;
        kept = realloc(c->stats_kept, (size_t)cap * sizeof *kept);
        if (kept) c->stats_kept = kept;
        if (!in || !who || !kept) return FMQ_ENOMEM;
        c->stats_cap = cap;
    }
    c->stats_in[c->nstats] = *m;
    c->stats_who[c->nstats++] = agent;
    return 0;
}

static void on_update(struct coord *c, const struct fmq_mq_msg *m)
{
    struct fmq_update u;
    struct coord_agent *a;
    char err[256];
    int rc;

    c->bytes_in_round += m->len; /* accepted or not, they crossed the uplink */
    if (m->retained) {           /* stored at the broker and replayed to every new subscriber */
        reject(c, &c->rej_retained, m->topic, "a retained update (the broker replays it)");
        return;
    }
    memset(&u, 0, sizeof u);
    u.delta = c->delta;
    u.delta_cap = c->dim;
    u.stats = &c->upd_moments;
    rc = fmq_wire_decode_update(&c->dec, m->payload, m->len, (uint32_t)c->dim, &u, err, sizeof err);
    if (rc != 0) {
        reject(c, &c->rej_bad, m->topic, err);
        return;
    }
    if (fmq_update_topic_ids(&u, m->topic, err, sizeof err) != 0) { /* fills or checks ids */
        reject(c, &c->rej_bad, m->topic, err);
        return;
    }
    if (strcmp(u.task, c->cfg.task) != 0) {
        reject(c, &c->rej_task, m->topic, "update for another task");
        return;
    }
    {
        int gsfs = c->cfg.strategy == FMQ_STRAT_GSFS && c->phase == FMQ_PHASE_TRAIN;
        uint64_t lag = (uint64_t)(gsfs ? c->cfg.gsfs.max_staleness : 0);
        if (u.base_version > c->version || c->version - u.base_version > lag) {
            snprintf(err, sizeof err, "base version %llu, current is %llu",
                     (unsigned long long)u.base_version, (unsigned long long)c->version);
            reject(c, &c->rej_stale, m->topic, err);
            send_receipt(c, &u, "stale"); /* settled: the agent need not send it again */
            return;
        }
    }
    if ((c->phase == FMQ_PHASE_STATS) != (u.has_stats && u.codec == FMQ_CODEC_NONE)) {
        reject(c, &c->rej_phase, m->topic, "update kind does not match the round phase");
        return;
    }
    if (!(a = find_agent(c, u.agent, 1))) {
        reject(c, &c->rej_bad, m->topic, "too many agents");
        return;
    }
    if (u.n_examples == 0) {
        reject(c, &c->rej_bad, m->topic, "zero examples");
        return;
    }
    if (u.seq <= a->last_seq) {
        snprintf(err, sizeof err, "sequence number %llu already seen (last accepted %llu): replay",
                 (unsigned long long)u.seq, (unsigned long long)a->last_seq);
        reject(c, &c->rej_replay, m->topic, err);
        send_receipt(c, &u, "duplicate"); /* accepted before: confirm again, apply never */
        return;
    }
    if (c->phase == FMQ_PHASE_STATS) {
        if (fmq_moments_check(&c->upd_moments, err, sizeof err) != 0) {
            refuse(c, &c->rej_range, m, &u, a, err);
            return;
        }
    } else {
        double nrm = l2norm(c->delta, c->dim);
        if (!(nrm <= c->cfg.max_update_norm) && c->cfg.max_update_norm > 0) {
            snprintf(err, sizeof err, "update norm %.4g above max_update_norm %g", nrm,
                     c->cfg.max_update_norm);
            refuse(c, &c->rej_norm, m, &u, a, err);
            return;
        }
        if (c->nnorms < COORD_MAX_AGENTS) c->norms[c->nnorms++] = nrm;
    }
    if (c->phase == FMQ_PHASE_TRAIN && c->cfg.strategy == FMQ_STRAT_GSFS) {
        /* the pool keeps the newest update per agent; a repeat supersedes, it is no duplicate */
        rc = fmq_gsfs_pool_add(&c->pool, u.agent, u.base_version, c->version, u.n_examples,
                               c->delta);
        if (rc != 0) {
            reject(c, rc == FMQ_ESTALE ? &c->rej_stale : &c->rej_bad, m->topic, fmq_strerror(rc));
            return;
        }
    } else {
        if (a->in_round) {
            reject(c, &c->rej_dup, m->topic, "second update in this round");
            return;
        }
        if (c->phase == FMQ_PHASE_TRAIN && c->nselected > 0 && !is_selected(c, u.agent)) {
            reject(c, &c->rej_phase, m->topic, "agent was not sampled for this round");
            return;
        }
        if (c->phase == FMQ_PHASE_STATS) {
            if (stats_keep(c, (int)(a - c->agents), &c->upd_moments) != 0) {
                reject(c, &c->rej_bad, m->topic, "out of memory");
                return;
            }
        } else {
            double w = c->cfg.sp.uniform || c->cfg.dp_clip > 0 ? 1.0 : (double)u.n_examples;
            if (c->cfg.dp_clip > 0) /* DP-FedAvg: bounded, equally weighted contributions */
                c->dp_clipped += fmq_dp_clip(c->delta, c->dim, c->cfg.dp_clip);
            if ((rc = fmq_robust_add(&c->rob, c->delta, w)) != 0) {
                reject(c, &c->rej_bad, m->topic,
                       rc == FMQ_ENOMEM ? "out of memory" : "non-finite update");
                return;
            }
        }
    }
    if (!a->in_round) {
        c->participants++;
        c->examples += u.n_examples;
    }
    a->in_round = 1;
    a->last_seq = u.seq;
    a->last_base = u.base_version;
    a->online = 1;
    a->updates++;
    fmq_link_observe(&a->link, u.ts, fmq_now(), m->len, u.sps);
    a->n_examples = u.n_examples;
    if (u.metrics.n_val > 0) {
        c->val_n++;
        c->val_accuracy += u.metrics.accuracy;
        c->val_f1 += u.metrics.f1;
    }
    c->bytes_up_round += m->len;
    c->updates_round++; /* a GSFS repeat that supersedes counts: it was sent */
    c->codec_last = u.codec;
    fmq_log(FMQ_LOG_DEBUG, "accepted update #%llu from %s (%llu examples, %zu bytes, %s)",
            (unsigned long long)u.seq, u.agent, (unsigned long long)u.n_examples, m->len,
            fmq_codec_name(u.codec));
}

static int round_ready(struct coord *c)
{
    int online = 0, target;
    double waited = fmq_mono() - c->round_start;

    if (c->participants == 0 && c->phase == FMQ_PHASE_STATS) return 0; /* no normalisation yet */
    for (int i = 0; i < c->nagents; i++) online += c->agents[i].online || c->agents[i].in_round;
    if (c->phase == FMQ_PHASE_TRAIN && c->cfg.strategy == FMQ_STRAT_GSFS) {
        /* GSFS: M = ceil(quorum x agents online) distinct agents in the pool */
        uint64_t total = 0;
        for (int i = 0; i < c->nagents; i++)
            if (c->agents[i].online || c->agents[i].in_round) total += c->agents[i].n_examples;
        if (fmq_gsfs_pool_distinct(&c->pool) >= fmq_gsfs_quorum(&c->cfg.gsfs, online) &&
            (double)fmq_gsfs_pool_examples(&c->pool) >= c->cfg.gsfs.quorum_examples * (double)total)
            return 1;
    } else if (c->cfg.expected_agents > 0) {
        if (c->participants + c->refused_round >= c->cfg.expected_agents &&
            c->participants >= c->cfg.min_participants)
            return 1;
    } else {
        /* an agent whose update was refused has had its say: the round does not wait for it */
        target = c->phase == FMQ_PHASE_TRAIN && c->nselected > 0 ? c->nselected : online;
        if (c->participants + c->refused_round >= target &&
            c->participants >= c->cfg.min_participants)
            return 1;
    }
    if (waited >= c->cfg.deadline || c->deadline_expired) {
        if (c->participants >= c->cfg.min_participants) return 1;
        if (c->participants == 0 && online > 0 && c->phase == FMQ_PHASE_TRAIN) {
            /* nothing usable by the deadline (GSFS: no agent's trigger fired; otherwise every
             * agent failed to train, or was refused): the model stays, under a new version, so
             * every agent starts afresh instead of the fleet waiting forever for an update
             * that will not come */
            fmq_log(
                FMQ_LOG_INFO, "round %llu: no %s by the deadline; v%llu goes out again as v%llu",
                open_round(c), c->cfg.strategy == FMQ_STRAT_GSFS ? "GSFS upload" : "usable update",
                (unsigned long long)c->version, (unsigned long long)c->version + 1);
            return 1;
        }
        if (!c->deadline_warned)
            fmq_log(FMQ_LOG_WARN, "round %llu deadline passed with %d of %ld required updates",
                    open_round(c), c->participants, c->cfg.min_participants);
        c->deadline_warned = 1;
    }
    return 0;
}

/* Moves the model by the round's aggregate unless the result is something no honest round
 * produces: a parameter that is non-finite or beyond FMQ_MODEL_PARAM_MAX (fmq_model_check), or
 * a step longer than max_step_norm. Then the model and the optimizer's state are taken back
 * and the round publishes the model it started from. 0 when applied. */
static int guarded_step(struct coord *c)
{
    char err[160];
    long t = c->opt.t;
    double d2 = 0;
    int rc;
    memcpy(c->guard_theta, c->trainable, c->dim * sizeof(float));
    memcpy(c->guard_m, c->opt.m, c->dim * sizeof(double));
    memcpy(c->guard_v, c->opt.v, c->dim * sizeof(double));
    fmq_server_opt_apply(&c->opt, c->trainable, c->mean);
    for (size_t i = 0; i < c->dim; i++) {
        double d = (double)c->trainable[i] - c->guard_theta[i];
        d2 += d * d;
    }
    c->step_norm = sqrt(d2);
    rc = model_ok(c, err, sizeof err);
    if (rc == 0 && c->cfg.max_step_norm > 0 && !(c->step_norm <= c->cfg.max_step_norm)) {
        snprintf(err, sizeof err, "step norm %.4g above max_step_norm %g", c->step_norm,
                 c->cfg.max_step_norm);
        rc = FMQ_ERANGE;
    }
    if (rc != 0) {
        memcpy(c->trainable, c->guard_theta, c->dim * sizeof(float));
        memcpy(c->opt.m, c->guard_m, c->dim * sizeof(double));
        memcpy(c->opt.v, c->guard_v, c->dim * sizeof(double));
        c->opt.t = t;
        c->guard_refused = 1;
        c->guard_total++;
        snprintf(c->guard_why, sizeof c->guard_why, "%s", err);
        fmq_log(FMQ_LOG_WARN, "round %llu: the aggregate is not published (%s); model unchanged",
                (unsigned long long)c->round + 1, err);
    }
    return rc;
}

/* The privacy budget (dp_epsilon_max): when one more round at full participation would spend
 * more than it, training stops after this round, as when the configured rounds are done. */
static void dp_budget_check(struct coord *c)
{
    double next[FMQ_DP_ORDERS], eps;
    if (!(c->cfg.dp_epsilon_max > 0)) return;
    memcpy(next, c->dp_rdp, sizeof next);
    fmq_dp_account(next, 1.0, c->cfg.dp_noise);
    eps = fmq_dp_epsilon_rdp(next, c->cfg.dp_delta, NULL);
    if (eps <= c->cfg.dp_epsilon_max) return;
    c->done = c->dp_exhausted = 1;
    fmq_log(FMQ_LOG_WARN,
            "privacy budget: epsilon %.3g spent (delta %g); one more round would reach %.3g, "
            "above dp_epsilon_max %g: training stops",
            c->dp_eps, c->cfg.dp_delta, eps, c->cfg.dp_epsilon_max);
}

/* The statistics round's close: the robust merge of the accepted moments (featurize.h) becomes
 * the normalisation, and training starts; when nothing usable came, the round runs again. */
static void close_stats(struct coord *c)
{
    struct fmq_moments_rule mr = {c->cfg.count_cap, c->cfg.robust != FMQ_ROBUST_NONE,
                                  c->cfg.robust_krum_tau, c->cfg.robust_majority};
    float mean[FMQ_FEAT_DIM], std[FMQ_FEAT_DIM];
    char err[200], left[512];
    size_t ln = 0;
    int n = fmq_moments_robust_merge(c->stats_in, (size_t)c->nstats, &mr, &c->moments,
                                     c->stats_kept, &c->stats_capped);
    c->stats_used = n > 0 ? n : 0;
    left[0] = 0;
    for (int k = 0; n > 0 && k < c->nstats && ln + FMQ_ID_MAX + 2 < sizeof left; k++)
        if (!c->stats_kept[k])
            ln +=
                (size_t)snprintf(left + ln, sizeof left - ln, " %s", c->agents[c->stats_who[k]].id);
    if (ln)
        fmq_log(FMQ_LOG_WARN,
                "statistics round: left out of the normalisation, far from the "
                "others:%s",
                left);
    if (n > 0) {
        fmq_moments_finish(&c->moments, mean, std);
        if (fmq_norm_check(mean, std, err, sizeof err) == 0) {
            memcpy(c->model.norm_mean, mean, sizeof mean);
            memcpy(c->model.norm_std, std, sizeof std);
            c->model.has_norm = 1;
            c->phase = FMQ_PHASE_TRAIN;
            return;
        }
    } else
        snprintf(err, sizeof err, "%s", n == 0 ? "no statistics" : fmq_strerror(n));
    c->guard_refused = 1;
    c->guard_total++;
    snprintf(c->guard_why, sizeof c->guard_why, "%s", err);
    fmq_log(FMQ_LOG_WARN, "statistics round: no normalisation (%s); the round runs again", err);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void close_round(struct coord *c)
{
    struct fmq_confusion cm = {0};
    struct fmq_scores sc = {0};
    struct coord_eval ev;
    char json[8192], ids[1024], per[3072], sens[1536];
    size_t sn = 0;
    size_t pn = 0;
    size_t idn = 0;
    double round_s = fmq_mono() - c->round_start;
    int online = 0, was_stats = c->phase == FMQ_PHASE_STATS, finite = 1;
    double norm_med = 0, norm_max = 0;
    uint64_t down;

    c->guard_refused = 0;
    c->guard_why[0] = 0;
    c->step_norm = 0;
    c->rob.last_used = c->rob.last_clipped = c->rob.last_capped = 0;
    c->rob.last_rule = c->cfg.robust;
    if (c->nnorms > 0) {
        qsort(c->norms, (size_t)c->nnorms, sizeof *c->norms, cmp_dbl);
        norm_med = c->nnorms % 2 ? c->norms[c->nnorms / 2]
                                 : 0.5 * (c->norms[c->nnorms / 2 - 1] + c->norms[c->nnorms / 2]);
        norm_max = c->norms[c->nnorms - 1];
    }
    if (was_stats)
        close_stats(c);
    else {
        int rc;
        c->pool.theta = c->trainable; /* GSFS memory blends local models against it */
        rc = c->cfg.strategy == FMQ_STRAT_GSFS ? fmq_gsfs_aggregate(&c->pool, c->version, c->mean)
                                               : fmq_robust_aggregate(&c->rob, c->mean);
        if (rc >= 0 && c->cfg.dp_clip > 0 && c->participants > 0) {
            int online_n = 0;
            for (int i = 0; i < c->nagents; i++)
                online_n += c->agents[i].online || c->agents[i].in_round;
            fmq_dp_noise_f64(c->mean, c->dim, c->cfg.dp_noise * c->cfg.dp_clip / c->participants,
                             &c->dp_rng);
            c->dp_rounds++;
            if (c->cfg.dp_noise > 0) { /* this round's sampling rate, composed in RDP */
                fmq_dp_account(c->dp_rdp,
                               online_n > 0 && c->participants < online_n
                                   ? (double)c->participants / online_n
                                   : 1.0,
                               c->cfg.dp_noise);
                c->dp_eps = fmq_dp_epsilon_rdp(c->dp_rdp, c->cfg.dp_delta, NULL);
                dp_budget_check(c);
            } else
                c->dp_eps = INFINITY;
        }
        for (size_t i = 0; rc >= 0 && i < c->dim; i++)
            if (!isfinite(c->mean[i])) { /* overflowed sums: never let the model hold Inf/NaN */
                fmq_log(FMQ_LOG_WARN, "round %llu: the aggregate is not finite; model unchanged",
                        (unsigned long long)c->round + 1);
                c->guard_refused = 1;
                c->guard_total++;
                snprintf(c->guard_why, sizeof c->guard_why, "the aggregate is not finite");
                rc = -1;
            }
        if (rc >= 0)
            guarded_step(c);
        else if (!c->guard_refused)
            fmq_log(c->participants ? FMQ_LOG_WARN : FMQ_LOG_INFO,
                    "round %llu: %s; model unchanged", (unsigned long long)c->round + 1,
                    c->participants ? "every update was dropped" : "no update");
        c->round++;
    }
    c->version++;
    coord_evaluate(c, &ev);
    for (size_t i = 0; i < c->dim; i++) finite &= isfinite(c->trainable[i]) != 0;
    cm = ev.cm;
    fmq_scores_from(&cm, &sc);
    per[0] = 0;
    for (int f = 0; f < c->cfg.ntest && pn + 200 < sizeof per; f++) {
        const struct fmq_confusion fc = ev.per_file[f];
        pn += (size_t)snprintf(
            per + pn, sizeof per - pn,
            "%s{\"file\":\"%s\",\"tp\":%llu,\"fp\":%llu,\"tn\":%llu,\"fn\":%llu}", f ? "," : "",
            c->test_name[f], (unsigned long long)fc.tp, (unsigned long long)fc.fp,
            (unsigned long long)fc.tn, (unsigned long long)fc.fn);
    }
    sens[0] = 0;
    for (int i = 0; i < c->nagents && sn + 200 < sizeof sens; i++) {
        const struct coord_agent *ag = &c->agents[i];
        if (!ag->link.n) continue;
        sn +=
            (size_t)snprintf(sens + sn, sizeof sens - sn,
                             "%s{\"agent\":\"%s\",\"delay_s\":%.4f,\"rate_Bps\":%.0f,\"sps\":%.0f}",
                             sn ? "," : "", ag->id, ag->link.delay, ag->link.rate, ag->link.sps);
    }
    ids[0] = 0;
    for (int i = 0; i < c->nagents; i++) {
        online += c->agents[i].online;
        if (c->agents[i].in_round && idn + FMQ_ID_MAX + 4 < sizeof ids)
            idn += (size_t)snprintf(ids + idn, sizeof ids - idn, "%s\"%s\"", idn ? "," : "",
                                    c->agents[i].id);
    }
    sample_agents(c);
    publish_global(c);                   /* also the durable checkpoint (state_file) */
    for (int i = 0; i < c->nagents; i++) /* only now is an aggregated update safe: confirm it */
        if (c->agents[i].in_round)
            receipt(c, c->agents[i].id, c->agents[i].last_seq, c->agents[i].last_base,
                    c->guard_refused ? "refused" : "applied",
                    c->guard_refused ? c->guard_why : NULL);
    /* the broker sends the model once to every subscribed agent */
    down = (uint64_t)c->last_model_bytes *
           (uint64_t)(online > c->participants ? online : c->participants);
    c->bytes_up_total += c->bytes_up_round;
    c->bytes_down_total += down;
    snprintf(
        json, sizeof json,
        "{\"task\":\"%s\",\"run\":\"%s\",\"round\":%llu,\"version\":%llu,\"phase\":\"%s\","
        "\"model\":\"%s\",\"params\":%zu,\"trainable\":%zu,\"strategy\":\"%s\",\"robust\":{"
        "\"rule\":\"%s\",\"applied\":\"%s\",\"used\":%d,\"clipped\":%d,\"capped\":%d},"
        "\"stats\":{\"used\":%d,\"left_out\":%d,\"capped\":%d},\"guard\":{\"refused\":%s,"
        "\"reason\":\"%s\",\"total\":%llu},\"update_norm\":{\"median\":%.6g,\"max\":%.6g},"
        "\"step_norm\":%.6g,\"refused\":%d,\"dp\":{\"clip\":%g,\"noise\":%g,\"delta\":%g,"
        "\"rounds\":%llu,\"epsilon\":%.6g,\"epsilon_max\":%g,\"exhausted\":%s,\"clipped\":%d},"
        "\"codec\":\"%s\",\"sampled\":%d,\"gsfs\":"
        "{\"quorum\":%d,"
        "\"used\":%d,\"dropped\":%d,\"clipped\":%d,\"deferred\":%d,\"superseded\":%llu},"
        "\"participants\":%d,"
        "\"agents\":[%s],\"agents_online\":%d,"
        "\"examples\":%llu,\"test_flows\":%zu,\"accuracy\":%.6f,\"precision\":%.6f,"
        "\"recall\":%.6f,\"f1\":%.6f,\"model_finite\":%s,\"recall_at_1pct_fpr\":%.6f,\"head_recall_"
        "at_1pct_fpr\":%.6f,\"either_recall_at_1pct_fpr\":%.6f,\"threshold\":%.6g,\"tp\":%llu,"
        "\"fp\":%llu,\"tn\":%llu,\"fn\":%llu,"
        "\"bytes_up_round\":%llu,\"bytes_up_refused_round\":%llu,\"bytes_up_total\":%llu,"
        "\"bytes_down_round\":%llu,"
        "\"bytes_down_total\":%llu,\"model_bytes\":%zu,\"update_bytes_mean\":%.1f,"
        "\"round_s\":%.3f,\"rejected\":{\"malformed\":%llu,\"stale\":%llu,\"duplicate\":%llu,"
        "\"task\":%llu,\"phase\":%llu,\"replay\":%llu,\"range\":%llu,\"norm\":%llu,\"retained\":"
        "%llu},\"per_test_file\":[%s],\"links\":[%s],"
        "\"plans\":%d,"
        "\"eval_s\":%.6f,\"model_hash\":\"%016llx\",\"agent_val\":{\"n\":%d,\"accuracy\":%.6f,"
        "\"f1\":%.6f},\"process_cpu_s\":%.3f,\"ts\":%.3f}",
        c->cfg.task, c->run, (unsigned long long)c->round, (unsigned long long)c->version,
        was_stats ? "stats" : "train", coord_model_name(c), coord_model_params(c), c->dim,
        fmq_strategy_name(c->cfg.strategy), fmq_robust_name(c->cfg.robust),
        fmq_robust_name(c->rob.last_rule), c->rob.last_used, c->rob.last_clipped,
        c->rob.last_capped, was_stats ? c->stats_used : 0,
        was_stats ? c->nstats - c->stats_used : 0, was_stats ? c->stats_capped : 0,
        c->guard_refused ? "true" : "false", c->guard_why, (unsigned long long)c->guard_total,
        norm_med, norm_max, c->step_norm, c->refused_round, c->cfg.dp_clip, c->cfg.dp_noise,
        c->cfg.dp_delta, (unsigned long long)c->dp_rounds,
        c->cfg.dp_clip > 0 && isfinite(c->dp_eps) ? c->dp_eps : -1.0, c->cfg.dp_epsilon_max,
        c->dp_exhausted ? "true" : "false", c->dp_clipped,
        fmq_codec_name(was_stats ? FMQ_CODEC_NONE : c->codec_last), c->nselected,
        fmq_gsfs_quorum(&c->cfg.gsfs, online), c->pool.last_used, c->pool.last_dropped,
        c->pool.last_clipped, c->pool.last_deferred, (unsigned long long)c->pool.superseded,
        c->participants, ids, online, (unsigned long long)c->examples, c->ntest, sc.accuracy,
        sc.precision, sc.recall, sc.f1, finite ? "true" : "false", ev.recall_at_fpr,
        ev.head_recall_at_fpr, ev.either_recall_at_fpr, ev.threshold, (unsigned long long)cm.tp,
        (unsigned long long)cm.fp, (unsigned long long)cm.tn, (unsigned long long)cm.fn,
        (unsigned long long)c->bytes_up_round,
        (unsigned long long)(c->bytes_in_round - c->bytes_up_round),
        (unsigned long long)c->bytes_up_total, (unsigned long long)down,
        (unsigned long long)c->bytes_down_total, c->last_model_bytes,
        (double)c->bytes_up_round / (c->updates_round ? c->updates_round : 1), round_s,
        (unsigned long long)c->rej_bad, (unsigned long long)c->rej_stale,
        (unsigned long long)c->rej_dup, (unsigned long long)c->rej_task,
        (unsigned long long)c->rej_phase, (unsigned long long)c->rej_replay,
        (unsigned long long)c->rej_range, (unsigned long long)c->rej_norm,
        (unsigned long long)c->rej_retained, per, sens, c->nplans, ev.eval_s,
        (unsigned long long)ev.model_hash, c->val_n, c->val_n ? c->val_accuracy / c->val_n : 0.0,
        c->val_n ? c->val_f1 / c->val_n : 0.0, process_cpu_s(), fmq_now());
    fmq_mq_publish(c->mq, c->t_metrics, json, strlen(json), 1, 1);
    if (c->metrics) {
        fprintf(c->metrics, "%s\n", json);
        fflush(c->metrics);
    }
    if (was_stats)
        fmq_log(FMQ_LOG_INFO,
                "round 0 (statistics) -> v%llu: %d agents, %llu flows, up %llu B, down %llu B, "
                "%.2f s",
                (unsigned long long)c->version, c->participants, (unsigned long long)c->examples,
                (unsigned long long)c->bytes_up_round, (unsigned long long)down, round_s);
    else
        fmq_log(FMQ_LOG_INFO,
                "round %llu -> v%llu: %d agents, %llu examples, test F1 %.4f acc %.4f P %.4f "
                "R %.4f R@1%%FPR %.4f, up %llu B (%.0f B/update), down %llu B, %.2f s",
                (unsigned long long)c->round, (unsigned long long)c->version, c->participants,
                (unsigned long long)c->examples, sc.f1, sc.accuracy, sc.precision, sc.recall,
                ev.recall_at_fpr, (unsigned long long)c->bytes_up_round,
                (double)c->bytes_up_round / (c->updates_round ? c->updates_round : 1),
                (unsigned long long)down, round_s);
    if (c->nhist < COORD_HISTORY)
        c->hist[c->nhist++] =
            (struct coord_round){c->round,     c->version, c->participants,   sc.f1, sc.accuracy,
                                 sc.precision, sc.recall,  c->bytes_up_round, down,  round_s};
    for (int i = 0; i < c->nagents; i++) c->agents[i].in_round = c->agents[i].refused = 0;
    c->val_n = 0;
    c->val_accuracy = c->val_f1 = 0;
    c->nstats = c->nnorms = c->refused_round = 0;
    fmq_robust_reset(&c->rob);
    c->dp_clipped = 0;
    fmq_moments_clear(&c->moments);
    c->participants = 0;
    c->examples = 0;
    c->bytes_up_round = 0;
    c->bytes_in_round = 0;
    c->updates_round = 0;
    if ((c->cfg.rounds > 0 && c->round >= (uint64_t)c->cfg.rounds) || c->dp_exhausted) c->done = 1;
}

void coord_expire_deadline(struct coord *c)
{
    c->deadline_expired = 1;
}

int coord_step(struct coord *c, int timeout_ms)
{
    struct fmq_mq_msg *m;
    struct fmq_mq_stats st;
    fmq_mq_get_stats(c->mq, &st);
    if (st.reconnects != c->reconnects) {
        /* back from a lost connection (perhaps the broker restarted and lost its retained
         * messages): publish the current version again; agents that had sent an update for it
         * and saw no receipt send it again */
        c->reconnects = st.reconnects;
        fmq_log(FMQ_LOG_INFO, "reconnected: publishing v%llu again",
                (unsigned long long)c->version);
        publish_global(c);
    }
    if (fmq_mq_poll(c->mq, &m, timeout_ms) == 0) {
        if (fmq_topic_match(c->t_update_filter, m->topic))
            on_update(c, m);
        else if (fmq_topic_match(c->t_status_filter, m->topic))
            on_status(c, m);
    }
    if (!c->done && round_ready(c)) close_round(c);
    nudge(c);
    return 0;
}

void coord_print_summary(const struct coord *c, FILE *f)
{
    uint64_t up = 0, down = 0;
    fprintf(f, "\n%-6s %-8s %-7s %-8s %-8s %-9s %-8s %-12s %-12s %-8s\n", "round", "version",
            "agents", "F1", "accuracy", "precision", "recall", "bytes up", "bytes down", "secs");
    for (int i = 0; i < c->nhist; i++) {
        const struct coord_round *r = &c->hist[i];
        char label[24];
        up += r->bytes_up;
        down += r->bytes_down;
        if (r->round == 0)
            snprintf(label, sizeof label, "stats");
        else
            snprintf(label, sizeof label, "%llu", (unsigned long long)r->round);
        fprintf(f, "%-6s %-8llu %-7d %-8.4f %-8.4f %-9.4f %-8.4f %-12llu %-12llu %-8.2f\n", label,
                (unsigned long long)r->version, r->participants, r->f1, r->accuracy, r->precision,
                r->recall, (unsigned long long)r->bytes_up, (unsigned long long)r->bytes_down,
                r->secs);
    }
    fprintf(f, "total: %d rounds, %llu bytes up, %llu bytes down, global model %zu bytes\n",
            c->nhist, (unsigned long long)up, (unsigned long long)down, c->last_model_bytes);
}
