/* Secure aggregation over the bus, the coordinator's side (secure_agg = true): for each
 * statistics or training round it runs the protocol of core/include/fedmq/secagg.h (Bonawitz et
 * al. 2017, semi-honest, with dropout recovery) with the agents that sent keys, routing their
 * encrypted shares, and ends with only the sum of their vectors: the round's moments or model
 * changes, never one agent's. Stages, each with its own time limit (secagg_timeout):
 *   KEYS      agents send their public keys once they have a vector to give; the round's usual
 *             rule (every agent online or sampled, or the deadline with min_participants)
 *             fixes the roster, at least secagg_min agents, at most FMQ_SECAGG_MAX_N;
 *   SHARES    the roster goes to each agent (its index, n, t, fixed point, every agent's keys);
 *             each answers with n encrypted shares; those that did are U1;
 *   MASKED    each agent of U1 gets its inbox (the shares addressed to it) and sends its masked
 *             vector as an update (codec masked-u32, through on_update); those that did are U2;
 *   UNMASK    U2 is told who survived; each returns its shares of the survivors' self-mask seeds
 *             and of the dropped agents' mask keys; with t answers the sum comes out.
 * Fewer than t agents at any stage fails the round: nothing is revealed, the model stays (the
 * statistics round runs again) and the metrics say why. A round id from the run, the version
 * and the phase binds every key and mask to one round. What the coordinator still sees: who
 * takes part, each agent's example count and sketch (in the update's header) and the sum.
 * Against a lying agent: keys that are not usable X25519 points are refused before the roster;
 * a forged share costs its recipient nothing but its part in recovering the forger; a round
 * that fails because an agent's secret could not be recovered from t good shares (the forger
 * then dropped out) leaves that agent out of every later roster of this run (`blamed`), so it
 * can fail one round, not the federation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "fedmq/secagg.h"

enum { SA_IDLE, SA_KEYS, SA_SHARES, SA_MASKED, SA_UNMASK, SA_DONE, SA_FAILED };
static const char *const stage_names[] = {"idle",   "keys", "shares", "masked",
                                          "unmask", "done", "failed"};

struct coord_sa {
    int stage;
    uint64_t version; /* the round's */
    int phase;
    double stage_start;
    int n, t;
    char (*ids)[FMQ_ID_MAX]; /* FMQ_SECAGG_MAX_N: who sent keys, in roster order */
    uint8_t *pubs;           /* FMQ_SECAGG_MAX_N x 64 */
    uint8_t *shares;         /* n x n x FMQ_SECAGG_CIPHER: from u to v at (u n + v) */
    uint8_t shared[FMQ_SECAGG_MAX_N], masked[FMQ_SECAGG_MAX_N], answered[FMQ_SECAGG_MAX_N];
    struct fmq_secagg_params p;
    struct fmq_secagg_server srv;
    int srv_init;
    uint32_t *y;   /* max(model, statistics) words: one masked vector */
    double *sum;   /* as many: the result */
    int count;     /* vectors in the sum */
    char why[200]; /* a failed round's reason */
    struct fmq_buf out, data;
    /* all-time, for the metrics */
    uint64_t rounds_ok, rounds_failed, dropped;
    char (*blamed)[FMQ_ID_MAX]; /* owned: agents whose forged shares failed a round: no more */
    int nblamed, blamed_cap;    /* rosters for them this run */
};

int coord_sa_init(struct coord *c)
{
    struct coord_sa *s;
    uint32_t cap = (uint32_t)(c->dim > FMQ_STATS_SECURE_DIM ? c->dim : FMQ_STATS_SECURE_DIM);
    if (!c->cfg.secure_agg) return 0;
    if (!(s = calloc(1, sizeof *s))) return FMQ_ENOMEM;
    c->sa = s;
    if (!(s->ids = calloc(FMQ_SECAGG_MAX_N, sizeof *s->ids)) ||
        !(s->pubs = calloc(FMQ_SECAGG_MAX_N, 2 * FMQ_SECAGG_KEY)) ||
        !(s->y = malloc((size_t)cap * sizeof *s->y)) ||
        !(s->sum = malloc((size_t)cap * sizeof *s->sum)))
        return FMQ_ENOMEM;
    return 0;
}

static void sa_clear(struct coord_sa *s)
{
    if (s->srv_init) fmq_secagg_server_free(&s->srv);
    s->srv_init = 0;
    free(s->shares);
    s->shares = NULL;
    s->stage = SA_IDLE;
    s->n = s->t = s->count = 0;
    s->why[0] = 0;
    memset(s->shared, 0, sizeof s->shared);
    memset(s->masked, 0, sizeof s->masked);
    memset(s->answered, 0, sizeof s->answered);
}

