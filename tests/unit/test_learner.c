/* The learner interface (learner.h) for both models: the coordinator's evaluation path (every
 * flow ingested, then scored by slot, judged by fmq_rule_verdict) and the agent's live path
 * (fmq_learner_observe, judged by the site's calibration) give the same scores and, while the
 * site is still learning, the same verdicts for the same model and flows; the MLP's benign
 * profile scores a flow unlike any the fleet sent as novel; a round of training goes through
 * the ops and moves the model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fedmq/connlog.h"
#include "fedmq/learner.h"
#include "fedmq/tokenize.h"
#include "test_util.h"

static struct fmq_flow *read_capture(const char *name, size_t *n)
{
    struct fmq_flow *v = NULL;
    char path[512];
    long bad = 0;
    snprintf(path, sizeof path, DATA_DIR "%s", name);
    CU_ASSERT_FATAL(fmq_connlog_read_all(path, &v, n, &bad) == 0);
    return v;
}

/* An MLP with its normalisation and benign profile from the capture itself. */
static void make_mlp(struct fmq_model *m, const struct fmq_flow *v, size_t n)
{
    struct fmq_model_config c = {FMQ_MODEL_MLP, FMQ_FEAT_DIM, 1, {16}, FMQ_FEAT_VERSION, 16};
    struct fmq_featurizer fz;
    struct fmq_moments all, ben;
    float x[FMQ_FEAT_DIM];
    CU_ASSERT_FATAL(fmq_model_init(m, &c) == 0);
    fmq_model_init_params(m, 3);
    CU_ASSERT_FATAL(fmq_feat_init(&fz, 4096, 16) == 0);
    fmq_moments_clear(&all);
    fmq_moments_clear(&ben);
    for (size_t i = 0; i < n; i++) {
        fmq_feat_extract(&fz, &v[i], x);
        fmq_moments_add(&all, x);
        if (v[i].label == FMQ_LABEL_BENIGN) fmq_moments_add(&ben, x);
    }
    fmq_feat_free(&fz);
    fmq_moments_finish(&all, m->norm_mean, m->norm_std);
    fmq_moments_finish(&ben, m->prof_mean, m->prof_std);
    m->has_norm = m->has_prof = 1;
}

/* Both paths over the same flows and model; every flow's scores must be equal, and the
 * verdicts of the flows the agent judged while learning (the fleet rule) too. */
