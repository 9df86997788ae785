/* Fixed sample messages shared by the golden-vector generator and the wire tests, so the
 * committed vectors can be checked byte for byte against today's encoder. */
#ifndef FMQ_SAMPLE_MSGS_H
#define FMQ_SAMPLE_MSGS_H

#include <string.h>

#include "fedmq/tokenize.h"
#include "fedmq/wire.h"

static float sample_delta[4] = {0.5f, -1.25f, 3.0f, 0.0f};

static inline void sample_update(struct fmq_update *u)
{
    memset(u, 0, sizeof *u);
    strcpy(u->agent, "agent-1");
    strcpy(u->task, "iot23");
    u->base_version = 3;
    u->seq = 7;
    u->n_examples = 1000;
    u->ts = 1700000000.5;
    u->metrics = (struct fmq_local_metrics){0.25f, 0.75f, 0.5f, 200};
    u->codec = FMQ_CODEC_DENSE_F32;
    u->dim = 4;
    u->delta = sample_delta;
    u->delta_cap = 4;
}

static inline void sample_stats_update(struct fmq_update *u, struct fmq_moments *m)
{
    sample_update(u);
    fmq_moments_clear(m);
    m->n = 10;
    for (int i = 0; i < FMQ_FEAT_DIM; i++) m->mean[i] = i * 0.5, m->m2[i] = i;
    u->has_stats = 1;
    u->stats = m;
    u->codec = FMQ_CODEC_NONE;
    u->dim = 0;
}

/* mlp 80 -> 4 -> 1 with params i/1000 and normalisation set */
static inline int sample_global(struct fmq_global *g, struct fmq_model *m)
{
    struct fmq_model_config c = {FMQ_MODEL_MLP, FMQ_FEAT_DIM, 1, {4}, FMQ_FEAT_VERSION, 16};
    int rc = fmq_model_init(m, &c);
    if (rc) return rc;
    for (size_t i = 0; i < m->nparams; i++) m->params[i] = (float)i / 1000.0f;
    for (int i = 0; i < FMQ_FEAT_DIM; i++) m->norm_mean[i] = 0.1f * i, m->norm_std[i] = 1.0f + i;
    m->has_norm = 1;
    memset(g, 0, sizeof *g);
    strcpy(g->task, "iot23");
    strcpy(g->run, "r1700000000-00c0ffee");
    g->version = 4;
    g->round = 3;
    g->phase = FMQ_PHASE_TRAIN;
    strcpy(g->strategy, "fedavg");
    g->ts = 1700000100.25;
    g->model = m;
    fmq_client_plan_default(&g->client);
    return 0;
}

/* A small GIoT global model: context 2 flows (21 tokens), params i/10000 */
static inline int sample_giot_global(struct fmq_global *g, struct fmq_gpt *m)
{
    struct fmq_gpt_config c = {fmq_tok_vocab_size(), 21, 1, 2, 8, 2};
    int rc = fmq_gpt_init(m, &c);
    if (rc) return rc;
    for (size_t i = 0; i < m->nparams; i++) m->params[i] = (float)(i % 1000) / 10000.0f;
    memset(g, 0, sizeof *g);
    strcpy(g->task, "iot23");
    strcpy(g->run, "r1700000000-00c0ffee");
    g->version = 2;
    g->round = 1;
    g->phase = FMQ_PHASE_TRAIN;
    strcpy(g->strategy, "fedavg");
    g->ts = 1700000100.25;
    g->gpt = m;
    g->giot_context = 2;
    fmq_client_plan_default(&g->client);
    return 0;
}

static inline void sample_status(struct fmq_status *s)
{
    memset(s, 0, sizeof *s);
    strcpy(s->agent, "agent-1");
    strcpy(s->task, "iot23");
    strcpy(s->state, "online");
    s->model_version = 4;
    s->flows = 12345;
    s->labelled = 12000;
    s->buffered = 5000;
    s->alerts = 17;
    s->bad = 2;
    s->ts = 1700000200.0;
}

#endif