void coord_sa_free(struct coord *c)
{
    struct coord_sa *s = c->sa;
    if (!s) return;
    sa_clear(s);
    free(s->ids);
    free(s->pubs);
    free(s->y);
    free(s->sum);
    free(s->blamed);
    fmq_buf_free(&s->out);
    fmq_buf_free(&s->data);
    free(s);
    c->sa = NULL;
}

void coord_sa_reset(struct coord *c)
{
    if (c->sa) sa_clear(c->sa);
}

uint32_t coord_sa_dim(const struct coord *c)
{
    return c->phase == FMQ_PHASE_STATS ? FMQ_STATS_SECURE_DIM : (uint32_t)c->dim;
}

static int zero_slot(const uint8_t *p)
{
    uint8_t acc = 0;
    for (int i = 0; i < FMQ_SECAGG_CIPHER; i++) acc |= p[i];
    return acc == 0;
}

static int roster_index(const struct coord_sa *s, const char *id)
{
    for (int u = 0; u < s->n; u++)
        if (!strcmp(s->ids[u], id)) return u;
    return -1;
}

static void send_to(struct coord *c, const char *id, const struct fmq_secagg_msg *m)
{
    struct coord_sa *s = c->sa;
    char topic[256];
    snprintf(topic, sizeof topic, "%s/%s/secagg-to/%s", c->cfg.root, c->cfg.task, id);
    if (fmq_wire_encode_secagg(m, &s->out) != 0 ||
        fmq_mq_publish(c->mq, topic, s->out.data, s->out.len, 1, 0) != 0)
        fmq_log(FMQ_LOG_WARN, "secure aggregation: cannot send the %s step to %s",
                fmq_secagg_step_name(m->step), id);
    else
        c->bytes_down_total += s->out.len;
}

static void header(const struct coord *c, struct fmq_secagg_msg *m, int step)
{
    memset(m, 0, sizeof *m);
    m->step = step;
    snprintf(m->run, sizeof m->run, "%s", c->run);
    m->version = c->sa->version;
    m->phase = c->sa->phase;
}

static void fail_round(struct coord *c, const char *why)
{
    struct coord_sa *s = c->sa;
    snprintf(s->why, sizeof s->why, "secure aggregation: %.170s", why);
    s->stage = SA_FAILED;
    s->rounds_failed++;
    fmq_log(FMQ_LOG_WARN, "round %llu: %s; nothing is revealed and the model stays",
            (unsigned long long)c->round + 1, s->why);
}

static int start_roster(struct coord *c)
{
    struct coord_sa *s = c->sa;
    struct fmq_secagg_msg m;
    int n = s->n;
    char why[120];
    s->p.n = n;
    s->p.t = (int)ceil(c->cfg.secagg_threshold * n);
    if (s->p.t < c->cfg.secagg_min) s->p.t = (int)c->cfg.secagg_min; /* never a sum of fewer */
    if (s->p.t < 2) s->p.t = 2;
    if (s->p.t > n) s->p.t = n;
    s->t = s->p.t;
    s->p.dim = coord_sa_dim(c);
    s->p.clip = c->phase == FMQ_PHASE_STATS ? 1.0f : (float)c->cfg.secagg_clip;
    for (s->p.frac_bits = 30; s->p.frac_bits > 0; s->p.frac_bits--)
        if ((double)n * s->p.clip * ldexp(1.0, s->p.frac_bits) < 2147483647.0) break;
    fmq_secagg_round_id(c->run, s->version, s->phase, s->p.round_id);
    if (fmq_secagg_params_check(&s->p) != 0) {
        snprintf(why, sizeof why, "no fixed point fits %d agents at clip %g", n, s->p.clip);
        fail_round(c, why);
        return -1;
    }
    if (!(s->shares = calloc((size_t)n * (size_t)n, FMQ_SECAGG_CIPHER))) {
        fail_round(c, "out of memory");
        return -1;
    }
    header(c, &m, FMQ_SA_ROSTER);
    m.n = n, m.t = s->t, m.dim = s->p.dim, m.frac_bits = s->p.frac_bits, m.clip = s->p.clip;
    m.l2 = c->phase == FMQ_PHASE_TRAIN ? (float)c->cfg.dp_clip : 0.0f;
    m.data = s->pubs;
    m.len = (size_t)n * 2 * FMQ_SECAGG_KEY;
    for (int u = 0; u < n; u++) {
        m.idx = u;
        send_to(c, s->ids[u], &m);
    }
    s->stage = SA_SHARES;
    s->stage_start = fmq_mono();
    fmq_log(FMQ_LOG_INFO, "secure aggregation v%llu (%s): roster of %d, threshold %d, %u values",
            (unsigned long long)s->version, s->phase == FMQ_PHASE_STATS ? "statistics" : "training",
            n, s->t, s->p.dim);
    return 0;
}

