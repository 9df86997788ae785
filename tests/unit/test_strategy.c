/* FedAvg, the server optimizers, sensing, robust rules and the DP accountant against
 * hand-computed values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fedmq/dp.h"
#include "fedmq/robust.h"
#include "fedmq/strategy.h"
#include "fedmq/sensing.h"
#include "fedmq/common.h"
#include "test_util.h"

static void test_fedavg_weighted(void)
{
    struct fmq_fedavg s;
    float params[3] = {1.0f, 2.0f, 3.0f};
    const float d1[3] = {1.0f, 0.0f, -1.0f}, d2[3] = {-1.0f, 4.0f, 2.0f};
    CU_ASSERT_FATAL(fmq_fedavg_init(&s, 3) == 0);
    CU_ASSERT_EQUAL(fmq_fedavg_apply(&s, params, 1.0f), FMQ_EINVAL);
    CU_ASSERT(fmq_fedavg_add(&s, d1, 100) == 0);
    CU_ASSERT(fmq_fedavg_add(&s, d2, 300) == 0);
    /* (100*d1 + 300*d2) / 400 = (-0.5, 3, 1.25) */
    CU_ASSERT(fmq_fedavg_apply(&s, params, 1.0f) == 0);
    CU_ASSERT_DOUBLE_EQUAL(params[0], 0.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(params[1], 5.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(params[2], 4.25, 1e-6);
    /* server learning rate scales the step */
    fmq_fedavg_reset(&s);
    CU_ASSERT(fmq_fedavg_add(&s, d1, 1) == 0);
    CU_ASSERT(fmq_fedavg_apply(&s, params, 0.5f) == 0);
    CU_ASSERT_DOUBLE_EQUAL(params[0], 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(params[2], 3.75, 1e-6);
    CU_ASSERT_EQUAL(fmq_fedavg_add(&s, d1, 0), FMQ_EINVAL);
    CU_ASSERT_EQUAL(fmq_fedavg_add(&s, d1, -2), FMQ_EINVAL);
    fmq_fedavg_free(&s);
}

/* Two aggregations, Delta1 = (0.1, -0.2), Delta2 = (0.3, 0), from theta = (1, 2). Expected values
 * from the update rules in strategy.h, computed independently (Python, double precision). */
static void two_steps(int kind, struct fmq_strategy_params *p, double e0, double e1)
{
    struct fmq_server_opt o;
    float theta[2] = {1.0f, 2.0f};
    const double d1[2] = {0.1, -0.2}, d2[2] = {0.3, 0.0};
    CU_ASSERT_FATAL(fmq_server_opt_init(&o, kind, p, 2) == 0);
    fmq_server_opt_apply(&o, theta, d1);
    fmq_server_opt_apply(&o, theta, d2);
    CU_ASSERT_DOUBLE_EQUAL(theta[0], e0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(theta[1], e1, 1e-6);
    fmq_server_opt_free(&o);
}

static void test_server_optimizers(void)
{
    struct fmq_strategy_params p;
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDADAM, &p) == 0);
    two_steps(FMQ_STRAT_FEDADAM, &p, 1.223390526, 1.809546606);
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDYOGI, &p) == 0);
    two_steps(FMQ_STRAT_FEDYOGI, &p, 1.021045747, 1.981904762);
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDADAGRAD, &p) == 0);
    two_steps(FMQ_STRAT_FEDADAGRAD, &p, 1.194868329, 1.9);
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDAVGM, &p) == 0);
    p.server_momentum = 0.9, p.server_lr = 0.5;
    two_steps(FMQ_STRAT_FEDAVGM, &p, 1.245, 1.81);
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDAVG, &p) == 0);
    two_steps(FMQ_STRAT_FEDAVG, &p, 1.4, 1.8);
    /* the paper's FedOpt is fedadam's rule on the unweighted mean */
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDOPT, &p) == 0);
    CU_ASSERT_EQUAL(p.uniform, 1);
    two_steps(FMQ_STRAT_FEDOPT, &p, 1.223390526, 1.809546606);
}

