/* CUnit runner: `fedmq_unit [suite]` runs every suite or the named one; ctest registers one test
 * per suite. Exit status is the number of failures (0 on success). */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "fedmq/common.h"
#include "test_util.h"

struct suite {
    const char *name;
    int (*init)(void);
};

static const struct suite suites[] = {
    {"connlog", init_connlog_tests},
    {"flow", init_flow_tests},
    {"featurize", init_featurize_tests},
    {"model", init_model_tests},
    {"wire", init_wire_tests},
    {"strategy", init_strategy_tests},
    {"config", init_config_tests},
    {"mq", init_mq_tests},
    {"codec", init_codec_tests},
    {"gsfs", init_gsfs_tests},
    {"gpt", init_gpt_tests},
    {"plugin", init_plugin_tests},
    {"calib", init_calib_tests},
    {"learner", init_learner_tests},
    {"secagg", init_secagg_tests},
};

static void quiet_log(int level, const char *msg, void *ud)
{
    if (getenv("FMQ_TEST_VERBOSE")) fprintf(stderr, "  log: %s\n", msg);
}

int main(int argc, char **argv)
{
    unsigned fails;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    fmq_log_set(quiet_log, NULL, FMQ_LOG_DEBUG);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (argc < 2 || strcmp(argv[1], suites[i].name) == 0)
            if (suites[i].init() != 0) {
                fprintf(stderr, "cannot register suite %s\n", suites[i].name);
                return 1;
            }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    if (CU_get_number_of_tests_run() == 0) fails = 1;
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
