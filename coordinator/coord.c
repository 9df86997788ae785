/* fedmq-coordinator round logic (see coord.h). One round: publish the global model (retained),
 * collect at most one update per agent whose base version is the current one, close the round
 * when every online agent (or expected_agents) has sent, or at the deadline once
 * min_participants have, then aggregate (moments merge in the stats phase, FedAvg afterwards),
 * evaluate, and commit: save the state durably, then publish the model, then confirm the
 * updates in it, then publish the metrics (commit). A coordinator that cannot save holds the
 * new version (not published, nothing confirmed) and retries, saying so on its status topic.
 * At start it learns the retained model's version and never publishes a lower one. Rejected
 * updates are counted by reason, answered with a receipt that says why, and never stop the
 * coordinator. No client's numbers are trusted: statistics must be moments real features can
 * have and are merged robustly, example counts are capped at a multiple of the round's median,
 * update norms are bounded, and a step that would make the model non-finite, absurd or move it
 * further than max_step_norm is never published (README, Security). */
#include "coord.h"

#include <cjson/cJSON.h>

#include <errno.h>
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
    c->fp_budget = 0.01;
    c->calib_round = 0; /* rounds > 0: one more round measures the final model (calib.h) */
    c->rule_min_benign = 50;
    c->test_from = 0.7;
    c->log_level = FMQ_LOG_INFO;
    c->resume_wait = 5.0;
    c->silent_rounds = 3;
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
    c->dp_noise = 1.0;         /* a noise multiplier z of 1 once dp_clip turns DP-FedAvg on */
    c->secagg_threshold = 0.6; /* t > n/2: two disjoint halves cannot both unmask */
    c->secagg_min = 3;         /* with 2, either agent learns the other's vector from the sum */
    c->secagg_timeout = 10.0;
    c->secagg_clip = 4.0; /* honest MLP updates measured up to L2 4.4 in all (max_update_norm) */
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
    snprintf(c->t_coord, sizeof c->t_coord, "%s/%s/coordinator", cfg->root, cfg->task);
    snprintf(c->t_secagg_filter, sizeof c->t_secagg_filter, "%s/%s/secagg/+", cfg->root, cfg->task);
    if (cfg->secure_agg && (cfg->strategy == FMQ_STRAT_GSFS || cfg->robust != FMQ_ROBUST_NONE)) {
        fmq_log(FMQ_LOG_ERROR,
                "secure_agg needs a synchronous strategy (not gsfs) and robust = none: the "
                "coordinator sees only the sum, and robust rules need each update");
        return FMQ_EINVAL;
    }
    {
        const char *hook = getenv("FMQ_TEST_EXIT_AT"); /* tests only: POINT[:N] */
        if (hook && *hook) {
            const char *colon = strchr(hook, ':');
            snprintf(c->test_exit_at, sizeof c->test_exit_at, "%.*s",
                     (int)(colon ? (size_t)(colon - hook) : strlen(hook)), hook);
            c->test_exit_n = colon ? strtol(colon + 1, NULL, 10) : 1;
        }
    }
    fmq_rng_seed(&r, (uint64_t)(fmq_now() * 1e6), (uint64_t)getpid());
    snprintf(c->run, sizeof c->run, "r%lld-%08x", (long long)fmq_now(), fmq_rng_u32(&r));
    c->bad_log = (struct fmq_ratelimit){10.0, 5, 0, 0, 0};
    c->wire_log = (struct fmq_ratelimit){60.0, 2, 0, 0, 0};
    if ((rc = fmq_wire_dec_init(&c->dec)) || (rc = coord_model_init(c)) ||
        (rc = fmq_robust_init(&c->rob, cfg->robust, c->dim)) ||
        (rc = fmq_rule_acc_init(&c->racc, COORD_MAX_AGENTS)))
        return rc;
    c->rob.clip_mult = cfg->robust_clip;
    c->rob.trim = cfg->robust_trim;
    c->rob.f = cfg->robust_f;
    c->rob.krum_tau = cfg->robust_krum_tau;
    c->rob.krum_cos = cfg->robust_krum_cos;
    c->rob.majority = cfg->robust_majority;
    c->rob.count_cap = cfg->count_cap;
    if (!(c->delta = malloc((c->dim > FMQ_STATS_SECURE_DIM ? c->dim : FMQ_STATS_SECURE_DIM) *
                            sizeof(float))) ||
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
    if ((rc = coord_sa_init(c)) != 0) return rc;
    c->cfg.plan.secagg = cfg->secure_agg; /* agents mask what they send */
    c->pool.p.count_cap = cfg->count_cap; /* one cap on claimed counts, for every strategy */
    c->pool.robust = &c->rob;             /* and one robust rule: GSFS's pool goes through it */
    fmq_rng_seed(&c->rng, cfg->seed, 0x73616d706c65ULL);
    fmq_rng_seed(&c->dp_rng, (uint64_t)(fmq_now() * 1e6) ^ (uint64_t)getpid(), 0x6470ULL);
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
    if ((rc = coord_metrics_recover(c)) != 0) return rc;
    if (cfg->metrics_file[0] && !(c->metrics = fopen(cfg->metrics_file, "a"))) {
        fmq_log(FMQ_LOG_ERROR, "%s: cannot open metrics file", cfg->metrics_file);
        return FMQ_EIO;
    }
    if (cfg->rounds > 0 && c->round >= (uint64_t)cfg->rounds && c->phase != FMQ_PHASE_CALIB)
        c->done = 1;
    return 0;
}

void coord_reopen(struct coord *c)
{
    FILE *f;
    if (!c->cfg.metrics_file[0]) return;
    if (!(f = fopen(c->cfg.metrics_file, "a"))) {
        fmq_log(FMQ_LOG_ERROR, "%s: cannot reopen metrics file: %s; still writing the old one",
                c->cfg.metrics_file, strerror(errno));
        return;
    }
    if (c->metrics) fclose(c->metrics);
    c->metrics = f;
    fmq_log(FMQ_LOG_INFO, "reopened metrics file %s", c->cfg.metrics_file);
}

void coord_free(struct coord *c)
{
    coord_sa_free(c);
    fmq_mq_destroy(c->mq);
    coord_model_free(c);
    fmq_robust_free(&c->rob);
    fmq_rule_acc_free(&c->racc);
    fmq_wire_dec_free(&c->dec);
    fmq_buf_free(&c->out);
    fmq_buf_free(&c->pub);
    free(c->round_body);
    free(c->round_json);
    free(c->delta);
    free(c->mean);
    free(c->selected);
    free(c->plans);
    free(c->guard_theta);
    free(c->guard_m);
    free(c->guard_v);
    free(c->norms);
    free(c->stats_in);
    free(c->stats_ben);
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
    return c->phase == FMQ_PHASE_STATS   ? 0
           : c->phase == FMQ_PHASE_CALIB ? (unsigned long long)c->round
                                         : (unsigned long long)c->round + 1;
}

