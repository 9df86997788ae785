/* FedAvg against hand-computed values. */
#include "fedmq/strategy.h"
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

int init_strategy_tests(void)
{
    static const struct fmq_test t[] = {{"fedavg weighted", test_fedavg_weighted}, {NULL, NULL}};
    return fmq_add_suite("strategy", t);
}
