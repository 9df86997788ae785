/* FedAvg against hand-computed values. */
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

int init_strategy_tests(void)
{
    static const struct fmq_test t[] = {{"fedavg weighted", test_fedavg_weighted},
                                        {"server optimizers, two steps", test_server_optimizers},
                                        {"names and Flower defaults", test_strategy_names_defaults},
                                        {"fedavg mean", test_fedavg_mean},
                                        {"network and device sensing", test_sensing_plan},
                                        {NULL, NULL}};
    return fmq_add_suite("strategy", t);
}