/* Encodes the current global model into c->out (a fresh send time, plans and sample). */
static int encode_global(struct coord *c)
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
    g.rule = c->rule;
    if (fmq_wire_encode_global(&g, &c->out) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot encode global model");
        return FMQ_ENOMEM;
    }
    c->last_model_bytes = c->out.len;
    return 0;
}

/* Tests only (FMQ_TEST_EXIT_AT=POINT[:N]): dies at the N-th pass through POINT as a kill -9
 * would, after what was published so far reached the broker (the worst case for the window). */
static void test_exit(struct coord *c, const char *point)
{
    if (!c->test_exit_at[0] || strcmp(c->test_exit_at, point) != 0 || --c->test_exit_n > 0) return;
    fmq_log(FMQ_LOG_WARN, "FMQ_TEST_EXIT_AT=%s: exiting at v%llu", point,
            (unsigned long long)c->version);
    if (c->mq) fmq_mq_flush(c->mq, 3.0);
    _exit(70);
}

/* The retained status on <root>/<task>/coordinator: whether it can save, what is on the wire. */
static void publish_status(struct coord *c, const char *state)
{
    char body[512], err[200];
    int n;
    {
        size_t j = 0;
        for (const char *p = c->save_error; *p && j + 2 < sizeof err; p++)
            if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) err[j++] = *p;
        err[j] = 0;
    }
    n = snprintf(body, sizeof body,
                 "{\"state\":\"%s\",\"run\":\"%s\",\"version\":%llu,\"held_version\":%llu,"
                 "\"saved_version\":%llu,\"save_failures\":%llu,\"error\":\"%s\",\"ts\":%.3f}",
                 state, c->run, (unsigned long long)c->published_version,
                 (unsigned long long)(c->blocked ? c->version : 0),
                 (unsigned long long)c->saved_version, (unsigned long long)c->save_failures,
                 c->blocked ? err : "", fmq_now());
    if (c->mq && n > 0 && (size_t)n < sizeof body)
        fmq_mq_publish(c->mq, c->t_coord, body, (size_t)n, 1, 1);
}

/* Publishes the current model (retained) without a new version: republish after a reconnect or
 * a deadline, or at start. The round's start, and so its deadline, stays. While a version is
 * held (blocked) the last published envelope goes again as it was. */
static void publish_model(struct coord *c)
{
    if (c->blocked) {
        if (c->pub.len) fmq_mq_publish(c->mq, c->t_global, c->pub.data, c->pub.len, 1, 1);
        return;
    }
    if (encode_global(c) != 0) return;
    fmq_mq_publish(c->mq, c->t_global, c->out.data, c->out.len, 1, 1);
    c->published_version = c->version;
    c->last_publish = fmq_mono();
    fmq_buf_set(&c->pub, c->out.data, c->out.len);
}

/* "applied" for every agent whose newest aggregated update is not yet confirmed: called only
 * once the state holding those updates is durable. */
static void confirm(struct coord *c);

/* The closed round's metrics with the state part: what was saved, how long this commit waited. */
static int compose_metrics(struct coord *c)
{
    size_t n = strlen(c->round_body);
    char *j = realloc(c->round_json, n + 256);
    if (!j) return FMQ_ENOMEM;
    c->round_json = j;
    snprintf(j + n, 256,
             ",\"state\":{\"durable\":%s,\"saved_version\":%llu,\"save_failures\":%llu,"
             "\"blocked_s\":%.3f}}",
             c->cfg.state_file[0] ? "true" : "false",
             (unsigned long long)(c->cfg.state_file[0] ? c->version : 0),
             (unsigned long long)c->save_failures,
             c->blocked ? fmq_mono() - c->blocked_since : 0.0);
    memcpy(j, c->round_body, n);
    return 0;
}

/* A new version (a closed round, or a jump above the wire's): save the state durably, then
 * publish the model, then confirm what it holds, then publish the round's metrics. When the
 * save fails the version is held: not published, nothing confirmed, the round not counted;
 * coord_step retries (1 s, doubling to 8 s) and the status topic says why. */
static int commit(struct coord *c)
{
    double now = fmq_mono();
    char err[160] = "";
    int rc;

    if (c->round_new && c->round_body && (rc = compose_metrics(c)) != 0) {
        snprintf(err, sizeof err, "out of memory");
    } else if ((rc = encode_global(c)) == 0)
        rc = coord_state_save(c, c->out.data, c->out.len, err, sizeof err);
    if (rc != 0) {
        c->save_failures++;
        snprintf(c->save_error, sizeof c->save_error, "%s", err);
        if (!c->blocked) {
            c->blocked = 1;
            c->blocked_since = now;
            c->retry_wait = 1.0;
            fmq_log(FMQ_LOG_ERROR,
                    "cannot save the coordinator state (%s): v%llu is held, not published, and "
                    "nothing is confirmed until a save succeeds",
                    err, (unsigned long long)c->version);
            publish_status(c, "blocked");
        } else if (fmq_ratelimit_ok(&c->bad_log))
            fmq_log(FMQ_LOG_ERROR, "still cannot save the state (%s); v%llu held for %.0f s", err,
                    (unsigned long long)c->version, now - c->blocked_since);
        c->retry_at = now + c->retry_wait;
        c->retry_wait = c->retry_wait < 8 ? 2 * c->retry_wait : 8;
        return rc;
    }
    if (c->cfg.state_file[0]) c->saved_version = c->version;
    test_exit(c, "saved");
    coord_model_save(c, c->out.data, c->out.len); /* operators' copy; the state is what resumes */
    fmq_mq_publish(c->mq, c->t_global, c->out.data, c->out.len, 1, 1);
    fmq_buf_set(&c->pub, c->out.data, c->out.len);
    c->published_version = c->version;
    c->round_start = c->last_publish = fmq_mono();
    c->republish_wait = c->cfg.republish;
    c->deadline_warned = c->deadline_expired = 0;
    test_exit(c, "published");
    confirm(c);
    test_exit(c, "confirmed");
    if (c->blocked) {
        c->blocked_s = now - c->blocked_since;
        c->blocked = 0;
        c->save_error[0] = 0;
        fmq_log(FMQ_LOG_INFO, "state saved again after %.1f s: v%llu published and confirmed",
                c->blocked_s, (unsigned long long)c->version);
        publish_status(c, "running");
    }
    if (c->round_new && c->round_json) {
        fmq_mq_publish(c->mq, c->t_metrics, c->round_json, strlen(c->round_json), 1, 1);
        if (c->metrics) {
            fprintf(c->metrics, "%s\n", c->round_json);
            fflush(c->metrics);
            fdatasync(fileno(c->metrics));
        }
        c->round_new = 0;
    }
    if ((c->cfg.rounds > 0 && c->round >= (uint64_t)c->cfg.rounds && c->phase != FMQ_PHASE_CALIB) ||
        c->dp_exhausted)
        c->done = 1;
    return 0;
}

/* Seconds a link that has just come back is given before a round may close at its deadline:
 * the updates the broker held for this session (and agents' answers to the republished model)
 * arrive first, so a round is not closed empty for want of messages already on their way. */
#define RELINK_GRACE 0.5

