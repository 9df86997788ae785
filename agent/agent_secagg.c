/* Secure aggregation, the agent's side (the global model's client.secagg; the protocol and its
 * reference are in core/include/fedmq/secagg.h, the coordinator's stages in
 * coordinator/coord_secagg.c). For the round of the model in use the agent holds one vector
 * (its clipped model change, or its statistics as fmq_stats_to_secure makes them) and never
 * sends it in the clear:
 *   begin     new key pairs; the public keys go to <root>/<task>/secagg/<agent>;
 *   roster    (on secagg-to/<agent>) its index and the round's parameters: its Shamir shares
 *             of the self-mask seed and the mask key go out, encrypted to each agent;
 *   inbox     the shares addressed to it: the masked vector goes out as an update (codec
 *             masked-u32, with the usual receipts and resends);
 *   survivors which masked vectors arrived: it answers with its shares of the survivors'
 *             self-mask seeds and the dropped agents' mask keys, never both of one agent.
 * A message for another round is ignored; a new model ends the session. Test mode
 * (secagg_drop): the agent goes silent after a step, as a device that drops out would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "fedmq/dp.h"
#include "fedmq/secagg.h"

enum { SA_NONE, SA_KEYS, SA_SHARES, SA_MASKED, SA_ANSWERED };

struct agent_sa {
    int stage;
    uint64_t version;
    int phase;
    char run[FMQ_ID_MAX];
    struct fmq_secagg_client cl;
    int have_cl;
    float *x; /* the vector to mask, dim */
    uint32_t dim, cap;
    uint32_t *y;    /* masked, dim */
    uint8_t *words; /* y as little-endian bytes */
    uint8_t *buf;   /* shares out, or answers */
    size_t ntrain;
    struct fmq_local_metrics lm;
    int has_lm;
    struct fmq_buf out, data;
};

static void sa_end(struct agent_sa *s)
{
    if (s->have_cl) fmq_secagg_client_free(&s->cl);
    s->have_cl = 0;
    s->stage = SA_NONE;
}

void agent_sa_free(struct agent *a)
{
    struct agent_sa *s = a->sa;
    if (!s) return;
    sa_end(s);
    free(s->x);
    free(s->y);
    free(s->words);
    free(s->buf);
    fmq_buf_free(&s->out);
    fmq_buf_free(&s->data);
    free(s);
    a->sa = NULL;
}

static int sized(struct agent_sa *s, uint32_t dim)
{
    if (dim <= s->cap) return 0;
    free(s->x), free(s->y), free(s->words);
    s->x = NULL, s->y = NULL, s->words = NULL;
    s->cap = 0;
    if (!(s->x = malloc((size_t)dim * sizeof *s->x)) ||
        !(s->y = malloc((size_t)dim * sizeof *s->y)) || !(s->words = malloc((size_t)dim * 4)))
        return FMQ_ENOMEM;
    s->cap = dim;
    return 0;
}

static void header(const struct agent *a, struct fmq_secagg_msg *m, int step)
{
    memset(m, 0, sizeof *m);
    m->step = step;
    snprintf(m->run, sizeof m->run, "%s", a->sa->run);
    m->version = a->sa->version;
    m->phase = a->sa->phase;
}

static int send_up(struct agent *a, const struct fmq_secagg_msg *m)
{
    struct agent_sa *s = a->sa;
    int rc;
    if ((rc = fmq_wire_encode_secagg(m, &s->out)) != 0 ||
        (rc = fmq_mq_publish(a->mq, a->t_secagg, s->out.data, s->out.len, 1, 0)) != 0)
        return rc;
    a->bytes_sent += s->out.len;
    return 0;
}

int agent_sa_begin(struct agent *a, const float *x, uint32_t dim, size_t ntrain,
                   const struct fmq_local_metrics *lm)
{
    struct agent_sa *s = a->sa;
    struct fmq_secagg_msg m;
    uint8_t pub[2 * FMQ_SECAGG_KEY];
    int rc;
    if (!s && !(s = a->sa = calloc(1, sizeof *s))) return FMQ_ENOMEM;
    sa_end(s);
    if ((rc = sized(s, dim)) != 0) return rc;
    memcpy(s->x, x, (size_t)dim * sizeof *x);
    s->dim = dim;
    s->ntrain = ntrain;
    s->has_lm = lm != NULL;
    if (lm) s->lm = *lm;
    s->version = a->version;
    s->phase = a->phase;
    snprintf(s->run, sizeof s->run, "%s", a->run);
    if ((rc = fmq_secagg_client_keys(&s->cl, pub)) != 0) goto fail;
    s->have_cl = 1;
    header(a, &m, FMQ_SA_KEYS);
    m.data = pub;
    m.len = sizeof pub;
    if ((rc = send_up(a, &m)) != 0) goto fail;
    s->stage = SA_KEYS;
    fmq_log(FMQ_LOG_INFO, "secure aggregation v%llu: keys sent for %u %s values",
            (unsigned long long)s->version, dim,
            s->phase == FMQ_PHASE_STATS ? "statistics" : "update");
    return 0;
fail:
    fmq_log(FMQ_LOG_ERROR, "secure aggregation v%llu: cannot start (%s); nothing sent",
            (unsigned long long)a->version, fmq_strerror(rc));
    sa_end(s);
    return rc;
}

static int dropped_after(const struct agent *a, int stage)
{
    return a->cfg.secagg_drop == stage;
}