static void start_masking(struct coord *c)
{
    struct coord_sa *s = c->sa;
    struct fmq_secagg_msg m;
    int n = s->n, k = 0;
    uint8_t *inbox;
    for (int u = 0; u < n; u++) k += s->shared[u];
    if (k < s->t) {
        char why[96];
        snprintf(why, sizeof why, "%d of %d agents sent shares, %d needed", k, n, s->t);
        fail_round(c, why);
        return;
    }
    if (!(inbox = calloc((size_t)n, FMQ_SECAGG_CIPHER)) ||
        fmq_secagg_server_init(&s->srv, &s->p, s->pubs) != 0) {
        free(inbox);
        fail_round(c, "out of memory");
        return;
    }
    s->srv_init = 1;
    fmq_secagg_server_routed(&s->srv, s->shared);
    header(c, &m, FMQ_SA_INBOX);
    m.data = inbox;
    m.len = (size_t)n * FMQ_SECAGG_CIPHER;
    for (int v = 0; v < n; v++) {
        if (!s->shared[v]) continue;
        for (int u = 0; u < n; u++)
            if (s->shared[u])
                memcpy(inbox + (size_t)u * FMQ_SECAGG_CIPHER,
                       s->shares + ((size_t)u * n + v) * FMQ_SECAGG_CIPHER, FMQ_SECAGG_CIPHER);
            else
                memset(inbox + (size_t)u * FMQ_SECAGG_CIPHER, 0, FMQ_SECAGG_CIPHER);
        send_to(c, s->ids[v], &m);
    }
    free(inbox);
    s->stage = SA_MASKED;
    s->stage_start = fmq_mono();
}

static void start_unmask(struct coord *c)
{
    struct coord_sa *s = c->sa;
    struct fmq_secagg_msg m;
    int k = 0;
    for (int u = 0; u < s->n; u++) k += s->masked[u];
    if (k < s->t) {
        char why[96];
        snprintf(why, sizeof why, "%d of %d masked vectors arrived, %d needed", k, s->n, s->t);
        fail_round(c, why);
        return;
    }
    header(c, &m, FMQ_SA_SURVIVORS);
    m.data = s->masked;
    m.len = (size_t)s->n;
    for (int u = 0; u < s->n; u++)
        if (s->masked[u]) send_to(c, s->ids[u], &m);
    s->stage = SA_UNMASK;
    s->stage_start = fmq_mono();
}

static int blame(struct coord_sa *s, const char *id)
{
    if (s->nblamed == s->blamed_cap) {
        int cap = s->blamed_cap ? 2 * s->blamed_cap : 8;
        char(*b)[FMQ_ID_MAX] = realloc(s->blamed, (size_t)cap * sizeof *b);
        if (!b) return FMQ_ENOMEM;
        s->blamed = b;
        s->blamed_cap = cap;
    }
    snprintf(s->blamed[s->nblamed++], FMQ_ID_MAX, "%s", id);
    return 0;
}

int coord_sa_blamed(const struct coord *c, const char *id)
{
    const struct coord_sa *s = c->sa;
    for (int b = 0; s && b < s->nblamed; b++)
        if (!strcmp(s->blamed[b], id)) return 1;
    return 0;
}

int coord_sa_nblamed(const struct coord *c)
{
    return c->sa ? c->sa->nblamed : 0;
}

static void finish(struct coord *c)
{
    struct coord_sa *s = c->sa;
    int rc = fmq_secagg_server_sum(&s->srv, s->sum, &s->count), shared = 0;
    if (rc != 0) {
        int v = s->srv.unrecovered, answered = 0;
        char why[160];
        for (int u = 0; u < s->n; u++) answered += s->answered[u];
        if (rc == FMQ_ERANGE && v >= 0 && 2 * fmq_secagg_server_holders(&s->srv, v) < answered &&
            blame(s, s->ids[v]) == 0) { /* most answerers could not open its shares */
            snprintf(why, sizeof why,
                     "%s's secret had fewer than %d good shares (forged shares?): it is left out "
                     "of later rounds",
                     s->ids[v], s->t);
            fmq_log(FMQ_LOG_ERROR, "secure aggregation: %s", why);
        } else
            snprintf(why, sizeof why, "%s",
                     rc == FMQ_ERANGE ? "fewer than t answers to unmask the sum"
                                      : "the masks could not be removed");
        fail_round(c, why);
        return;
    }
    for (int u = 0; u < s->n; u++) shared += s->shared[u];
    s->dropped += (uint64_t)(s->n - s->count);
    s->stage = SA_DONE;
    s->rounds_ok++;
    fmq_log(FMQ_LOG_INFO,
            "secure aggregation v%llu: the sum of %d vectors (roster %d, %d shared, %d dropped)",
            (unsigned long long)s->version, s->count, s->n, shared, s->n - s->count);
}