/* Whether the open round's deadline has passed: wall time since the round opened (a reconnect
 * never restarts it), but never while the link is down or within RELINK_GRACE of its return. A
 * flapping link can stretch a round by the reconnect time, not by a deadline per flap. */
static int deadline_passed(const struct coord *c)
{
    double now = fmq_mono(), d = c->cfg.deadline;
    /* a round the interval holds open is not late: no republishing, no resends before it */
    if (c->phase == FMQ_PHASE_TRAIN && c->cfg.round_interval > d) d = c->cfg.round_interval;
    if (now - c->round_start < d) return 0;
    return c->linked_since > 0 && now - c->linked_since >= RELINK_GRACE;
}

/* A round past its deadline without the updates it needs: an agent may have missed the model
 * (or its update was lost unseen). The same version goes again with a new send time, so an
 * agent that never adopted it trains, and one whose update has no receipt sends it again. The
 * round keeps its start time. */
static void nudge(struct coord *c)
{
    double now = fmq_mono(), wait = c->republish_wait;
    if (c->done || c->blocked || wait <= 0 || !deadline_passed(c) || now - c->last_publish < wait)
        return;
    fmq_log(FMQ_LOG_WARN, "round %llu open for %.0f s with %d update(s): publishing v%llu again",
            open_round(c), now - c->round_start, c->participants, (unsigned long long)c->version);
    publish_model(c);
    c->republish_wait = wait < 16 * c->cfg.republish ? 2 * wait : wait;
}

/* Clears what the open round collected (after it closed, or when its version was overtaken). */
static void reset_round(struct coord *c)
{
    for (int i = 0; i < c->nagents; i++) c->agents[i].in_round = c->agents[i].refused = 0;
    c->val_n = 0;
    c->val_accuracy = c->val_f1 = 0;
    c->nstats = c->nnorms = c->refused_round = 0;
    fmq_robust_reset(&c->rob);
    coord_sa_reset(c);
    c->dp_clipped = 0;
    fmq_moments_clear(&c->moments);
    fmq_moments_clear(&c->bmoments);
    c->participants = 0;
    c->examples = 0;
    c->bytes_up_round = 0;
    c->bytes_in_round = 0;
    c->updates_round = 0;
}

/* A global model on our topic: our own echo, the retained model at start, or someone ahead of
 * us. At start the highest version is noted (coord_connect resumes above it); later a model of
 * our run with a higher version (a retained model that arrived late, a second process of the
 * same run) makes us jump above it, and one of another run is reported. */
static void on_global_seen(struct coord *c, const struct fmq_mq_msg *m, int starting)
{
    struct fmq_model scratch = {0};
    struct fmq_gpt gs = {0};
    struct fmq_global g = {0};
    char err[256];
    if (m->len == 0) goto out;
    g.model = &scratch;
    g.gpt = &gs;
    if (fmq_wire_decode_global(&c->dec, m->payload, m->len, &g, err, sizeof err) != 0 ||
        strcmp(g.task, c->cfg.task) != 0 || g.version > FMQ_VERSION_MAX)
        goto out;
    if (starting) {
        if (g.version > c->seen_version) {
            c->seen_version = g.version;
            snprintf(c->seen_run, sizeof c->seen_run, "%s", g.run);
        }
    } else if (g.version > c->version || (g.version == c->version && strcmp(g.run, c->run))) {
        c->wire_ahead++;
        if (strcmp(g.run, c->run) == 0 && !c->blocked) {
            fmq_log(FMQ_LOG_WARN,
                    "v%llu of our run is on %s, ahead of ours (v%llu): going on at "
                    "v%llu",
                    (unsigned long long)g.version, c->t_global, (unsigned long long)c->version,
                    (unsigned long long)g.version + 1);
            reset_round(c);
            c->version = g.version + 1;
            commit(c);
        } else if (fmq_ratelimit_ok(&c->wire_log))
            fmq_log(FMQ_LOG_WARN, "another coordinator (run %s, v%llu) publishes on %s", g.run,
                    (unsigned long long)g.version, c->t_global);
    }
out:
    fmq_model_free(&scratch);
    fmq_gpt_free(&gs);
}

static void on_status(struct coord *c, const struct fmq_mq_msg *m);
static void reject(struct coord *c, uint64_t *counter, const char *topic, const char *why);

/* Before the first publish: waits for the broker to acknowledge the subscriptions (it sends the
 * retained model with them), takes what arrives until the link is quiet for 0.3 s (within
 * resume_wait), and resumes above the highest version seen, so the retained version never goes
 * back. Updates wait: agents send theirs again when the model is published. */
static void resume(struct coord *c)
{
    double end = fmq_mono() + c->cfg.resume_wait;
    int quiet = strncmp(c->cfg.broker, "mem://", 6) == 0 ? 0 : 300, sub, skipped = 0;
    struct fmq_mq_msg *m;
    while ((sub = fmq_mq_subscribed(c->mq)) == 0 && fmq_mono() < end) usleep(5000);
    if (sub != 1)
        fmq_log(FMQ_LOG_WARN,
                "subscriptions not acknowledged within %.1f s: the retained "
                "model's version is not known",
                c->cfg.resume_wait);
    while (fmq_mono() < end && fmq_mq_poll(c->mq, &m, quiet) == 0) {
        if (strcmp(m->topic, c->t_global) == 0)
            on_global_seen(c, m, 1);
        else if (fmq_topic_match(c->t_status_filter, m->topic))
            on_status(c, m);
        else if (m->retained) /* a retained update: the broker would replay it to every run */
            reject(c, &c->rej_retained, m->topic, "a retained update (the broker replays it)");
        else
            skipped++;
    }
    c->round_start = c->last_publish = fmq_mono();
    c->republish_wait = c->cfg.republish;
    if (c->seen_version > c->version ||
        (c->seen_version == c->version && c->seen_version && strcmp(c->seen_run, c->run))) {
        fmq_log(FMQ_LOG_WARN, "the retained model is v%llu (run %s), ours v%llu: going on at v%llu",
                (unsigned long long)c->seen_version, c->seen_run, (unsigned long long)c->version,
                (unsigned long long)c->seen_version + 1);
        c->version = c->seen_version + 1;
        commit(c);
    } else if (c->cfg.state_file[0] && c->saved_version != c->version)
        commit(c); /* a new run: its id is saved before anyone sees it */
    else
        publish_model(c);
    publish_status(c, c->blocked ? "blocked" : "running");
    if (skipped)
        fmq_log(FMQ_LOG_INFO,
                "%d update(s) arrived before the model was out; agents send them "
                "again",
                skipped);
}

