#include <stdlib.h>
#include <stdio.h>
/* GSFS: the triggers on crafted gradient-norm and metric sequences (EWMA values checked by
 * hand), the pool's quorum, frequency weighting across aggregations, duplicate and stale
 * handling, and informativeness sensing. */
#include <math.h>
#include <string.h>

#include "fedmq/gsfs.h"
#include "test_util.h"

static void test_norm_trigger(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_trigger t;
    double g[2] = {1.0, 1.0};
    int fired = 0;
    fmq_gsfs_params_default(&p);
    fmq_gsfs_trigger_init(&t, 2);
    fmq_gsfs_trigger_reference(&t, 0.5);
    /* first check: mu = 0.1 * 1 = 0.1; sigma = 0.1 * |1 - 0.1| = 0.09 (paper order: mu first) */
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.5), FMQ_GSFS_NONE); /* warmup */
    CU_ASSERT_DOUBLE_EQUAL(t.mu[0], 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(t.sigma[0], 0.09, 1e-12);
    /* a steady norm: the EWMA climbs towards 1 from below, so early checks exceed mu + 2 sigma;
     * warmup hides them, and once mu has caught up nothing fires */
    for (int i = 0; i < 60; i++) fired |= fmq_gsfs_trigger_check(&t, &p, g, 0.5);
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.5), FMQ_GSFS_NONE);
    /* a spike in layer 1 only fires the norm trigger */
    g[1] = 5.0;
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.5), FMQ_GSFS_NORM);
    /* a small bump below mu + beta sigma does not */
    g[1] = 1.0;
    for (int i = 0; i < 80; i++) fmq_gsfs_trigger_check(&t, &p, g, 0.5);
    g[0] = 1.0 + 1e-6;
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.5), FMQ_GSFS_NONE);
}

static void test_warmup_suppresses(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_trigger t;
    double g[1] = {3.0};
    fmq_gsfs_params_default(&p);
    p.warmup = 3;
    fmq_gsfs_trigger_init(&t, 1);
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0), 0);
    g[0] = 30.0;
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0), FMQ_GSFS_NORM);
}

static void test_perf_trigger(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_trigger t;
    double g[1] = {0};
    fmq_gsfs_params_default(&p); /* delta_perf 0.005 */
    fmq_gsfs_trigger_init(&t, 1);
    fmq_gsfs_trigger_reference(&t, 0.900);
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.904), FMQ_GSFS_NONE);
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.906), FMQ_GSFS_PERF);
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.894), FMQ_GSFS_PERF); /* both ways */
    fmq_gsfs_trigger_reference(&t, 0.906);
    CU_ASSERT_EQUAL(fmq_gsfs_trigger_check(&t, &p, g, 0.906), FMQ_GSFS_NONE);
}

static void test_quorum(void)
{
    struct fmq_gsfs_params p;
    fmq_gsfs_params_default(&p);
    CU_ASSERT_EQUAL(fmq_gsfs_quorum(&p, 7), 5);
    CU_ASSERT_EQUAL(fmq_gsfs_quorum(&p, 5), 3);
    CU_ASSERT_EQUAL(fmq_gsfs_quorum(&p, 10), 6);
    CU_ASSERT_EQUAL(fmq_gsfs_quorum(&p, 1), 1);
    CU_ASSERT_EQUAL(fmq_gsfs_quorum(&p, 0), 1);
    {
        struct fmq_gsfs_pool g;
        const float d[1] = {1};
        CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 1, 4) == 0);
        CU_ASSERT(fmq_gsfs_pool_add(&g, "a", 1, 1, 30, d) == 0);
        CU_ASSERT(fmq_gsfs_pool_add(&g, "b", 1, 1, 12, d) == 0);
        CU_ASSERT(fmq_gsfs_pool_add(&g, "a", 1, 1, 40, d) == 0); /* supersedes: 40, not 70 */
        CU_ASSERT_EQUAL(fmq_gsfs_pool_examples(&g), 52);
        fmq_gsfs_pool_free(&g);
    }
}