static void test_strategy_names_defaults(void)
{
    struct fmq_strategy_params p;
    int k;
    CU_ASSERT(fmq_strategy_parse("fedyogi", &k) == 0 && k == FMQ_STRAT_FEDYOGI);
    CU_ASSERT_EQUAL(fmq_strategy_parse("fedsgd", &k), FMQ_EINVAL);
    CU_ASSERT_STRING_EQUAL(fmq_strategy_name(FMQ_STRAT_GSFS), "gsfs");
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDYOGI, &p) == 0);
    CU_ASSERT_DOUBLE_EQUAL(p.eta, 0.01, 0);
    CU_ASSERT_DOUBLE_EQUAL(p.eta_l, 0.0316, 0);
    CU_ASSERT_DOUBLE_EQUAL(p.tau, 1e-3, 0);
    CU_ASSERT(fmq_strategy_defaults(FMQ_STRAT_FEDADAM, &p) == 0);
    CU_ASSERT_DOUBLE_EQUAL(p.eta, 0.1, 0);
    CU_ASSERT_DOUBLE_EQUAL(p.beta_2, 0.99, 0);
    CU_ASSERT_DOUBLE_EQUAL(p.tau, 1e-9, 0);
    CU_ASSERT_EQUAL(p.uniform, 0);
    CU_ASSERT_EQUAL(fmq_strategy_defaults(42, &p), FMQ_EINVAL);
}

static void test_fedavg_mean(void)
{
    struct fmq_fedavg s;
    const float a[2] = {1, 2}, b[2] = {3, -2};
    double out[2];
    CU_ASSERT_FATAL(fmq_fedavg_init(&s, 2) == 0);
    CU_ASSERT_EQUAL(fmq_fedavg_mean(&s, out), FMQ_EINVAL);
    fmq_fedavg_add(&s, a, 1);
    fmq_fedavg_add(&s, b, 3);
    CU_ASSERT(fmq_fedavg_mean(&s, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(out[1], -1.0, 1e-12);
    fmq_fedavg_free(&s);
}

/* Sensing: a 3,137-parameter model, deadline 2 s, upload allowed 0.5 s. Dense f32 is estimated
 * at 200 + 4 x 3137 = 12,748 bytes. */
static void test_sensing_plan(void)
{
    struct fmq_sensing_params sp = {2.0, 0.25, 0.2};
    struct fmq_client_plan base;
    struct fmq_link_est e = {0};
    struct fmq_agent_plan out;
    fmq_client_plan_default(&base);
    CU_ASSERT_EQUAL(fmq_sensing_plan(&sp, &e, &base, 3137, &out), 0); /* nothing observed */
    /* 12,736 bytes that took 0.5 s: 25,472 B/s; dense needs 0.5005 s > 0.5 s, f16 (6,474 B)
     * needs 0.254 s; budget 2 x 0.8 - 0.254 - 0.5 = 0.846 s */
    fmq_link_observe(&e, 100.0, 100.5, 12736, 900);
    CU_ASSERT_DOUBLE_EQUAL(e.delay, 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(e.rate, 25472, 1e-9);
    CU_ASSERT_EQUAL(fmq_sensing_plan(&sp, &e, &base, 3137, &out), 1);
    CU_ASSERT_EQUAL(out.codec, FMQ_CODEC_DENSE_F16);
    CU_ASSERT_DOUBLE_EQUAL(out.time_budget, 1.6 - 6474.0 / 25472 - 0.5, 1e-5);
    /* a fast link keeps the configured codec and no budget */
    e = (struct fmq_link_est){1, 0.001, 1e7, 900};
    CU_ASSERT_EQUAL(fmq_sensing_plan(&sp, &e, &base, 3137, &out), 0);
    CU_ASSERT_EQUAL(out.codec, FMQ_CODEC_DENSE_F32);
    /* 500 B/s: down the ladder to top-k 0.1% (k = 4: 218 bytes, 0.436 s) */
    e = (struct fmq_link_est){1, 0.0, 500, 900};
    CU_ASSERT_EQUAL(fmq_sensing_plan(&sp, &e, &base, 3137, &out), 1);
    CU_ASSERT_EQUAL(out.codec, FMQ_CODEC_TOPK_I8);
    CU_ASSERT_DOUBLE_EQUAL(out.ratio, 0.001, 1e-9);
    /* the estimate follows a change: EWMA with weight one half */
    e = (struct fmq_link_est){0};
    fmq_link_observe(&e, 0, 1.0, 1000, 0);
    fmq_link_observe(&e, 0, 3.0, 1000, 0);
    CU_ASSERT_DOUBLE_EQUAL(e.delay, 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(e.rate, 0.5 * 1000 + 0.5 * 1000 / 3.0, 1e-9);
    fmq_link_observe(&e, 5.0, 4.0, 1000, 0); /* clock skew: negative delay counts as 0 */
    CU_ASSERT_DOUBLE_EQUAL(e.delay, 1.0, 1e-12);
}

/* The weight-aware rules: a site with most of the examples against four small ones that
 * point the other way (the demo's non-IID split in miniature), and the geometric median. */
static void test_robust_weighted(void)
{
    static const float big[2] = {-1, 0}, small[4][2] = {{1, 0}, {1.1f, 0}, {0.9f, 0}, {1, 0.1f}};
    static const float line[5][2] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}, {1000, 0}};
    static const float u[5][2] = {{1, 10}, {2, 20}, {3, 30}, {4, 40}, {100, -500}};
    double out[2];
    struct fmq_robust r;
    int rule;
    CU_ASSERT(fmq_robust_parse("geomed-filter", &rule) == 0 && rule == FMQ_ROBUST_GEOMED_FILTER);
    CU_ASSERT_FATAL(fmq_robust_init(&r, FMQ_ROBUST_KRUM_FILTER, 2) == 0);
    r.f = 0.2;
    r.count_cap = 0; /* the claimed weights as they are (the cap: test_robust_caps_and_limits) */
    CU_ASSERT(fmq_robust_add(&r, big, 10.0) == 0);
    for (int k = 0; k < 4; k++) CU_ASSERT(fmq_robust_add(&r, small[k], 1.0) == 0);
    /* krum-filter: the reference is the four small ones' mean (1, 0.025); the big site's
     * cosine to it is negative, but it holds 10/14 > half the weight: kept, so the result is
     * the weighted mean of all five, (-10 + 4) / 14 and 0.1 / 14 */
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], -6.0 / 14, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0.1 / 14, 1e-6);
    CU_ASSERT_EQUAL(r.last_used, 5);
    /* majority = 1 turns the exemption off: the count majority outvotes it */
    r.majority = 1;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 1, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0.025, 1e-6);
    CU_ASSERT_EQUAL(r.last_used, 4);
    /* the weighted geometric median sits on a point holding more than half the weight */
    r.rule = FMQ_ROBUST_GEOMEDIAN;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], -1, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0, 1e-3);
    /* equal weights on a line: the median point, 2, however far the fifth lies */
    fmq_robust_reset(&r);
    for (int k = 0; k < 5; k++) CU_ASSERT(fmq_robust_add(&r, line[k], 1.0) == 0);
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0, 1e-9);
    /* geomed-filter on the outlier set below: the four on the line lie within 3 x the median
     * distance of the geometric median, the outlier (distance ~ 530) does not: mean (2.5, 25) */
    fmq_robust_reset(&r);
    r.rule = FMQ_ROBUST_GEOMED_FILTER;
    for (int k = 0; k < 5; k++) CU_ASSERT(fmq_robust_add(&r, u[k], 1.0) == 0);
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 25, 1e-9);
    CU_ASSERT_EQUAL(r.last_used, 4);
    CU_ASSERT_EQUAL(r.last_clipped, 1);
    fmq_robust_free(&r);
}

