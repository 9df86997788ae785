/* MQTT topic filter matching (MQTT 3.1.1 section 4.7.1) and the in-process mem:// bus that
 * fedmq-sim uses. The broker client itself is exercised against a real broker by the
 * integration tests. */
#include "fedmq/common.h"
#include "fedmq/mq.h"
#include "test_util.h"
#include "../../core/net/mq_mem.h"

#include <string.h>

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

static struct fmq_mq *mem_client(const char *bus, const char *id)
{
    struct fmq_mq_opts o;
    struct fmq_mq *mq = NULL;
    fmq_mq_opts_default(&o);
    o.uri = bus;
    o.client_id = id;
    CU_ASSERT_FATAL(fmq_mq_create(&mq, &o) == 0);
    return mq;
}

/* Filters, publish order, retained messages (kept, replaced, cleared, sent to a late subscriber),
 * separate buses, and a client that is not connected receiving nothing. */
static void test_mem_bus(void)
{
    struct fmq_mq *a = mem_client("mem://t1", "a"), *b = mem_client("mem://t1", "b");
    struct fmq_mq *other = mem_client("mem://t2", "c"), *late;
    struct fmq_mq_msg *m;

    CU_ASSERT(fmq_mq_subscribe(a, "fedmq/+/update/+", 1) == 0);
    CU_ASSERT(fmq_mq_connect(a, 1) == 0 && fmq_mq_connect(b, 1) == 0);
    CU_ASSERT(fmq_mq_subscribe(other, "#", 1) == 0 && fmq_mq_connect(other, 1) == 0);
    CU_ASSERT(fmq_mq_publish(b, "fedmq/iot23/update/x", "one", 3, 1, 0) == 0);
    CU_ASSERT(fmq_mq_publish(b, "fedmq/iot23/status/x", "no", 2, 1, 0) == 0);
    CU_ASSERT(fmq_mq_publish(b, "fedmq/iot23/update/y", "two", 3, 1, 0) == 0);
    CU_ASSERT(fmq_mq_poll(a, &m, 0) == 0 && m->len == 3 && !memcmp(m->payload, "one", 3) &&
              !strcmp(m->topic, "fedmq/iot23/update/x") && !m->retained);
    CU_ASSERT(fmq_mq_poll(a, &m, 0) == 0 && !memcmp(m->payload, "two", 3));
    CU_ASSERT(fmq_mq_poll(a, &m, 0) == FMQ_ETIMEOUT);
    CU_ASSERT(fmq_mq_poll(b, &m, 0) == FMQ_ETIMEOUT);     /* subscribed to nothing */
    CU_ASSERT(fmq_mq_poll(other, &m, 0) == FMQ_ETIMEOUT); /* another bus */

    CU_ASSERT(fmq_mq_publish(b, "fedmq/iot23/model/global", "v1", 2, 1, 1) == 0);
    CU_ASSERT(fmq_mq_publish(b, "fedmq/iot23/model/global", "v2", 2, 1, 1) == 0);
    CU_ASSERT(fmq_mq_publish(b, "fedmq/iot23/status/x", "up", 2, 1, 1) == 0);
    late = mem_client("mem://t1", "late");
    CU_ASSERT(fmq_mq_subscribe(late, "fedmq/iot23/model/#", 1) == 0); /* before connect */
    CU_ASSERT(fmq_mq_poll(late, &m, 0) == FMQ_ETIMEOUT);
    CU_ASSERT(fmq_mq_connect(late, 1) == 0);
    CU_ASSERT(fmq_mq_poll(late, &m, 0) == 0 && m->retained && !memcmp(m->payload, "v2", 2));
    CU_ASSERT(fmq_mq_poll(late, &m, 0) == FMQ_ETIMEOUT); /* only the newest, only matching */
    CU_ASSERT(fmq_mq_publish(b, "fedmq/iot23/model/global", "", 0, 1, 1) == 0); /* clear */
    CU_ASSERT(fmq_mq_poll(late, &m, 0) == 0 && m->len == 0 && !m->retained);
    CU_ASSERT(fmq_mq_subscribe(late, "fedmq/iot23/model/global", 1) == 0);
    CU_ASSERT(fmq_mq_poll(late, &m, 0) == FMQ_ETIMEOUT); /* nothing retained any more */
    CU_ASSERT(fmq_mq_subscribe(late, "fedmq/+/status/+", 1) == 0);
    CU_ASSERT(fmq_mq_poll(late, &m, 0) == 0 && m->retained && !memcmp(m->payload, "up", 2));
    fmq_mq_destroy(late);
    fmq_mq_destroy(a);
    fmq_mq_destroy(b);
    fmq_mq_destroy(other);
}