void coord_sa_on_msg(struct coord *c, const char *agent, const struct fmq_mq_msg *m)
{
    struct coord_sa *s = c->sa;
    struct fmq_secagg_msg sm;
    char err[256];
    int u;
    if (!s) return;
    if (fmq_wire_decode_secagg(&c->dec, m->payload, m->len, s->n, &sm, &s->data, err, sizeof err) !=
        0) {
        fmq_log(FMQ_LOG_WARN, "secure aggregation: dropped a message from %s: %s", agent, err);
        return;
    }
    if (strcmp(sm.run, c->run) || sm.version != c->version || sm.phase != c->phase) {
        fmq_log(FMQ_LOG_DEBUG, "secure aggregation: %s's message is for v%llu, not this round",
                agent, (unsigned long long)sm.version);
        return;
    }
    if (sm.step == FMQ_SA_KEYS) {
        if (coord_sa_blamed(c, agent)) {
            fmq_log(FMQ_LOG_DEBUG, "secure aggregation: %s is left out (forged shares)", agent);
            return;
        }
        if (fmq_secagg_pub_check(sm.data) != 0) {
            fmq_log(FMQ_LOG_WARN, "secure aggregation: %s's keys are not usable X25519 keys",
                    agent);
            return;
        }
        if (s->stage == SA_IDLE) {
            s->stage = SA_KEYS, s->version = c->version, s->phase = c->phase;
            s->stage_start = fmq_mono();
        }
        if (s->stage != SA_KEYS) {
            fmq_log(FMQ_LOG_INFO, "secure aggregation: %s's keys came after the roster", agent);
            return;
        }
        if ((u = roster_index(s, agent)) < 0) {
            if (s->n == FMQ_SECAGG_MAX_N) {
                fmq_log(FMQ_LOG_WARN, "secure aggregation: the roster is full (%d); %s waits",
                        FMQ_SECAGG_MAX_N, agent);
                return;
            }
            u = s->n++;
            snprintf(s->ids[u], FMQ_ID_MAX, "%s", agent);
        }
        memcpy(s->pubs + (size_t)u * 2 * FMQ_SECAGG_KEY, sm.data, 2 * FMQ_SECAGG_KEY);
        return;
    }
    if ((u = roster_index(s, agent)) < 0) {
        fmq_log(FMQ_LOG_WARN, "secure aggregation: %s is not in the roster", agent);
        return;
    }
    if (sm.step == FMQ_SA_SHARES && s->stage == SA_SHARES && !s->shared[u]) {
        for (int v = 0; v < s->n; v++) /* every other agent gets a share: a missing one would
                                           leave that agent's masks uncancelled */
            if (v != u && zero_slot(sm.data + (size_t)v * FMQ_SECAGG_CIPHER)) {
                fmq_log(FMQ_LOG_WARN,
                        "secure aggregation: %s's shares leave out %s; it takes no part in this "
                        "round",
                        agent, s->ids[v]);
                return;
            }
        memcpy(s->shares + (size_t)u * s->n * FMQ_SECAGG_CIPHER, sm.data, sm.len);
        memset(s->shares + ((size_t)u * s->n + u) * FMQ_SECAGG_CIPHER, 0, FMQ_SECAGG_CIPHER);
        s->shared[u] = 1;
    } else if (sm.step == FMQ_SA_ANSWER && s->stage == SA_UNMASK && s->masked[u] &&
               !s->answered[u]) {
        if (fmq_secagg_server_answer(&s->srv, u, sm.data) == 0) s->answered[u] = 1;
    } else
        fmq_log(FMQ_LOG_INFO, "secure aggregation: %s's %s step is out of turn (stage %s)", agent,
                fmq_secagg_step_name(sm.step), stage_names[s->stage]);
}