/* Robust rules against hand-worked values: 5 updates of dim 2, one of them an outlier. */
static void test_robust_rules(void)
{
    static const float u[5][2] = {{1, 10}, {2, 20}, {3, 30}, {4, 40}, {100, -500}};
    double out[2];
    struct fmq_robust r;
    int rule;
    CU_ASSERT(fmq_robust_parse("multi-krum", &rule) == 0 && rule == FMQ_ROBUST_KRUM);
    CU_ASSERT(fmq_robust_parse("mean", &rule) == FMQ_EINVAL);
    /* median: per coordinate, (1,2,3,4,100) -> 3 and (-500,10,20,30,40) -> 20 */
    CU_ASSERT_FATAL(fmq_robust_init(&r, FMQ_ROBUST_MEDIAN, 2) == 0);
    for (int k = 0; k < 5; k++) CU_ASSERT(fmq_robust_add(&r, u[k], 1.0) == 0);
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 3, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 20, 1e-9);
    /* trimmed mean, trim 0.2 of 5 = 1 each end: mean(2,3,4) = 3, mean(10,20,30) = 20 */
    r.rule = FMQ_ROBUST_TRIMMED;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 3, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 20, 1e-9);
    CU_ASSERT_EQUAL(r.last_used, 3);
    /* multi-krum, f = 0.2 x 5 = 1: keeps the 4 central ones, mean (2.5, 25) */
    r.rule = FMQ_ROBUST_KRUM;
    r.f = 0.2;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 25, 1e-9);
    /* krum-filter, f = 0.2 x 5 = 1: multi-krum's four form the reference (2.5, 25); distances
     * to it 15.07, 5.02, 5.02, 15.07 and 534 for the outlier, whose cosine is negative
     * (250 - 12500): it alone goes, mean (2.5, 25) */
    r.rule = FMQ_ROBUST_KRUM_FILTER;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 25, 1e-9);
    CU_ASSERT_EQUAL(r.last_used, 4);
    CU_ASSERT_EQUAL(r.last_clipped, 1);
    /* no outlier: the first four alone, f = 0.25 x 4 = 1; the reference is (2, 20) (three of
     * four equal scores), distances 10.05, 0, 10.05, 20.1 are all within 3 x the median 10.05:
     * krum-filter keeps all four, multi-krum drops one honest update anyway */
    {
        struct fmq_robust q;
        CU_ASSERT_FATAL(fmq_robust_init(&q, FMQ_ROBUST_KRUM_FILTER, 2) == 0);
        q.f = 0.25;
        for (int k = 0; k < 4; k++) CU_ASSERT(fmq_robust_add(&q, u[k], 1.0) == 0);
        CU_ASSERT(fmq_robust_aggregate(&q, out) == 0);
        CU_ASSERT_DOUBLE_EQUAL(out[0], 2.5, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(out[1], 25, 1e-9);
        CU_ASSERT_EQUAL(q.last_used, 4);
        q.rule = FMQ_ROBUST_KRUM;
        CU_ASSERT(fmq_robust_aggregate(&q, out) == 0);
        CU_ASSERT_EQUAL(q.last_used, 3);
        fmq_robust_free(&q);
    }
    /* clip at 2 x the median norm (norm of (3,30) = 30.15): the outlier (norm 509.9) scaled to
     * 60.30, the others kept */
    r.rule = FMQ_ROBUST_CLIP;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    {
        double s = 2 * sqrt(9.0 + 900.0) / sqrt(100.0 * 100 + 500.0 * 500);
        CU_ASSERT_DOUBLE_EQUAL(out[0], (10 + 100 * s) / 5, 1e-6);
        CU_ASSERT_DOUBLE_EQUAL(out[1], (100 - 500 * s) / 5, 1e-6);
        CU_ASSERT_EQUAL(r.last_clipped, 1);
    }
    /* none: the weighted mean */
    r.rule = FMQ_ROBUST_NONE;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 22, 1e-9);
    {
        float bad[2] = {NAN, 1};
        CU_ASSERT_EQUAL(fmq_robust_add(&r, bad, 1.0), FMQ_ERANGE); /* never aggregated */
    }
    fmq_robust_reset(&r);
    CU_ASSERT_EQUAL(fmq_robust_aggregate(&r, out), FMQ_EINVAL);
    fmq_robust_free(&r);
}