static void test_frequency_weights(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    const float a[2] = {1, 0}, b[2] = {0, 1}, a2[2] = {2, 0};
    double out[2];
    fmq_gsfs_params_default(&p);
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 2, 8) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 1, 1, 10, a) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "B", 1, 1, 10, b) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_pool_distinct(&g), 2);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 2);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 0.5, 1e-12); /* equal frequency: equal weight */
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0.5, 1e-12);
    CU_ASSERT_EQUAL(fmq_gsfs_pool_distinct(&g), 0);
    /* frequencies decay to 0.9 each; A submits twice (the second supersedes the first), B once:
     * A 2.9, B 1.9 */
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 2, 2, 10, a) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 2, 2, 10, a2) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "B", 2, 2, 10, b) == 0);
    CU_ASSERT_EQUAL(g.superseded, 1);
    CU_ASSERT_EQUAL(fmq_gsfs_pool_distinct(&g), 2);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 2, out), 2);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2.0 * 2.9 / 4.8, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 1.9 / 4.8, 1e-12);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 2, out), FMQ_EINVAL); /* empty */
    /* frequency x examples: after another decay A 2.61, B 1.71; A 10 examples, B 30 */
    g.p.weight_examples = 1;
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 3, 3, 10, a) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "B", 3, 3, 30, b) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 3, out), 2);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 3.61 * 10 / (3.61 * 10 + 2.71 * 30), 1e-9);
    fmq_gsfs_pool_free(&g);
}

/* One liar claiming 2^40 examples among honest agents: frequency-examples weights it as
 * count_cap (5) x the pool's median count at most, in the weights and in the memory; with the
 * cap off it would be the whole aggregate (the check that this test can fail). */
static void test_count_cap(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    const float honest[1] = {1}, liar[1] = {-1};
    float theta[1] = {0};
    char id[8];
    double out[1];
    fmq_gsfs_params_default(&p);
    p.weight_examples = 1;
    p.informativeness = 0; /* the weights alone: no cosine or norm sensing */
    p.fair_share = 0;
    for (int pass = 0; pass < 3; pass++) { /* cap 5, cap 5 with memory, cap off */
        p.memory = pass == 1;
        p.count_cap = pass == 2 ? 0 : 5;
        CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 1, 16) == 0);
        g.theta = theta;
        for (int i = 0; i < 9; i++) {
            snprintf(id, sizeof id, "h%d", i);
            CU_ASSERT(fmq_gsfs_pool_add(&g, id, 1, 1, 100, honest) == 0);
        }
        CU_ASSERT(fmq_gsfs_pool_add(&g, "liar", 1, 1, 1ull << 40, liar) == 0);
        CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 10);
        if (pass < 2) { /* 9 x 100 for +1, the cap 500 for -1 */
            CU_ASSERT_DOUBLE_EQUAL(out[0], (900.0 - 500.0) / 1400.0, 1e-9);
            CU_ASSERT_EQUAL(g.last_capped, 1);
        } else {
            CU_ASSERT(out[0] < -0.99);
            CU_ASSERT_EQUAL(g.last_capped, 0);
        }
        fmq_gsfs_pool_free(&g);
    }
    /* memory: a liar alone in a pool sets its own cap there, but its remembered count is one
     * vote among the fleet's remembered counts: 9 honest memories of 100 and the liar's at
     * 500 after its lone round, not 2^40 */
    p.memory = 1;
    p.count_cap = 5;
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 1, 16) == 0);
    g.theta = theta;
    for (int i = 0; i < 9; i++) {
        snprintf(id, sizeof id, "h%d", i);
        CU_ASSERT(fmq_gsfs_pool_add(&g, id, 1, 1, 100, honest) == 0);
    }
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 9);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "liar", 2, 2, 1ull << 40, liar) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 2, out), 1);
    CU_ASSERT_DOUBLE_EQUAL(out[0], (900.0 - 500.0) / 1400.0, 1e-9);
    fmq_gsfs_pool_free(&g);
    /* a pool of two: the lower median is the honest count, not half the liar's */
    p.memory = 0;
    p.count_cap = 5;
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 1, 4) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "h", 1, 1, 100, honest) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "liar", 1, 1, 1ull << 40, liar) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 2);
    CU_ASSERT_DOUBLE_EQUAL(out[0], (100.0 - 500.0) / 600.0, 1e-9);
    fmq_gsfs_pool_free(&g);
}