static void on_roster(struct agent *a, const struct fmq_secagg_msg *m)
{
    struct agent_sa *s = a->sa;
    struct fmq_secagg_params p;
    struct fmq_secagg_msg r;
    int rc = FMQ_ENOMEM;
    if (s->stage != SA_KEYS || dropped_after(a, AGENT_SA_DROP_KEYS)) return;
    if (m->dim != s->dim) {
        fmq_log(FMQ_LOG_WARN, "secure aggregation: the roster asks for %u values, we hold %u",
                m->dim, s->dim);
        sa_end(s);
        return;
    }
    memset(&p, 0, sizeof p);
    p.n = m->n, p.t = m->t, p.dim = m->dim, p.frac_bits = m->frac_bits, p.clip = m->clip;
    fmq_secagg_round_id(s->run, s->version, s->phase, p.round_id);
    if (m->l2 > 0) fmq_dp_clip(s->x, s->dim, m->l2); /* DP-FedAvg's bound, before the masks */
    free(s->buf);
    if (!(s->buf = malloc((size_t)m->n * FMQ_SECAGG_CIPHER)) ||
        (rc = fmq_secagg_client_join(&s->cl, &p, m->idx)) != 0 ||
        (rc = fmq_secagg_client_share(&s->cl, m->data, s->buf)) != 0) {
        fmq_log(FMQ_LOG_WARN, "secure aggregation v%llu: cannot take part (%s)",
                (unsigned long long)s->version, s->buf ? fmq_strerror(rc) : "out of memory");
        sa_end(s);
        return;
    }
    if (a->cfg.attack == AGENT_ATTACK_SECAGG_FORGE) /* test mode: shares nobody can open */
        for (int v = 0; v < m->n; v++) s->buf[(size_t)v * FMQ_SECAGG_CIPHER + 5] ^= 0x5a;
    header(a, &r, FMQ_SA_SHARES);
    r.data = s->buf;
    r.len = (size_t)m->n * FMQ_SECAGG_CIPHER;
    if (send_up(a, &r) == 0) s->stage = SA_SHARES;
}

static void on_inbox(struct agent *a, const struct fmq_secagg_msg *m)
{
    struct agent_sa *s = a->sa;
    int rc;
    if (s->stage != SA_SHARES || dropped_after(a, AGENT_SA_DROP_SHARES) ||
        a->cfg.attack == AGENT_ATTACK_SECAGG_FORGE)
        return;
    if ((rc = fmq_secagg_client_mask(&s->cl, m->data, s->x, s->y)) != 0) {
        fmq_log(FMQ_LOG_WARN, "secure aggregation v%llu: cannot mask (%s)",
                (unsigned long long)s->version, fmq_strerror(rc));
        sa_end(s);
        return;
    }
    if (s->cl.bad)
        fmq_log(FMQ_LOG_WARN,
                "secure aggregation v%llu: %d shares addressed to us did not decrypt (forged?); "
                "masking goes on",
                (unsigned long long)s->version, s->cl.bad);
    for (uint32_t i = 0; i < s->dim; i++) {
        uint32_t w = s->y[i];
        s->words[4 * i] = (uint8_t)w, s->words[4 * i + 1] = (uint8_t)(w >> 8);
        s->words[4 * i + 2] = (uint8_t)(w >> 16), s->words[4 * i + 3] = (uint8_t)(w >> 24);
    }
    if (agent_send_masked(a, s->words, s->dim, s->ntrain, s->has_lm ? &s->lm : NULL) == 0)
        s->stage = SA_MASKED;
}

static void on_survivors(struct agent *a, const struct fmq_secagg_msg *m)
{
    struct agent_sa *s = a->sa;
    struct fmq_secagg_msg r;
    int n = s->cl.p.n;
    if (s->stage != SA_MASKED || dropped_after(a, AGENT_SA_DROP_MASKED)) return;
    free(s->buf);
    if (!(s->buf = malloc((size_t)n * FMQ_SECAGG_ANSWER)) ||
        fmq_secagg_client_unmask(&s->cl, m->data, s->buf) != 0) {
        sa_end(s);
        return;
    }
    header(a, &r, FMQ_SA_ANSWER);
    r.data = s->buf;
    r.len = (size_t)n * FMQ_SECAGG_ANSWER;
    if (send_up(a, &r) == 0) {
        fmq_log(FMQ_LOG_INFO, "secure aggregation v%llu: answered for %d agents",
                (unsigned long long)s->version, n);
        sa_end(s); /* nothing more of this round: the keys go */
        s->stage = SA_ANSWERED;
    }
}

void agent_sa_on_msg(struct agent *a, const struct fmq_mq_msg *m)
{
    struct agent_sa *s = a->sa;
    struct fmq_secagg_msg sm;
    char err[256];
    if (!s || s->stage == SA_NONE || s->stage == SA_ANSWERED) return;
    if (s->version != a->version) { /* a new model: that round is over for us */
        sa_end(s);
        return;
    }
    if (fmq_wire_decode_secagg(&a->dec, m->payload, m->len,
                               s->have_cl && s->cl.pubs ? s->cl.p.n : 0, &sm, &s->data, err,
                               sizeof err) != 0) {
        a->bad++;
        fmq_log(FMQ_LOG_WARN, "dropped a secure aggregation message on %s: %s", m->topic, err);
        return;
    }
    if (strcmp(sm.run, s->run) || sm.version != s->version || sm.phase != s->phase) return;
    if (sm.step == FMQ_SA_ROSTER)
        on_roster(a, &sm);
    else if (sm.step == FMQ_SA_INBOX)
        on_inbox(a, &sm);
    else if (sm.step == FMQ_SA_SURVIVORS)
        on_survivors(a, &sm);
}