/* Example counts are capped at count_cap x the median (one liar claiming 2^40 examples weighs
 * five typical sites, not all of them), and the krum rules never fall back to a plain mean past
 * their pairwise limit: they degrade to geomed-filter and say so. */
static void test_robust_caps_and_limits(void)
{
    static const float honest[2] = {1, 0}, liar[2] = {-1, 0};
    double out[2];
    struct fmq_robust r;
    CU_ASSERT_FATAL(fmq_robust_init(&r, FMQ_ROBUST_NONE, 2) == 0);
    CU_ASSERT_EQUAL(r.count_cap, 5.0);
    for (int k = 0; k < 9; k++) CU_ASSERT(fmq_robust_add(&r, honest, 100.0) == 0);
    CU_ASSERT(fmq_robust_add(&r, liar, 1099511627776.0) == 0);
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_EQUAL(r.last_capped, 1);
    CU_ASSERT_DOUBLE_EQUAL(r.we[9], 500.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(out[0], (900.0 - 500.0) / 1400.0, 1e-9);
    /* krum-filter: capped, the liar no longer holds the majority of the weight: it goes */
    r.rule = FMQ_ROBUST_KRUM_FILTER;
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_EQUAL(r.use[9], 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 1.0, 1e-9);
    r.count_cap = 0; /* off: the liar's claim wins the majority exemption */
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_EQUAL(r.use[9], 1);
    CU_ASSERT(out[0] < -0.99);
    fmq_robust_free(&r);
    /* 1,100 updates (beyond FMQ_ROBUST_PAIRWISE_MAX), 30% of them far away: krum-filter
     * degrades to geomed-filter, which still leaves the far ones out */
    CU_ASSERT_FATAL(fmq_robust_init(&r, FMQ_ROBUST_KRUM_FILTER, 2) == 0);
    for (int k = 0; k < 1100; k++) {
        float v[2] = {k % 10 < 3 ? -50.0f : 1.0f + 0.001f * (float)(k % 7), 0.01f * (k % 3)};
        CU_ASSERT(fmq_robust_add(&r, v, 1.0) == 0);
    }
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_EQUAL(r.last_rule, FMQ_ROBUST_GEOMED_FILTER);
    CU_ASSERT_EQUAL(r.last_used, 770);
    CU_ASSERT(out[0] > 0.99 && out[0] < 1.01);
    fmq_robust_reset(&r); /* within the limit: krum-filter itself */
    for (int k = 0; k < 20; k++) {
        float v[2] = {k % 10 < 3 ? -50.0f : 1.0f, 0};
        CU_ASSERT(fmq_robust_add(&r, v, 1.0) == 0);
    }
    CU_ASSERT(fmq_robust_aggregate(&r, out) == 0);
    CU_ASSERT_EQUAL(r.last_rule, FMQ_ROBUST_KRUM_FILTER);
    CU_ASSERT_EQUAL(r.last_used, 14);
    fmq_robust_free(&r);
}

/* The RDP accountant: the plain Gaussian mechanism in closed form, composition, subsampling. */
static void test_dp_accountant(void)
{
    double rdp[FMQ_DP_ORDERS] = {0}, e1, e10, e_sub, best = INFINITY;
    float v[3] = {3, 4, 0};
    int order;
    /* q = 1: RDP(a) = a / (2 sigma^2), so epsilon = min_a T a / (2 s^2) + log(1/d) / (a - 1) */
    for (int a = 2; a <= 256; a++) {
        double e = 10 * a / (2.0 * 4.0) + log(1e5) / (a - 1);
        best = e < best ? e : best;
    }
    e10 = fmq_dp_epsilon(1.0, 2.0, 10, 1e-5, &order);
    CU_ASSERT_DOUBLE_EQUAL(e10, best, 1e-9);
    CU_ASSERT(order >= 2 && order <= 256);
    e1 = fmq_dp_epsilon(1.0, 2.0, 1, 1e-5, NULL);
    CU_ASSERT(e1 < e10);                                       /* composition spends more */
    CU_ASSERT(fmq_dp_epsilon(1.0, 4.0, 10, 1e-5, NULL) < e10); /* more noise spends less */
    e_sub = fmq_dp_epsilon(0.1, 2.0, 10, 1e-5, NULL);
    CU_ASSERT(e_sub < e10 / 3); /* sampling one agent in ten amplifies privacy */
    /* the sampled formula at q = 1 agrees with the closed form (the k = a term alone) */
    CU_ASSERT_DOUBLE_EQUAL(fmq_rdp_sgm(1.0 - 1e-12, 2.0, 8), 8 / 8.0, 1e-6);
    for (int t = 0; t < 10; t++) fmq_dp_account(rdp, 1.0, 2.0);
    CU_ASSERT_DOUBLE_EQUAL(fmq_dp_epsilon_rdp(rdp, 1e-5, NULL), e10, 1e-9);
    if (getenv("FMQ_TEST_VERBOSE"))
        fprintf(stderr,
                "\n  dp: sigma 2, 10 rounds, delta 1e-5: epsilon %.3f (q 1), %.3f (q 0.1)\n", e10,
                e_sub);
    /* clipping */
    CU_ASSERT_EQUAL(fmq_dp_clip(v, 3, 1.0), 1);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 0.6, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(v[1], 0.8, 1e-6);
    CU_ASSERT_EQUAL(fmq_dp_clip(v, 3, 1.0), 0);
}

int init_strategy_tests(void)
{
    static const struct fmq_test t[] = {
        {"fedavg weighted", test_fedavg_weighted},
        {"server optimizers, two steps", test_server_optimizers},
        {"names and Flower defaults", test_strategy_names_defaults},
        {"fedavg mean", test_fedavg_mean},
        {"network and device sensing", test_sensing_plan},
        {"robust aggregation rules", test_robust_rules},
        {"robust rules, weight-aware", test_robust_weighted},
        {"robust: count cap, pairwise limit", test_robust_caps_and_limits},
        {"dp accountant and clipping", test_dp_accountant},
        {NULL, NULL}};
    return fmq_add_suite("strategy", t);
}