static void test_staleness(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    const float a[1] = {1}, b[1] = {-1};
    double out[1];
    fmq_gsfs_params_default(&p); /* max_staleness 2, FedBuff weighting on */
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 1, 4) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_pool_add(&g, "A", 7, 10, 1, a), FMQ_ESTALE);
    CU_ASSERT_EQUAL(fmq_gsfs_pool_add(&g, "A", 11, 10, 1, a), FMQ_ESTALE);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 10, 10, 1, a) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "B", 9, 10, 1, b) == 0); /* 1 behind: weight 1/(1+1) */
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 10, out), 2);
    CU_ASSERT_DOUBLE_EQUAL(out[0], (1.0 - 0.5) / 1.5, 1e-12);
    /* with the weighting off a stale update counts for nothing */
    g.p.staleness_weight = 0;
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 10, 10, 1, a) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "B", 9, 10, 1, b) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 10, out), 1);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 1.0, 1e-12);
    fmq_gsfs_pool_free(&g);
}

/* Memory: the global model moves to the example-weighted mean of every agent's latest local
 * model, so an agent missing from the pool keeps its say until it is forgotten. */
static void test_memory(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    const float a1[1] = {1}, b1[1] = {2}, a2[1] = {0.5f}, zero[1] = {0};
    float theta[1] = {0};
    double out[1];
    fmq_gsfs_params_default(&p);
    p.memory = 1;
    p.freq_window = 2;
    p.fair_share = 0; /* A alone in every pool would otherwise sit out */
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 1, 4) == 0);
    g.theta = theta;
    /* A (1 example) and B (3) from theta 0: local models 1 and 2, mean (1 + 6) / 4 */
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 1, 1, 1, a1) == 0);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "B", 1, 1, 3, b1) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 2);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 7.0 / 4, 1e-12);
    theta[0] = 1.75f;
    /* only A, +0.5 from 1.75: its local model 2.25; B's 2 still counts: (2.25 + 6) / 4 - 1.75
     * (without memory the change would be A's 0.5 alone) */
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 2, 2, 1, a2) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 2, out), 1);
    CU_ASSERT_DOUBLE_EQUAL(out[0], (2.25 + 6.0) / 4 - 1.75, 1e-6);
    theta[0] = 2.0625f;
    /* A alone twice more: B's memory, unrefreshed for more than freq_window (2) aggregations,
     * is forgotten at the second */
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 3, 3, 1, zero) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 3, out), 1);
    CU_ASSERT_DOUBLE_EQUAL(out[0], (2.0625 + 6.0) / 4 - 2.0625, 1e-6);
    CU_ASSERT(fmq_gsfs_pool_add(&g, "A", 4, 4, 1, zero) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 4, out), 1);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 0, 1e-9);
    fmq_gsfs_pool_free(&g);
}

static void test_informativeness(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    float d[6][3] = {{1, 1, 0},         {1.1f, 0.9f, 0}, {0.9f, 1.1f, 0.1f},
                     {1, 1.05f, -0.1f}, {-1, -1, 0},     {10, 10, 0}};
    const char *ids[6] = {"a", "b", "c", "d", "flip", "big"};
    double out[3];
    fmq_gsfs_params_default(&p);
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 3, 8) == 0);
    for (int i = 0; i < 6; i++) CU_ASSERT(fmq_gsfs_pool_add(&g, ids[i], 1, 1, 1, d[i]) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 5);
    for (int i = 0; i < 8; i++) {
        if (!strcmp(g.e[i].agent, "flip")) CU_ASSERT(g.e[i].dropped && g.e[i].weight == 0);
        if (!strcmp(g.e[i].agent, "big")) CU_ASSERT(g.e[i].clipped);
        if (!strcmp(g.e[i].agent, "a")) CU_ASSERT(!g.e[i].dropped && !g.e[i].clipped);
    }
    /* the aggregate points the way the honest majority does */
    CU_ASSERT(out[0] > 0.5 && out[1] > 0.5);
    /* switched off: the flipped update is averaged in */
    g.p.informativeness = 0;
    for (int i = 0; i < 6; i++) fmq_gsfs_pool_add(&g, ids[i], 1, 1, 1, d[i]);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 6);
    fmq_gsfs_pool_free(&g);
}

