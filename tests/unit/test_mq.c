/* MQTT topic filter matching (MQTT 3.1.1 section 4.7.1). The client itself is exercised against
 * a real broker by the integration tests. */
#include "fedmq/mq.h"
#include "test_util.h"

static void test_topic_match(void)
{
    CU_ASSERT(fmq_topic_match("sensors/+/+/conn", "sensors/site/dev/conn"));
    CU_ASSERT(!fmq_topic_match("sensors/+/+/conn", "sensors/site/conn"));
    CU_ASSERT(!fmq_topic_match("sensors/+/+/conn", "sensors/site/dev/conn/x"));
    CU_ASSERT(fmq_topic_match("sensors/#", "sensors/a/b/c"));
    CU_ASSERT(fmq_topic_match("sensors/#", "sensors"));
    CU_ASSERT(fmq_topic_match("#", "a/b"));
    CU_ASSERT(!fmq_topic_match("#", "$SYS/broker"));
    CU_ASSERT(fmq_topic_match("a/b", "a/b"));
    CU_ASSERT(!fmq_topic_match("a/b", "a/bc"));
    CU_ASSERT(!fmq_topic_match("a/bc", "a/b"));
    CU_ASSERT(fmq_topic_match("+/+", "a/"));
    CU_ASSERT(fmq_topic_match("fedmq/+/update/+", "fedmq/iot23/update/agent-1"));
    CU_ASSERT(!fmq_topic_match("fedmq/+/update/+", "fedmq/iot23/status/agent-1"));
}

int init_mq_tests(void)
{
    static const struct fmq_test t[] = {{"topic match", test_topic_match}, {NULL, NULL}};
    return fmq_add_suite("mq", t);
}
