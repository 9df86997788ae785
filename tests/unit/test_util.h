/* Shared declarations for the unit suites: suite initialisers and the data directory. */
#ifndef FMQ_TEST_UTIL_H
#define FMQ_TEST_UTIL_H

#include <CUnit/CUnit.h>
#include <stdlib.h>

int init_connlog_tests(void);
int init_flow_tests(void);
int init_featurize_tests(void);
int init_model_tests(void);
int init_wire_tests(void);
int init_strategy_tests(void);
int init_config_tests(void);
int init_mq_tests(void);
int init_codec_tests(void);
int init_gsfs_tests(void);
int init_gpt_tests(void);
int init_plugin_tests(void);
int init_calib_tests(void);
int init_learner_tests(void);
int init_secagg_tests(void);

/* FMQ_SOURCE_DIR is set by CMake; data/ and schemas/ are read from there. */
#define DATA_DIR FMQ_SOURCE_DIR "/data/iot23/"
#define VEC_DIR FMQ_SOURCE_DIR "/schemas/vectors/"

/* Adds a suite and its tests from a NULL-terminated table; returns nonzero on failure. */
struct fmq_test {
    const char *name;
    void (*fn)(void);
};
static inline int fmq_add_suite(const char *name, const struct fmq_test *t)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (!s) return -1;
    for (; t->name; t++)
        if (!CU_add_test(s, t->name, t->fn)) return -1;
    return 0;
}

#endif