/* One sign-flipped update of 4.9x the honest norm, inside the 5x outlier bound, among five
 * honest ones: the cosine reference is a vote of directions at the median norm, so the honest
 * updates stay and the flipped one goes. Had the reference been the plain mean of the others,
 * the flipped update would outweigh four honest ones in it, every honest update would point
 * against it and be dropped, and (the flipped one dropped as well) the aggregation would fail. */
static void test_reference_not_turned(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    float d[6][2] = {{1, 0.1f}, {1.1f, 0}, {0.9f, -0.1f}, {1, 0.05f}, {1.05f, -0.05f}, {-4.9f, 0}};
    const char *ids[6] = {"a", "b", "c", "d", "e", "flip"};
    double out[2];
    fmq_gsfs_params_default(&p);
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 2, 8) == 0);
    for (int i = 0; i < 6; i++) CU_ASSERT(fmq_gsfs_pool_add(&g, ids[i], 1, 1, 10, d[i]) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, out), 5);
    for (int i = 0; i < g.cap; i++)
        if (g.e[i].agent[0]) CU_ASSERT_EQUAL(g.e[i].dropped, !strcmp(g.e[i].agent, "flip"));
    CU_ASSERT(out[0] > 0.9 && out[0] < 1.1);
    fmq_gsfs_pool_free(&g);
}

/* The coordinator's robust rule over the pool: krum-filter leaves out an update far from the
 * others that GSFS's own sensing keeps (same direction, within the outlier bound), and that
 * entry counts as dropped; without the rule it is averaged in (so the test can fail). */
static void test_robust_rule(void)
{
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    struct fmq_robust r;
    float d[6][2] = {{1, 0.1f}, {1.1f, 0}, {0.9f, -0.1f}, {1, 0.05f}, {1.05f, -0.05f}, {4, 1}};
    const char *ids[6] = {"a", "b", "c", "d", "e", "far"};
    double out[2], plain[2];
    fmq_gsfs_params_default(&p);
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, 2, 8) == 0);
    CU_ASSERT_FATAL(fmq_robust_init(&r, FMQ_ROBUST_KRUM_FILTER, 2) == 0);
    for (int i = 0; i < 6; i++) CU_ASSERT(fmq_gsfs_pool_add(&g, ids[i], 1, 1, 10, d[i]) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 1, plain), 6);
    g.robust = &r;
    for (int i = 0; i < 6; i++) CU_ASSERT(fmq_gsfs_pool_add(&g, ids[i], 2, 2, 10, d[i]) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 2, out), 5);
    for (int i = 0; i < g.cap; i++)
        if (g.e[i].agent[0]) CU_ASSERT_EQUAL(g.e[i].dropped, !strcmp(g.e[i].agent, "far"));
    CU_ASSERT(plain[0] > 1.4);                         /* the far update moves the plain mean */
    CU_ASSERT(out[0] > 0.95 && out[0] < 1.05);         /* the rule's aggregate is the honest mean */
    CU_ASSERT(r.count_cap == 5.0 || r.count_cap == 0); /* restored as it was */
    CU_ASSERT_EQUAL(g.last_robust, 1);
    /* a pool of four: too few for the rule, the weighted mean with the far update in */
    for (int i = 2; i < 6; i++) CU_ASSERT(fmq_gsfs_pool_add(&g, ids[i], 3, 3, 10, d[i]) == 0);
    CU_ASSERT_EQUAL(fmq_gsfs_aggregate(&g, 3, out), 4);
    CU_ASSERT_EQUAL(g.last_robust, 0);
    CU_ASSERT(out[0] > 1.4);
    fmq_robust_free(&r);
    fmq_gsfs_pool_free(&g);
}