/* Bounded memory (issue 16): a slot gives back what a large message took once it is consumed
 * (before, every slot kept the largest message it ever held), a grown ring shrinks back when it
 * drains, and the queue refuses a message beyond queue_bytes_max (the sender waits). */
static void test_queue_memory(void)
{
    struct fmq_mq_opts o;
    struct fmq_mq *a = NULL, *b;
    struct fmq_mq_msg *m;
    struct fmq_mq_stats st, st0;
    static uint8_t big[1u << 20];
    char small[200] = "{}";
    int full = 0;

    fmq_mq_opts_default(&o);
    o.uri = "mem://qmem";
    o.client_id = "a";
    o.queue_slots = 16;
    o.queue_bytes_max = 3u << 20;
    CU_ASSERT_FATAL(fmq_mq_create(&a, &o) == 0);
    b = mem_client("mem://qmem", "b");
    CU_ASSERT(fmq_mq_subscribe(a, "t/#", 1) == 0 && fmq_mq_connect(a, 1) == 0);
    CU_ASSERT(fmq_mq_connect(b, 1) == 0);
    fmq_mq_get_stats(a, &st0);
    for (int round = 0; round < 40; round++) { /* a model every round, records in between */
        CU_ASSERT(fmq_mq_publish(b, "t/model", big, sizeof big, 1, 0) == 0);
        for (int i = 0; i < 7; i++) CU_ASSERT(fmq_mq_publish(b, "t/rec", small, 120, 1, 0) == 0);
        for (int i = 0; i < 8; i++) CU_ASSERT(fmq_mq_poll(a, &m, 0) == 0);
        CU_ASSERT(fmq_mq_poll(a, &m, 0) == FMQ_ETIMEOUT); /* releases the last one */
    }
    fmq_mq_get_stats(a, &st);
    CU_ASSERT(st.msgs_in == st0.msgs_in + 40 * 8);
    CU_ASSERT(st.held_bytes < 16 * 4096 + 16 * 256); /* not 16 x 1 MiB */
    CU_ASSERT(st.queued_bytes == 0);
    /* a burst grows the ring; drained, it is back to its first size */
    for (int i = 0; i < 1000; i++) CU_ASSERT(fmq_mq_publish(b, "t/rec", small, 100, 1, 0) == 0);
    fmq_mq_get_stats(a, &st);
    CU_ASSERT(st.slots >= 1000 && st.queued_bytes == 100000);
    while (fmq_mq_poll(a, &m, 0) == 0) {
    }
    fmq_mq_get_stats(a, &st);
    CU_ASSERT(st.slots == 16 && st.held_bytes < 16 * 4096 + 16 * 256);
    /* the byte bound: the fourth MiB waits */
    for (int i = 0; i < 4; i++)
        full += fmq_mq_deliver(a, NULL, "t/model", big, sizeof big, 0) == FMQ_EFULL;
    CU_ASSERT(full == 1);
    fmq_mq_get_stats(a, &st);
    CU_ASSERT(st.queued_bytes == 3u << 20 && st.backpressure >= 1);
    fmq_mq_destroy(a);
    fmq_mq_destroy(b);
}

int init_mq_tests(void)
{
    static const struct fmq_test t[] = {{"topic match", test_topic_match},
                                        {"mem bus", test_mem_bus},
                                        {"queue memory", test_queue_memory},
                                        {NULL, NULL}};
    return fmq_add_suite("mq", t);
}