static void same_judgement(const struct fmq_global *g, const struct fmq_flow *v, size_t n,
                           int want_channels)
{
    struct fmq_learner_cfg ac, cc;
    struct fmq_learner agent, coord;
    struct fmq_rule r;
    float *live = malloc(n * FMQ_NCH * sizeof(float)), *eval = malloc(n * FMQ_NCH * sizeof(float));
    uint32_t *slots = malloc(n * sizeof(uint32_t));
    struct fmq_verdict *lv = malloc(n * sizeof *lv);
    char err[200];
    size_t same = 0, judged = 0, learning = 0, alerts = 0;
    CU_ASSERT_FATAL(live && eval && slots && lv);
    memset(&r, 0, sizeof r);
    r.channels = want_channels;
    r.budget = 0.01f;
    fmq_learner_cfg_default(&ac);
    ac.giot_batch = 4;
    fmq_learner_cfg_default(&cc);
    cc.buffer = 1;
    cc.recent = n;
    cc.calib.window = 16;
    cc.giot_batch = 16;
    CU_ASSERT_FATAL(fmq_learner_init(&agent, g->kind, &ac) == 0);
    CU_ASSERT_FATAL(fmq_learner_init(&coord, g->kind, &cc) == 0);
    /* the coordinator first: every flow ingested, then scored by slot */
    for (size_t i = 0; i < n; i++) slots[i] = fmq_learner_ingest(&coord, &v[i]);
    CU_ASSERT_FATAL(fmq_learner_adopt(&coord, g, NULL, err, sizeof err) == 0);
    coord.ops->score(&coord, slots, n, eval);
    for (int ch = 0; ch < FMQ_NCH; ch++) { /* a rule that flags about a tenth at each cap */
        float *t = malloc(n * sizeof *t);
        CU_ASSERT_FATAL(t != NULL);
        for (size_t i = 0; i < n; i++) t[i] = eval[i * FMQ_NCH + ch];
        r.thr[ch] = fmq_quantile(t, n, 0.8);
        r.cap[ch] = fmq_quantile(t, n, 0.9); /* what a learning site applies */
        free(t);
    }
    /* the agent: the same flows live */
    CU_ASSERT_FATAL(fmq_learner_adopt(&agent, g, &r, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(agent.ops->channels(&agent), want_channels);
    for (size_t i = 0; i < n; i++) {
        fmq_learner_observe(&agent, &v[i], &lv[i]);
        memcpy(live + i * FMQ_NCH, lv[i].score, sizeof lv[i].score);
    }
    for (size_t i = 0; i < n; i++) {
        struct fmq_verdict cv;
        int eq = 1;
        for (int ch = 0; ch < FMQ_NCH; ch++) {
            float a = live[i * FMQ_NCH + ch], b = eval[i * FMQ_NCH + ch];
            eq &= (isnan(a) && isnan(b)) || fabsf(a - b) <= 1e-5f * (1 + fabsf(a));
        }
        same += eq;
        fmq_rule_verdict(&r, want_channels, agent.cal.cfg.static_sup, eval + i * FMQ_NCH, &cv);
        if (lv[i].state == FMQ_CALIB_LEARNING) {
            learning++;
            judged += cv.alert == lv[i].alert && cv.why == lv[i].why;
        }
        alerts += cv.alert;
    }
    CU_ASSERT_EQUAL(same, n);
    CU_ASSERT(learning >= 200);
    CU_ASSERT_EQUAL(judged, learning);
    CU_ASSERT(alerts > 0 && alerts < n); /* the rule separates something: the check has teeth */
    CU_ASSERT(agent.cal.state != FMQ_CALIB_LEARNING); /* and the agent went on to calibrate */
    fmq_learner_free(&agent);
    fmq_learner_free(&coord);
    free(live);
    free(eval);
    free(slots);
    free(lv);
}

static void test_mlp_paths_agree(void)
{
    size_t n;
    struct fmq_flow *v = read_capture("CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv", &n);
    struct fmq_model m;
    struct fmq_global g;
    make_mlp(&m, v, n);
    memset(&g, 0, sizeof g);
    g.kind = FMQ_MODEL_MLP;
    g.model = &m;
    g.version = 5;
    /* 44-1 spans 2 hours; its 237 flows repeated give the agent enough to calibrate on */
    {
        struct fmq_flow *w = malloc(4 * n * sizeof *w);
        CU_ASSERT_FATAL(w != NULL);
        for (size_t r = 0; r < 4; r++)
            for (size_t i = 0; i < n; i++) {
                w[r * n + i] = v[i];
                w[r * n + i].ts += (double)r * 7200;
            }
        same_judgement(&g, w, 4 * n, FMQ_CH_BIT(FMQ_CH_SUP) | FMQ_CH_BIT(FMQ_CH_NOV));
        free(w);
    }
    fmq_model_free(&m);
    free(v);
}

static void test_giot_paths_agree(void)
{
    size_t n;
    struct fmq_flow *v = read_capture("CTU-Honeypot-Capture-4-1.conn.log.labeled", &n);
    struct fmq_gpt_config c = {0, 0, 1, 2, 16, 2};
    struct fmq_gpt m;
    struct fmq_global g;
    c.vocab = fmq_tok_vocab_size();
    c.max_seq = 1 + FMQ_TOK_PER_FLOW * 2;
    CU_ASSERT_FATAL(fmq_gpt_init(&m, &c) == 0);
    fmq_gpt_init_params(&m, 5);
    memset(&g, 0, sizeof g);
    g.kind = FMQ_MODEL_GIOT;
    g.gpt = &m;
    g.giot_context = 2;
    g.version = 3;
    same_judgement(&g, v, n, FMQ_CH_BIT(FMQ_CH_SUP) | FMQ_CH_BIT(FMQ_CH_NOV));
    fmq_gpt_free(&m);
    free(v);
}

/* A flood flow of 34-1 (tcp, OTH, history 'C', no packets) is unlike what Hue 4-1's benign
 * traffic does: above the 99th percentile of 4-1's own flows under 4-1's profile (it is 82
 * nats against 70; 4-1's own rarest flows, its first ones among them, reach 100). */
static void test_mlp_novelty(void)
{
    size_t n, n34;
    struct fmq_flow *v = read_capture("CTU-Honeypot-Capture-4-1.conn.log.labeled", &n);
    struct fmq_flow *w = read_capture("CTU-IoT-Malware-Capture-34-1.conn.log.labeled", &n34);
    struct fmq_model m;
    struct fmq_featurizer fz;
    float x[FMQ_FEAT_DIM], *own = malloc(n * sizeof(float)), q, flood = NAN, c[FMQ_FEAT_DIM];
    int top = -1;
    make_mlp(&m, v, n);
    CU_ASSERT_FATAL(fmq_feat_init(&fz, 4096, 16) == 0);
    for (size_t i = 0; i < n; i++) {
        fmq_feat_extract(&fz, &v[i], x);
        own[i] = fmq_model_novelty(&m, x, NULL);
    }
    q = fmq_quantile(own, n, 0.99);
    for (size_t i = 0; i < n34 && isnan(flood); i++)
        if (!strcmp(w[i].conn_state, "OTH") && !strcmp(w[i].history, "C")) {
            fmq_feat_extract(&fz, &w[i], x);
            flood = fmq_model_novelty(&m, x, c);
        }
    CU_ASSERT(flood > q);
    for (int k = 0; k < FMQ_FEAT_DIM; k++) /* each feature says "rare" at most so loud */
        CU_ASSERT(c[k] <= (float)FMQ_NOVELTY_MAX + 1e-4f);
    for (int k = 0; k < FMQ_FEAT_DIM; k++)
        if (top < 0 || c[k] > c[top]) top = k;
    CU_ASSERT(top >= 0 && c[top] > 5.0f);
    fmq_feat_free(&fz);
    fmq_model_free(&m);
    free(own);
    free(v);
    free(w);
}

/* A synchronous round through the ops: the split, the benign moments, training that changes
 * the local model and not the global one, and validation of both. */
static void test_mlp_round(void)
{
    size_t n, ntrain, np;
    struct fmq_flow *v = read_capture("CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv", &n);
    struct fmq_model m;
    struct fmq_global g;
    struct fmq_learner_cfg lc;
    struct fmq_learner l;
    struct fmq_client_plan plan;
    struct fmq_moments all, ben;
    struct fmq_local_metrics gm, lm;
    struct fmq_sketch sk;
    char err[200];
    float loss = NAN, *before;
    size_t benign = 0;
    int batch;
    make_mlp(&m, v, n);
    memset(&g, 0, sizeof g);
    g.kind = FMQ_MODEL_MLP;
    g.model = &m;
    fmq_learner_cfg_default(&lc);
    CU_ASSERT_FATAL(fmq_learner_init(&l, FMQ_MODEL_MLP, &lc) == 0);
    for (size_t i = 0; i < n; i++) fmq_learner_ingest(&l, &v[i]);
    CU_ASSERT_FATAL(fmq_learner_adopt(&l, &g, NULL, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(l.ops->held(&l), n);
    CU_ASSERT_EQUAL(l.ops->stats(&l, &all, &ben, &ntrain), 0);
    for (size_t i = 0; i < ntrain; i++) benign += v[i].label == FMQ_LABEL_BENIGN;
    CU_ASSERT_EQUAL((size_t)all.n, ntrain);
    CU_ASSERT_EQUAL((size_t)ben.n, benign);
    fmq_client_plan_default(&plan);
    CU_ASSERT_EQUAL_FATAL(l.ops->train_begin(&l, &plan, &ntrain), 0);
    CU_ASSERT_EQUAL(ntrain, n - (size_t)floor(0.2 * (double)n));
    CU_ASSERT(l.ops->round_steps(&l, &batch) > 0 && batch == lc.train.batch);
    fmq_learner_validate(&l, 0, &gm, &sk);
    before = malloc(m.nparams * sizeof(float));
    memcpy(before, l.ops->params(&l, 0, &np), m.nparams * sizeof(float));
    CU_ASSERT_EQUAL(l.ops->train_steps(&l, 0, &loss), 0);
    CU_ASSERT(isfinite(loss));
    CU_ASSERT(memcmp(before, l.ops->params(&l, 0, &np), np * sizeof(float)) == 0);
    CU_ASSERT(memcmp(before, l.ops->params(&l, 1, &np), np * sizeof(float)) != 0);
    fmq_learner_validate(&l, 1, &lm, NULL);
    CU_ASSERT_EQUAL(lm.n_val, (uint64_t)floor(0.2 * (double)n));
    CU_ASSERT(sk.n > 0 && (sk.channels & FMQ_CH_BIT(FMQ_CH_NOV)) && fmq_sketch_check(&sk) == 0);
    free(before);
    fmq_learner_free(&l);
    fmq_model_free(&m);
    free(v);
}

int init_learner_tests(void)
{
    static const struct fmq_test t[] = {
        {"mlp: coordinator and agent judge alike", test_mlp_paths_agree},
        {"giot: coordinator and agent judge alike", test_giot_paths_agree},
        {"mlp: benign profile novelty", test_mlp_novelty},
        {"mlp: a round through the ops", test_mlp_round},
        {NULL, NULL}};
    return fmq_add_suite("learner", t);
}