/* Creates the client and records the subscriptions (made at every connect). */
static int create_client(struct coord *c)
{
    struct fmq_mq_opts o;
    char will[160];
    int rc;
    fmq_mq_opts_default(&o);
    o.uri = c->cfg.broker;
    o.tls = &c->cfg.tls;
    o.client_id = c->cfg.client_id;
    o.will_topic = c->t_coord;
    o.will_len =
        (size_t)snprintf(will, sizeof will, "{\"state\":\"offline\",\"run\":\"%s\"}", c->run);
    o.will_payload = will;
    o.will_retained = 1;
    if ((rc = fmq_mq_create(&c->mq, &o)) != 0) return rc;
    if ((rc = fmq_mq_subscribe(c->mq, c->t_update_filter, 1)) ||
        (rc = fmq_mq_subscribe(c->mq, c->t_status_filter, 1)) ||
        (rc = fmq_mq_subscribe(c->mq, c->t_global, 1)) ||
        (c->sa && (rc = fmq_mq_subscribe(c->mq, c->t_secagg_filter, 1))))
        return rc;
    return 0;
}

int coord_connect(struct coord *c, double timeout_s)
{
    int rc;
    if (!c->mq && (rc = create_client(c)) != 0) return rc;
    if ((rc = fmq_mq_connect(c->mq, timeout_s)) != 0) return rc;
    fmq_log(FMQ_LOG_INFO, "connected to %s; run %s; model %s %zu parameters; %zu test flows",
            c->cfg.broker, c->run, coord_model_name(c), coord_model_params(c), c->ntest);
    resume(c);
    return 0;
}

/* An agent that stopped counting as online: it missed silent_rounds rounds it was due in. */
static int silent(const struct coord *c, const struct coord_agent *a)
{
    /* under GSFS an agent whose triggers do not fire is quiet by design: only one that never
     * sent an update is forgotten */
    int gsfs = c->cfg.strategy == FMQ_STRAT_GSFS && c->phase == FMQ_PHASE_TRAIN;
    return c->cfg.silent_rounds > 0 && a->missed >= c->cfg.silent_rounds &&
           (!gsfs || a->updates == 0);
}

/* Counts toward "every online agent has sent". */
static int counts_online(const struct coord *c, const struct coord_agent *a)
{
    return a->in_round || (a->online && !silent(c, a));
}

/* With the table full, the entry to forget: never one in the open round; first one that is
 * offline or silent, then (only for an agent that sent an update: a status alone displaces
 * nothing that counts) one that never sent an update; never aggregated before aggregated, then
 * the longest unheard. Its replay key goes with it, which is safe: its last update's base
 * version is long past, so a replay is refused as stale. */
static struct coord_agent *evictable(struct coord *c, int for_update)
{
    struct coord_agent *best = NULL;
    int best_rank = 0;
    for (int i = 0; i < c->nagents; i++) {
        struct coord_agent *a = &c->agents[i];
        int rank = a->in_round                 ? 0
                   : !counts_online(c, a)      ? (a->app_seq == 0 ? 4 : 3)
                   : for_update && !a->updates ? 2
                                               : 0;
        if (rank > best_rank || (rank && rank == best_rank && a->last_heard < best->last_heard))
            best = a, best_rank = rank;
    }
    return best;
}