/* Selection gaming over 100 aggregations: 2 of 10 agents upload at every chance with 20x
 * inflated updates, the 8 honest ones when their trigger fires (half the time). With the
 * defences on, the attackers are used at most 1.5x their share of the fleet and hold at most
 * 1.5x its share of the weight; with fair_share off, they are used far more often (so the test
 * can fail). */
static double gaming_share(double fair_share, double *weight_share)
{
    enum { N = 10, A = 2, D = 8 };
    struct fmq_gsfs_params p;
    struct fmq_gsfs_pool g;
    struct fmq_rng r;
    double picks_a = 0, picks = 0, w_a = 0, w = 0;
    float d[D];
    char id[16];
    fmq_gsfs_params_default(&p);
    p.fair_share = fair_share;
    CU_ASSERT_FATAL(fmq_gsfs_pool_init(&g, &p, D, 64) == 0);
    fmq_rng_seed(&r, 9, 9);
    for (int round = 0; round < 100; round++) {
        double out[D];
        for (int k = 0; k < N; k++) {
            int attacker = k < A;
            if (!attacker && fmq_rng_u32(&r) % 2) continue;
            for (int i = 0; i < D; i++)
                d[i] = (float)((1.0 + 0.1 * fmq_rng_normal(&r)) * (attacker ? 20.0 : 1.0));
            snprintf(id, sizeof id, "agent-%d", k);
            CU_ASSERT(fmq_gsfs_pool_add(&g, id, 1, 1, 100, d) == 0);
        }
        CU_ASSERT(fmq_gsfs_aggregate(&g, 1, out) > 0);
        for (int j = 0; j < g.cap; j++) {
            if (!g.e[j].agent[0] || g.e[j].weight <= 0) continue;
            picks += 1, w += g.e[j].weight;
            if (strcmp(g.e[j].agent, "agent-0") == 0 || strcmp(g.e[j].agent, "agent-1") == 0)
                picks_a += 1, w_a += g.e[j].weight;
        }
        for (int j = 0; j < g.cap; j++) g.e[j].agent[0] = 0, g.e[j].weight = 0;
    }
    fmq_gsfs_pool_free(&g);
    *weight_share = w_a / w;
    return picks_a / picks;
}

static void test_selection_gaming(void)
{
    double ws, ws_off, share = gaming_share(1.5, &ws), off = gaming_share(0, &ws_off);
    if (getenv("FMQ_TEST_VERBOSE"))
        fprintf(stderr,
                "\n  gaming: attackers (20%% of agents) picked %.3f, weight %.3f; "
                "without fair share picked %.3f, weight %.3f\n",
                share, ws, off, ws_off);
    CU_ASSERT(share <= 1.5 * 0.2);
    CU_ASSERT(ws <= 1.5 * 0.2);
    CU_ASSERT(off > 1.5 * 0.2); /* the gaming is real without the defence */
}

int init_gsfs_tests(void)
{
    static const struct fmq_test t[] = {{"norm trigger", test_norm_trigger},
                                        {"warmup suppresses", test_warmup_suppresses},
                                        {"performance trigger", test_perf_trigger},
                                        {"quorum", test_quorum},
                                        {"frequency weights", test_frequency_weights},
                                        {"claimed counts capped", test_count_cap},
                                        {"staleness", test_staleness},
                                        {"memory of absent agents", test_memory},
                                        {"informativeness", test_informativeness},
                                        {"selection gaming", test_selection_gaming},
                                        {"reference not turned", test_reference_not_turned},
                                        {"robust rule over the pool", test_robust_rule},
                                        {NULL, NULL}};
    return fmq_add_suite("gsfs", t);
}