int coord_sa_masked(struct coord *c, const char *agent, const float *words, uint32_t dim, char *err,
                    size_t errlen)
{
    struct coord_sa *s = c->sa;
    int u = s ? roster_index(s, agent) : -1;
    if (!s || s->stage != SA_MASKED || u < 0 || !s->shared[u]) {
        snprintf(err, errlen, "a masked update outside this round's masking step (%s)",
                 s ? stage_names[s->stage] : "secure aggregation off");
        return FMQ_EINVAL;
    }
    if (s->masked[u]) {
        snprintf(err, errlen, "a second masked update");
        return FMQ_EINVAL;
    }
    if (dim != s->p.dim) {
        snprintf(err, errlen, "masked vector of %u values, the round's has %u", dim, s->p.dim);
        return FMQ_EDIM;
    }
    memcpy(s->y, words, (size_t)dim * sizeof *s->y);
    if (fmq_secagg_server_add(&s->srv, u, s->y) != 0) {
        snprintf(err, errlen, "refused by the aggregate");
        return FMQ_EINVAL;
    }
    s->masked[u] = 1;
    return 0;
}

static int all_of(const uint8_t *have, const uint8_t *among, int n)
{
    for (int u = 0; u < n; u++)
        if ((!among || among[u]) && !have[u]) return 0;
    return 1;
}

static int coord_sa_step(struct coord *c, int target, int deadline, int late);

int coord_sa_ready(struct coord *c, int target, int deadline)
{
    struct coord_sa *s = c->sa;
    /* a step's time is up; fedmq-sim's "nothing can arrive any more" (coord_expire_deadline)
     * counts once, for the step it ends */
    int late = fmq_mono() - s->stage_start >= c->cfg.secagg_timeout || c->deadline_expired;
    int stage = s->stage, rc = coord_sa_step(c, target, deadline, late);
    if (s->stage != stage) c->deadline_expired = 0;
    return rc;
}

static int coord_sa_step(struct coord *c, int target, int deadline, int late)
{
    struct coord_sa *s = c->sa;
    switch (s->stage) {
    case SA_IDLE:
        if (deadline && target > 0) {
            fail_round(c, "no agent sent keys by the deadline");
            return 1;
        }
        return 0;
    case SA_KEYS:
        if (target > FMQ_SECAGG_MAX_N) target = FMQ_SECAGG_MAX_N; /* the rest: next round */
        if ((s->n >= target || deadline) && s->n >= c->cfg.min_participants &&
            s->n >= c->cfg.secagg_min) {
            start_roster(c);
            return s->stage == SA_FAILED;
        }
        if (deadline) {
            char why[96];
            snprintf(why, sizeof why, "%d agents sent keys by the deadline, %ld needed", s->n,
                     c->cfg.secagg_min > c->cfg.min_participants ? c->cfg.secagg_min
                                                                 : c->cfg.min_participants);
            fail_round(c, why);
            return 1;
        }
        return 0;
    case SA_SHARES:
        if (all_of(s->shared, NULL, s->n) || late) start_masking(c);
        return s->stage == SA_FAILED;
    case SA_MASKED:
        if (all_of(s->masked, s->shared, s->n) || late) start_unmask(c);
        return s->stage == SA_FAILED;
    case SA_UNMASK:
        if (all_of(s->answered, s->masked, s->n) || late) finish(c);
        return s->stage == SA_DONE || s->stage == SA_FAILED;
    }
    return 1; /* done or failed: the round closes */
}

int coord_sa_result(const struct coord *c, const double **sum, int *count, const char **why)
{
    const struct coord_sa *s = c->sa;
    *why = s->stage == SA_FAILED ? s->why : "secure aggregation: the round did not finish";
    if (s->stage != SA_DONE) return FMQ_ERANGE;
    *sum = s->sum;
    *count = s->count;
    return 0;
}

void coord_sa_json(const struct coord *c, int out_of_range, char *buf, size_t cap)
{
    const struct coord_sa *s = c->sa;
    int shared = 0, masked = 0, answered = 0;
    if (!s) {
        snprintf(buf, cap, "\"secagg\":null");
        return;
    }
    for (int u = 0; u < s->n; u++)
        shared += s->shared[u], masked += s->masked[u], answered += s->answered[u];
    snprintf(buf, cap,
             "\"secagg\":{\"stage\":\"%s\",\"roster\":%d,\"threshold\":%d,\"shared\":%d,"
             "\"masked\":%d,\"answered\":%d,\"summed\":%d,\"reason\":\"%s\",\"rounds_ok\":%llu,"
             "\"rounds_failed\":%llu,\"dropped_total\":%llu,\"blamed\":%d,"
             "\"out_of_range\":%d}",
             stage_names[s->stage], s->n, s->t, shared, masked, answered,
             s->stage == SA_DONE ? s->count : 0, s->why, (unsigned long long)s->rounds_ok,
             (unsigned long long)s->rounds_failed, (unsigned long long)s->dropped, s->nblamed,
             out_of_range);
}