/* create: 0 look up only, 1 for a status, 2 for an update (see evictable). */
static struct coord_agent *find_agent(struct coord *c, const char *id, int create)
{
    struct coord_agent *a;
    for (int i = 0; i < c->nagents; i++)
        if (strcmp(c->agents[i].id, id) == 0) return &c->agents[i];
    if (!create) return NULL;
    if (c->nagents < COORD_MAX_AGENTS)
        a = &c->agents[c->nagents++];
    else if ((a = evictable(c, create == 2)) != NULL && fmq_ratelimit_ok(&c->wire_log))
        fmq_log(FMQ_LOG_INFO, "agent table full: %s (%s) makes room for %s", a->id,
                a->updates ? "silent" : "never sent an update", id);
    else if (!a)
        return NULL;
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", id);
    a->calib = -1;
    a->last_heard = fmq_mono();
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
    a->calib = -1;
    for (int k = FMQ_CALIB_LEARNING; k <= FMQ_CALIB_RECALIBRATING; k++)
        if (!strcmp(s.calib, fmq_calib_state_name(k))) a->calib = k;
    a->last_heard = fmq_mono(); /* a status does not revive a silent agent: an update does */
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
        if (c->agents[i].online && !silent(c, &c->agents[i])) online[n++] = i;
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

/* End-to-end receipt on the agent's own topic (schemas/topics.md): the agent keeps an update
 * until it is settled. "applied" is sent only once the state holding it is durable; a refusal
 * says why (reason, or NULL). */
/* {"seq","version","status","current"} and "model" (applied) or "reason" (schemas/topics.md),
 * written by cJSON: a reason is escaped, never cut or doubled. Sequence numbers and versions
 * stay below 2^53 (seq = version << 16 | k), so a JSON number holds them exactly. */
static void receipt(struct coord *c, const char *agent, uint64_t seq, uint64_t base,
                    const char *status, const char *reason)
{
    char topic[256];
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    snprintf(topic, sizeof topic, "%s/%s/receipt/%s", c->cfg.root, c->cfg.task, agent);
    if (o && cJSON_AddNumberToObject(o, "seq", (double)seq) &&
        cJSON_AddNumberToObject(o, "version", (double)base) &&
        cJSON_AddStringToObject(o, "status", status) &&
        cJSON_AddNumberToObject(o, "current", (double)c->version) &&
        (strcmp(status, "applied") == 0 /* the version holding it, saved */
             ? cJSON_AddNumberToObject(o, "model", (double)c->version) != NULL
             : !reason || cJSON_AddStringToObject(o, "reason", reason) != NULL) &&
        (body = cJSON_PrintUnformatted(o)))
        fmq_mq_publish(c->mq, topic, body, strlen(body), 1, 0);
    else
        fmq_log(FMQ_LOG_WARN, "out of memory for the receipt of update #%llu to %s",
                (unsigned long long)seq, agent);
    cJSON_free(body);
    cJSON_Delete(o);
}

static void send_receipt(struct coord *c, const struct fmq_update *u, const char *status,
                         const char *reason)
{
    receipt(c, u->agent, u->seq, u->base_version, status, reason);
}

static void confirm(struct coord *c)
{
    for (int i = 0; i < c->nagents; i++) {
        struct coord_agent *a = &c->agents[i];
        if (a->app_seq == 0 || (a->app_seq == a->rcpt_seq && a->app_base == a->rcpt_base)) continue;
        receipt(c, a->id, a->app_seq, a->app_base, "applied", NULL);
        a->rcpt_seq = a->app_seq;
        a->rcpt_base = a->app_base;
    }
}

/* Refused for good, with the reason: counted, logged and settled, so the agent drops the
 * update instead of sending it again; the agent (a, when known) has had its say this round. */
static void refuse(struct coord *c, uint64_t *counter, const struct fmq_mq_msg *m,
                   const struct fmq_update *u, struct coord_agent *a, const char *why)
{
    reject(c, counter, m->topic, why);
    send_receipt(c, u, "refused", why);
    if (a && !a->refused && !a->in_round) c->refused_round++;
    if (a) a->refused = 1;
}

static double l2norm(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* Keeps an accepted statistics update (and the moments of its benign rows, n 0 when none) for
 * the robust merge at the round's close. */
static int stats_keep(struct coord *c, int agent, const struct fmq_moments *m,
                      const struct fmq_moments *ben)
{
    if (c->nstats == c->stats_cap) {
        int cap = c->stats_cap ? 2 * c->stats_cap : 16;
        struct fmq_moments *in = realloc(c->stats_in, (size_t)cap * sizeof *in), *bin;
        int *who, *kept;
        if (in) c->stats_in = in;
        bin = realloc(c->stats_ben, (size_t)cap * sizeof *bin);
        if (bin) c->stats_ben = bin;
        who = realloc(c->stats_who, (size_t)cap * sizeof *who);
        if (who) c->stats_who = who;
        kept = realloc(c->stats_kept, (size_t)cap * sizeof *kept);
        if (kept) c->stats_kept = kept;
        if (!in || !bin || !who || !kept) return FMQ_ENOMEM;
        c->stats_cap = cap;
    }
    c->stats_in[c->nstats] = *m;
    if (ben)
        c->stats_ben[c->nstats] = *ben;
    else
        fmq_moments_clear(&c->stats_ben[c->nstats]);
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
    u.delta_cap = c->sa ? coord_sa_dim(c) : c->dim;
    u.stats = &c->upd_moments;
    u.benign = &c->upd_bmoments;
    rc = fmq_wire_decode_update(&c->dec, m->payload, m->len, (uint32_t)u.delta_cap, &u, err,
                                sizeof err);
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
    if ((a = find_agent(c, u.agent, 0)) !=
        NULL) { /* an update, even a late one, is a sign of life */
        a->missed = 0;
        a->last_heard = fmq_mono();
    }
    {
        int gsfs = c->cfg.strategy == FMQ_STRAT_GSFS && c->phase == FMQ_PHASE_TRAIN;
        uint64_t lag = (uint64_t)(gsfs ? c->cfg.gsfs.max_staleness : 0);
        if (c->blocked || u.base_version > c->version || c->version - u.base_version > lag) {
            snprintf(err, sizeof err, "base version %llu, current is %llu",
                     (unsigned long long)u.base_version, (unsigned long long)c->version);
            reject(c, &c->rej_stale, m->topic, err);
            /* settled: the agent drops it and waits for the current version (the receipt's
             * "current"; while a version is held, the one that will be published) */
            send_receipt(c, &u, "stale", NULL);
            return;
        }
    }
    if (a && !coord_key_after(u.base_version, u.seq, a->app_base, a->app_seq)) {
        /* (base, seq) at or below the newest aggregated one: saved with the model */
        snprintf(err, sizeof err, "update %llu of v%llu already applied: replay",
                 (unsigned long long)u.seq, (unsigned long long)u.base_version);
        reject(c, &c->rej_replay, m->topic, err);
        send_receipt(c, &u, "duplicate", NULL); /* durable before: settled, apply never */
        return;
    }
    if (a && !coord_key_after(u.base_version, u.seq, a->last_base, a->last_seq)) {
        snprintf(err, sizeof err, "update %llu of v%llu already accepted: replay",
                 (unsigned long long)u.seq, (unsigned long long)u.base_version);
        reject(c, &c->rej_replay, m->topic, err);
        /* held in the open round, not yet durable: the agent keeps it until "applied" */
        send_receipt(c, &u, "accepted", NULL);
        return;
    }
    if (c->sa && c->phase != FMQ_PHASE_CALIB) { /* only masked vectors, never one in clear */
        if (u.codec != FMQ_CODEC_MASKED || u.has_stats) {
            refuse(c, &c->rej_phase, m, &u, a,
                   "secure aggregation is on: only a masked-u32 update is taken");
            return;
        }
    } else if (u.codec == FMQ_CODEC_MASKED) {
        refuse(c, &c->rej_phase, m, &u, a, "a masked update, and secure aggregation is off");
        return;
    } else if ((c->phase == FMQ_PHASE_STATS) != (u.has_stats && u.codec == FMQ_CODEC_NONE) ||
               (c->phase == FMQ_PHASE_CALIB) != (u.codec == FMQ_CODEC_NONE && !u.has_stats)) {
        refuse(c, &c->rej_phase, m, &u, a, "update kind does not match the round phase");
        return;
    }
    if (!a && !(a = find_agent(c, u.agent, 2))) {
        refuse(c, &c->rej_bad, m, &u, a, "too many agents");
        return;
    }
    if (u.n_examples == 0) {
        refuse(c, &c->rej_bad, m, &u, a, "zero examples");
        return;
    }
    if (u.codec == FMQ_CODEC_MASKED)
        ; /* bounded by the agents' clipping, which nobody can check: README, Security */
    else if (c->phase == FMQ_PHASE_STATS) {
        if (fmq_moments_check(&c->upd_moments, err, sizeof err) != 0 ||
            (u.has_benign && fmq_moments_check(&c->upd_bmoments, err, sizeof err) != 0)) {
            refuse(c, &c->rej_range, m, &u, a, err);
            return;
        }
    } else if (c->phase == FMQ_PHASE_TRAIN) {
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
            if (rc == FMQ_ESTALE) {
                reject(c, &c->rej_stale, m->topic, fmq_strerror(rc));
                send_receipt(c, &u, "stale", NULL);
            } else
                refuse(c, &c->rej_bad, m, &u, a, fmq_strerror(rc));
            return;
        }
    } else {
        if (a->in_round) {
            refuse(c, &c->rej_dup, m, &u, a, "second update in this round");
            return;
        }
        if (c->phase == FMQ_PHASE_TRAIN && c->nselected > 0 && !is_selected(c, u.agent)) {
            refuse(c, &c->rej_phase, m, &u, a, "agent was not sampled for this round");
            return;
        }
        if (u.codec == FMQ_CODEC_MASKED) {
            if ((rc = coord_sa_masked(c, u.agent, c->delta, u.dim, err, sizeof err)) != 0) {
                refuse(c, &c->rej_phase, m, &u, a, err);
                return;
            }
        } else if (c->phase == FMQ_PHASE_STATS) {
            if (stats_keep(c, (int)(a - c->agents), &c->upd_moments,
                           u.has_benign ? &c->upd_bmoments : NULL) != 0) {
                reject(c, &c->rej_bad, m->topic, "out of memory");
                return;
            }
        } else if (c->phase == FMQ_PHASE_CALIB)
            ; /* a sketch, nothing to aggregate */
        else {
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
    if (u.has_sketch && u.base_version == c->version) { /* the model being replaced, measured */
        fmq_rule_acc_add(&c->racc, &u.sketch, (uint32_t)c->cfg.rule_min_benign);
        fmq_log(FMQ_LOG_DEBUG,
                "sketch from %s of v%llu: %u benign, sup q99 %.4g q99.5 %.4g, "
                "nov q99 %.4g q99.5 %.4g",
                u.agent, (unsigned long long)u.base_version, u.sketch.n, u.sketch.q[0][2],
                u.sketch.q[0][3], u.sketch.q[1][2], u.sketch.q[1][3]);
    }
    if (!a->in_round) {
        c->participants++;
        c->examples += u.n_examples;
    }
    a->in_round = 1;
    a->last_seq = u.seq;
    a->last_base = u.base_version;
    a->online = 1;
    a->missed = 0;
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

/* A secure aggregation message from an agent: the topic names it; a sampled round hears only
 * the sampled agents. */
static void on_secagg(struct coord *c, const struct fmq_mq_msg *m)
{
    const char *id = last_level(m->topic);
    if (m->retained) {
        reject(c, &c->rej_retained, m->topic, "a retained secure aggregation message");
        return;
    }
    if (!fmq_id_valid(id)) {
        reject(c, &c->rej_bad, m->topic, "not an agent's secagg topic");
        return;
    }
    if (c->phase == FMQ_PHASE_TRAIN && c->nselected > 0 && !is_selected(c, id)) {
        reject(c, &c->rej_phase, m->topic, "agent was not sampled for this round");
        return;
    }
    c->bytes_up_round += m->len;
    c->bytes_in_round += m->len;
    coord_sa_on_msg(c, id, m);
}

static int round_ready(struct coord *c)
{
    int online = 0, target;

    if (c->participants == 0 && c->phase == FMQ_PHASE_STATS && !c->sa)
        return 0; /* no normalisation yet */
    if (c->phase == FMQ_PHASE_TRAIN && fmq_mono() - c->round_start < c->cfg.round_interval)
        return 0; /* paced: updates wait in the round, agents train once per interval */
    for (int i = 0; i < c->nagents; i++)
        online += counts_online(c, &c->agents[i]) && !coord_sa_blamed(c, c->agents[i].id);
    if (c->sa && c->phase != FMQ_PHASE_CALIB) /* its stages decide (coord_secagg.c) */
        return coord_sa_ready(c,
                              c->phase == FMQ_PHASE_TRAIN && c->nselected > 0 ? c->nselected
                              : c->cfg.expected_agents > 0
                                  ? (int)c->cfg.expected_agents - coord_sa_nblamed(c)
                                  : online,
                              deadline_passed(c) || c->deadline_expired);
    if (c->phase == FMQ_PHASE_TRAIN && c->cfg.strategy == FMQ_STRAT_GSFS) {
        /* GSFS: M = ceil(quorum x agents online) distinct agents in the pool */
        uint64_t total = 0;
        for (int i = 0; i < c->nagents; i++)
            if (counts_online(c, &c->agents[i])) total += c->agents[i].n_examples;
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
    if (deadline_passed(c) || c->deadline_expired) {
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

/* This round's aggregate does not go in: the model stays, the metrics' guard and the round's
 * receipts say why. */
static void aggregate_refused(struct coord *c, const char *why)
{
    c->guard_refused = 1;
    c->guard_total++;
    snprintf(c->guard_why, sizeof c->guard_why, "%s", why);
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
        aggregate_refused(c, err);
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
/* The benign profile (model.h, the MLP's novelty channel): the same robust merge over the
 * benign rows' moments of the agents the normalisation kept. */
/* The training round's aggregate under secure aggregation: the plain mean of the survivors'
 * (clipped) changes, each agent weighted equally (as DP-FedAvg weights them). k honest values
 * in [-clip, clip] sum to at most k x clip: a sum beyond that is a liar's, clamped and counted
 * (secagg.out_of_range in the metrics). -1 when the round failed (the model stays). */
static int secure_mean(struct coord *c)
{
    const double *sum;
    const char *why;
    double bound;
    int k;
    if (coord_sa_result(c, &sum, &k, &why) != 0 || k < 1) {
        aggregate_refused(c, why);
        return -1;
    }
    bound = k * c->cfg.secagg_clip * (1 + 1e-6);
    c->sa_out_of_range = 0;
    for (size_t i = 0; i < c->dim; i++) {
        double v = sum[i];
        if (v > bound || v < -bound) {
            c->sa_out_of_range++;
            v = v > 0 ? bound : -bound;
        }
        c->mean[i] = v / k;
    }
    if (c->sa_out_of_range)
        fmq_log(FMQ_LOG_WARN,
                "round %llu: %d values of the secure sum beyond what %d honest agents can sum "
                "to (an agent lied); clamped",
                (unsigned long long)c->round + 1, c->sa_out_of_range, k);
    return 0;
}

/* The statistics round under secure aggregation: the equal-weight mixture of the sites'
 * moments (fmq_stats_from_secure); the round runs again when it failed. 0 when the model has
 * its normalisation. */
static int close_stats_secure(struct coord *c)
{
    const double *sum;
    const char *why;
    char err[200];
    float mean[FMQ_FEAT_DIM], std[FMQ_FEAT_DIM];
    int k;
    c->stats_used = c->nstats = 0;
    if (coord_sa_result(c, &sum, &k, &why) != 0) {
        aggregate_refused(c, why);
        return -1;
    }
    if ((c->stats_capped = fmq_stats_from_secure(sum, k, &c->moments, &c->bmoments)) < 0) {
        c->stats_capped = 0;
        aggregate_refused(c, "secure aggregation: no statistics summed");
        return -1;
    }
    if (c->stats_capped > 0) /* some agent sent values outside [0, 1]: clamped */
        fmq_log(FMQ_LOG_WARN,
                "statistics round: %d summed values were outside what %d honest sites can sum "
                "to (an agent lied); clamped into range",
                c->stats_capped, k);
    fmq_moments_finish(&c->moments, mean, std);
    if (fmq_norm_check(mean, std, err, sizeof err) != 0) {
        aggregate_refused(c, err);
        return -1;
    }
    memcpy(c->model.norm_mean, mean, sizeof mean);
    memcpy(c->model.norm_std, std, sizeof std);
    c->model.has_norm = 1;
    c->model.has_prof = 0;
    if (c->bmoments.n > 0) {
        fmq_moments_finish(&c->bmoments, mean, std);
        memcpy(c->model.prof_mean, mean, sizeof mean);
        memcpy(c->model.prof_std, std, sizeof std);
        c->model.has_prof = 1;
    }
    c->stats_used = c->nstats = k;
    c->phase = FMQ_PHASE_TRAIN;
    return 0;
}

static void close_profile(struct coord *c, const struct fmq_moments_rule *mr)
{
    struct fmq_moments *ben = malloc((size_t)(c->nstats ? c->nstats : 1) * sizeof *ben);
    int *kept = malloc((size_t)(c->nstats ? c->nstats : 1) * sizeof *kept), k = 0;
    float mean[FMQ_FEAT_DIM], std[FMQ_FEAT_DIM];
    c->model.has_prof = 0;
    if (ben && kept) {
        for (int i = 0; i < c->nstats; i++)
            if (c->stats_kept[i] && c->stats_ben[i].n > 0) ben[k++] = c->stats_ben[i];
        if (k > 0 && fmq_moments_robust_merge(ben, (size_t)k, mr, &c->bmoments, kept, NULL) > 0) {
            fmq_moments_finish(&c->bmoments, mean, std);
            memcpy(c->model.prof_mean, mean, sizeof mean);
            memcpy(c->model.prof_std, std, sizeof std);
            c->model.has_prof = 1;
        }
    }
    if (!c->model.has_prof) fmq_log(FMQ_LOG_INFO, "no benign profile: no agent sent benign rows");
    free(ben);
    free(kept);
}

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
            close_profile(c, &mr);
            return;
        }
    } else
        snprintf(err, sizeof err, "%s", n == 0 ? "no statistics" : fmq_strerror(n));
    aggregate_refused(c, err);
    fmq_log(FMQ_LOG_WARN, "statistics round: no normalisation (%s); the round runs again", err);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The metrics' lists, which grow with the fleet: the ids of this round's participants and the
 * measured links, each as a JSON array (owned; NULL when out of memory). cJSON escapes and
 * sizes them, so a 1,000-agent round lists every agent (fixed buffers cut them at ~30). */
static char *agents_json(const struct coord *c)
{
    cJSON *a = cJSON_CreateArray();
    char *out = NULL;
    for (int i = 0; a && i < c->nagents; i++)
        if (c->agents[i].in_round && !cJSON_AddItemToArray(a, cJSON_CreateString(c->agents[i].id)))
            goto out;
    out = a ? cJSON_PrintUnformatted(a) : NULL;
out:
    cJSON_Delete(a);
    return out;
}

static char *links_json(const struct coord *c)
{
    cJSON *a = cJSON_CreateArray(), *l;
    char *out = NULL;
    for (int i = 0; a && i < c->nagents; i++) {
        const struct coord_agent *ag = &c->agents[i];
        if (!ag->link.n) continue;
        if (!(l = cJSON_CreateObject()) || !cJSON_AddItemToArray(a, l) ||
            !cJSON_AddStringToObject(l, "agent", ag->id) ||
            !cJSON_AddNumberToObject(l, "delay_s", round(ag->link.delay * 1e4) / 1e4) ||
            !cJSON_AddNumberToObject(l, "rate_Bps", round(ag->link.rate)) ||
            !cJSON_AddNumberToObject(l, "sps", round(ag->link.sps)))
            goto out;
    }
    out = a ? cJSON_PrintUnformatted(a) : NULL;
out:
    cJSON_Delete(a);
    return out;
}

static void close_round(struct coord *c)
{
    struct fmq_confusion cm = {0};
    struct fmq_scores sc = {0};
    struct coord_eval ev;
    char det[8192], sa_json[512], *json = NULL, *ids = NULL, *sens = NULL;
    size_t cap;
    double round_s = fmq_mono() - c->round_start;
    int online = 0, was_stats = c->phase == FMQ_PHASE_STATS, finite = 1, n, nsilent = 0;
    int was_calib = c->phase == FMQ_PHASE_CALIB;
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
    if (was_stats) {
        if (!c->sa)
            close_stats(c);
        else if (close_stats_secure(c) != 0)
            fmq_log(FMQ_LOG_WARN, "statistics round: no normalisation (%s); the round runs again",
                    c->guard_why);
    } else if (was_calib) { /* the model as it is, with the rule measured on it exactly */
        c->phase = FMQ_PHASE_TRAIN;
    } else {
        int rc;
        c->pool.theta = c->trainable; /* GSFS memory blends local models against it */
        rc = c->sa                               ? secure_mean(c)
             : c->cfg.strategy == FMQ_STRAT_GSFS ? fmq_gsfs_aggregate(&c->pool, c->version, c->mean)
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
                aggregate_refused(c, "the aggregate is not finite");
                rc = -1;
            }
        if (rc >= 0)
            guarded_step(c);
        else if (!c->guard_refused)
            fmq_log(c->participants ? FMQ_LOG_WARN : FMQ_LOG_INFO,
                    "round %llu: %s; model unchanged", (unsigned long long)c->round + 1,
                    c->participants ? "every update was dropped" : "no update");
        c->round++;
        if (c->cfg.rounds > 0 && c->round >= (uint64_t)c->cfg.rounds && c->cfg.calib_round)
            c->phase = FMQ_PHASE_CALIB; /* one more round: sketches of the final model */
    }
    { /* the fleet rule the next model carries: this round's sketches of the model it replaces */
        struct fmq_rule r;
        fmq_rule_acc_finish(&c->racc, c->cfg.fp_budget, c->version, &r);
        if (r.channels) c->rule = r;
        fmq_rule_acc_reset(&c->racc);
    }
    c->version++;
    coord_evaluate(c, &c->rule, &ev);
    coord_sa_json(c, was_stats ? c->stats_capped : c->sa_out_of_range, sa_json, sizeof sa_json);
    for (size_t i = 0; i < c->dim; i++) finite &= isfinite(c->trainable[i]) != 0;
    cm = ev.cm;
    fmq_scores_from(&cm, &sc);
    coord_eval_json(c, &ev, det, sizeof det);
    ids = agents_json(c);
    sens = links_json(c);
    if (!ids || !sens)
        fmq_log(FMQ_LOG_WARN, "round %llu: out of memory for the metrics' lists; they are empty",
                (unsigned long long)c->round);
    for (int i = 0; i < c->nagents; i++) {
        online += c->agents[i].online;
        nsilent += c->agents[i].online && silent(c, &c->agents[i]);
    }
    for (int i = 0; i < c->nagents; i++) { /* in the new model: confirmed once it is saved */
        struct coord_agent *a = &c->agents[i];
        int due = a->online && !a->in_round && (c->nselected == 0 || is_selected(c, a->id));
        if (a->in_round && !c->guard_refused) { /* a refused aggregate holds none of them */
            a->app_base = a->last_base;
            a->app_seq = a->last_seq;
        }
        if (due && a->missed < 1000000) a->missed++; /* silent_rounds: forgotten until it sends */
    }
    sample_agents(c);
    if (c->guard_refused) /* nothing of this round went in: settled, and why */
        for (int i = 0; i < c->nagents; i++)
            if (c->agents[i].in_round)
                receipt(c, c->agents[i].id, c->agents[i].last_seq, c->agents[i].last_base,
                        "refused", c->guard_why);
    encode_global(c); /* its size, for the downlink bytes; commit encodes it again */
    /* the broker sends the model once to every subscribed agent */
    down = (uint64_t)c->last_model_bytes *
           (uint64_t)(online > c->participants ? online : c->participants);
    c->bytes_up_total += c->bytes_up_round;
    c->bytes_down_total += down;
    cap = 16384 + strlen(det) + (ids ? strlen(ids) : 2) + (sens ? strlen(sens) : 2);
    n = -1;
    if ((json = malloc(cap)))
        n = snprintf(
            json, cap,
            "{\"task\":\"%s\",\"run\":\"%s\",\"round\":%llu,\"version\":%llu,\"phase\":\"%s\","
            "\"model\":\"%s\",\"params\":%zu,\"trainable\":%zu,\"strategy\":\"%s\",\"robust\":{"
            "\"rule\":\"%s\",\"applied\":\"%s\",\"used\":%d,\"clipped\":%d,\"capped\":%d},"
            "\"stats\":{\"used\":%d,\"left_out\":%d,\"capped\":%d},\"guard\":{\"refused\":%s,"
            "\"reason\":\"%s\",\"total\":%llu},\"update_norm\":{\"median\":%.6g,\"max\":%.6g},"
            "\"step_norm\":%.6g,\"refused\":%d,\"dp\":{\"clip\":%g,\"noise\":%g,\"delta\":%g,"
            "\"rounds\":%llu,\"epsilon\":%.6g,\"epsilon_max\":%g,\"exhausted\":%s,\"clipped\":%d},"
            "%s,\"codec\":\"%s\",\"sampled\":%d,\"gsfs\":"
            "{\"quorum\":%d,"
            "\"used\":%d,\"dropped\":%d,\"clipped\":%d,\"deferred\":%d,\"capped\":%d,"
            "\"superseded\":%llu},"
            "\"participants\":%d,"
            "\"agents\":%s,\"agents_online\":%d,"
            "\"examples\":%llu,\"test_flows\":%zu,\"accuracy\":%.6f,\"precision\":%.6f,"
            "\"recall\":%.6f,\"f1\":%.6f,\"model_finite\":%s,\"recall_at_1pct_fpr\":%.6f,\"head_"
            "recall_"
            "at_1pct_fpr\":%.6f,\"either_recall_at_1pct_fpr\":%.6f,\"threshold\":%.6g,\"tp\":%llu,"
            "\"fp\":%llu,\"tn\":%llu,\"fn\":%llu,"
            "\"bytes_up_round\":%llu,\"bytes_up_refused_round\":%llu,\"bytes_up_total\":%llu,"
            "\"bytes_down_round\":%llu,"
            "\"bytes_down_total\":%llu,\"model_bytes\":%zu,\"update_bytes_mean\":%.1f,"
            "\"round_s\":%.3f,\"rejected\":{\"malformed\":%llu,\"stale\":%llu,\"duplicate\":%llu,"
            "\"task\":%llu,\"phase\":%llu,\"replay\":%llu,\"range\":%llu,\"norm\":%llu,"
            "\"retained\":"
            "%llu},%s,\"links\":%s,"
            "\"plans\":%d,"
            "\"eval_s\":%.6f,\"model_hash\":\"%016llx\",\"agent_val\":{\"n\":%d,\"accuracy\":%.6f,"
            "\"f1\":%.6f},\"process_cpu_s\":%.3f,\"ts\":%.3f,\"silent\":%d",
            c->cfg.task, c->run, (unsigned long long)c->round, (unsigned long long)c->version,
            was_stats   ? "stats"
            : was_calib ? "calib"
                        : "train",
            coord_model_name(c), coord_model_params(c), c->dim, fmq_strategy_name(c->cfg.strategy),
            fmq_robust_name(c->cfg.robust), fmq_robust_name(c->rob.last_rule), c->rob.last_used,
            c->rob.last_clipped, c->rob.last_capped, was_stats ? c->stats_used : 0,
            was_stats ? c->nstats - c->stats_used : 0, was_stats ? c->stats_capped : 0,
            c->guard_refused ? "true" : "false", c->guard_why, (unsigned long long)c->guard_total,
            norm_med, norm_max, c->step_norm, c->refused_round, c->cfg.dp_clip, c->cfg.dp_noise,
            c->cfg.dp_delta, (unsigned long long)c->dp_rounds,
            c->cfg.dp_clip > 0 && isfinite(c->dp_eps) ? c->dp_eps : -1.0, c->cfg.dp_epsilon_max,
            c->dp_exhausted ? "true" : "false", c->dp_clipped, sa_json,
            fmq_codec_name(was_stats || was_calib ? FMQ_CODEC_NONE : c->codec_last), c->nselected,
            fmq_gsfs_quorum(&c->cfg.gsfs, online), c->pool.last_used, c->pool.last_dropped,
            c->pool.last_clipped, c->pool.last_deferred, c->pool.last_capped,
            (unsigned long long)c->pool.superseded, c->participants, ids ? ids : "[]", online,
            (unsigned long long)c->examples, c->ntest, sc.accuracy, sc.precision, sc.recall, sc.f1,
            finite ? "true" : "false", ev.recall_at_fpr, ev.head_recall_at_fpr,
            ev.either_recall_at_fpr, ev.threshold, (unsigned long long)cm.tp,
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
            (unsigned long long)c->rej_retained, det, sens ? sens : "[]", c->nplans, ev.eval_s,
            (unsigned long long)ev.model_hash, c->val_n,
            c->val_n ? c->val_accuracy / c->val_n : 0.0, c->val_n ? c->val_f1 / c->val_n : 0.0,
            process_cpu_s(), fmq_now(), nsilent);
    free(c->round_body); /* commit adds the "state" part and publishes it after the model */
    c->round_body = n > 0 && (size_t)n < cap ? json : NULL;
    if (!c->round_body) free(json);
    cJSON_free(ids);
    cJSON_free(sens);
    c->round_new = c->round_body != NULL;
    if (was_calib)
        fmq_log(FMQ_LOG_INFO,
                "calibration round -> v%llu: %d agents, fleet rule from %u sites (budget %.3g): "
                "deployed test recall %.4f, FPR %.4f",
                (unsigned long long)c->version, c->participants, c->rule.sites, c->rule.budget,
                ev.dep.tp + ev.dep.fn ? (double)ev.dep.tp / (double)(ev.dep.tp + ev.dep.fn) : 0.0,
                ev.dep.fp + ev.dep.tn ? (double)ev.dep.fp / (double)(ev.dep.fp + ev.dep.tn) : 0.0);
    else if (was_stats)
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
    reset_round(c);
    commit(c);
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
    if (!fmq_mq_connected(c->mq))
        c->linked_since = 0;
    else if (c->linked_since <= 0)
        c->linked_since = fmq_mono();
    if (st.reconnects != c->reconnects) {
        /* back from a lost connection (perhaps the broker restarted and lost its retained
         * messages): publish the current version again; agents that had sent an update for it
         * and saw no receipt send it again */
        c->reconnects = st.reconnects;
        fmq_log(FMQ_LOG_INFO, "reconnected: publishing v%llu again (the round keeps its deadline)",
                (unsigned long long)c->published_version);
        publish_model(c);
        publish_status(c, c->blocked ? "blocked" : "running");
    }
    if (c->blocked && fmq_mono() >= c->retry_at) commit(c);
    if (fmq_mq_poll(c->mq, &m, c->blocked ? (timeout_ms < 100 ? timeout_ms : 100) : timeout_ms) ==
        0) {
        if (fmq_topic_match(c->t_update_filter, m->topic))
            on_update(c, m);
        else if (fmq_topic_match(c->t_status_filter, m->topic))
            on_status(c, m);
        else if (c->sa && fmq_topic_match(c->t_secagg_filter, m->topic))
            on_secagg(c, m);
        else if (strcmp(m->topic, c->t_global) == 0)
            on_global_seen(c, m, 0);
    }
    if (!c->done && !c->blocked && round_ready(c)) close_round(c);
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
