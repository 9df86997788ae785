/* The fedmq Mosquitto plugin with link stubs for the broker API: the plugin's own callbacks are
 * registered into the stubs below and called the way mosquitto 2.0 calls them, with clients
 * that carry a client id and a certificate identity (username). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "fmq_policy.h"
#include "sample_msgs.h"
#include "test_util.h"

/* ---- link stubs for the broker API ---- */
struct mosquitto {
    const char *id, *username;
};
static MOSQ_FUNC_generic_callback callbacks[16];
static char last_topic[256], last_payload[2048];
static int published, logged;

const char *mosquitto_client_id(const struct mosquitto *c)
{
    return c->id;
}
const char *mosquitto_client_username(const struct mosquitto *c)
{
    return c->username;
}
int mosquitto_callback_register(mosquitto_plugin_id_t *id, int event, MOSQ_FUNC_generic_callback cb,
                                const void *event_data, void *ud)
{
    callbacks[event] = cb;
    return MOSQ_ERR_SUCCESS;
}
int mosquitto_callback_unregister(mosquitto_plugin_id_t *id, int event,
                                  MOSQ_FUNC_generic_callback cb, const void *event_data)
{
    callbacks[event] = NULL;
    return MOSQ_ERR_SUCCESS;
}
void mosquitto_log_printf(int level, const char *fmt, ...)
{
    logged++;
}
int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen,
                                  const void *payload, int qos, bool retain,
                                  mosquitto_property *properties)
{
    snprintf(last_topic, sizeof last_topic, "%s", topic);
    snprintf(last_payload, sizeof last_payload, "%.*s", payloadlen, (const char *)payload);
    published++;
    return MOSQ_ERR_SUCCESS;
}

/* ---- helpers ---- */
static int acl(const char *id, const char *user, int access, const char *topic, const void *pl,
               size_t len)
{
    struct mosquitto c = {id, user};
    struct mosquitto_evt_acl_check ev;
    memset(&ev, 0, sizeof ev);
    ev.client = &c;
    ev.access = access;
    ev.topic = topic;
    ev.payload = pl;
    ev.payloadlen = (uint32_t)len;
    return callbacks[MOSQ_EVT_ACL_CHECK](MOSQ_EVT_ACL_CHECK, &ev, NULL);
}

/* an update from `agent` with dim floats (dense-f32) */
static void make_update(struct fmq_buf *b, const char *agent, uint32_t dim)
{
    static float delta[512];
    struct fmq_update u;
    sample_update(&u);
    snprintf(u.agent, sizeof u.agent, "%s", agent);
    u.dim = dim;
    u.delta = delta;
    u.delta_cap = dim;
    CU_ASSERT_FATAL(fmq_wire_encode_update(&u, b) == 0);
}

static void test_policy_topics(void)
{
    CU_ASSERT(fmq_policy_match("fedmq/+/update/a1", "fedmq/iot23/update/a1"));
    CU_ASSERT(!fmq_policy_match("fedmq/+/update/a1", "fedmq/iot23/update/a2"));
    CU_ASSERT(fmq_policy_match("sensors/a1/#", "sensors/a1/10.0.0.1/conn"));
    CU_ASSERT(fmq_policy_match("sensors/a1/#", "sensors/a1"));
    CU_ASSERT(!fmq_policy_match("+/#", "$SYS/broker"));
    CU_ASSERT(fmq_policy_covers("fedmq/+/alerts/#", "fedmq/iot23/alerts/#"));
    CU_ASSERT(fmq_policy_covers("fedmq/+/alerts/#", "fedmq/+/alerts/a1"));
    CU_ASSERT(!fmq_policy_covers("fedmq/+/metrics", "fedmq/#"));
    CU_ASSERT(!fmq_policy_covers("fedmq/+/update/a1", "fedmq/+/update/+"));
    CU_ASSERT(!fmq_policy_covers("sensors/a1/#", "sensors/+/#"));
}

static void test_plugin(void)
{
    struct mosquitto_opt opts[] = {{"coordinators", "coord"},    {"dashboards", "dash"},
                                   {"max_update_bytes", "2000"}, {"update_rate", "0.01"},
                                   {"update_burst", "3"},        {"metrics_interval", "0.1"}};
    struct mosquitto_opt bad[] = {{"update_rate", "fast"}};
    struct fmq_buf b = {0}, g = {0};
    struct fmq_global gl;
    struct fmq_model m;
    const char *up = "fedmq/iot23/update/a1";

    CU_ASSERT_EQUAL(mosquitto_plugin_init(NULL, NULL, bad, 1), MOSQ_ERR_INVAL);
    CU_ASSERT_EQUAL(mosquitto_plugin_init(NULL, NULL, opts, 6), MOSQ_ERR_SUCCESS);
    CU_ASSERT_FATAL(callbacks[MOSQ_EVT_ACL_CHECK] && callbacks[MOSQ_EVT_MESSAGE] &&
                    callbacks[MOSQ_EVT_TICK]);

    /* identity: no certificate identity, or a client id that is not the identity */
    make_update(&b, "a1", 4);
    CU_ASSERT_EQUAL(acl("a1", NULL, MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("a1", "a2", MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("a2", "a2", MOSQ_ACL_WRITE, "other/topic", NULL, 0), MOSQ_ERR_PLUGIN_DEFER);
    CU_ASSERT_EQUAL(acl("a1", "a2", MOSQ_ACL_WRITE, "other/topic", NULL, 0), MOSQ_ERR_ACL_DENIED);
    /* the agent's own update, before any model is known: any dimension */
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_SUCCESS);
    { /* without ids (client.ids 0) the topic names the agent: only its own topic passes */
        struct fmq_update u;
        struct fmq_buf lean = {0};
        sample_update(&u);
        u.no_ids = 1;
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &lean) == 0);
        CU_ASSERT_EQUAL(
            acl("a4", "a4", MOSQ_ACL_WRITE, "fedmq/iot23/update/a4", lean.data, lean.len),
            MOSQ_ERR_SUCCESS);
        CU_ASSERT_EQUAL(
            acl("a2", "a2", MOSQ_ACL_WRITE, "fedmq/iot23/update/a4", lean.data, lean.len),
            MOSQ_ERR_ACL_DENIED);
        fmq_buf_free(&lean);
    }
    /* another agent's topic; the right topic with a forged id inside; wrong task */
    CU_ASSERT_EQUAL(acl("a2", "a2", MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("a2", "a2", MOSQ_ACL_WRITE, "fedmq/iot23/update/a2", b.data, b.len),
                    MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, "fedmq/other/update/a1", b.data, b.len),
                    MOSQ_ERR_ACL_DENIED);
    /* malformed and oversized */
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, up, b.data, b.len - 3), MOSQ_ERR_ACL_DENIED);
    make_update(&b, "a1", 500); /* 2 kB of floats > 2000 bytes */
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_ACL_DENIED);
    /* the coordinator's global model teaches the dimension (80-4-1: 329 parameters) */
    CU_ASSERT_FATAL(sample_global(&gl, &m) == 0 && fmq_wire_encode_global(&gl, &g) == 0);
    {
        struct mosquitto c = {"a1", "a1"}, co = {"coord", "coord"};
        struct mosquitto_evt_message ev;
        memset(&ev, 0, sizeof ev);
        ev.client = &c; /* from an agent: ignored */
        ev.topic = "fedmq/iot23/model/global";
        ev.payload = g.data;
        ev.payloadlen = (uint32_t)g.len;
        callbacks[MOSQ_EVT_MESSAGE](MOSQ_EVT_MESSAGE, &ev, NULL);
        make_update(&b, "a1", 4);
        CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_SUCCESS);
        ev.client = &co;
        callbacks[MOSQ_EVT_MESSAGE](MOSQ_EVT_MESSAGE, &ev, NULL);
    }
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_ACL_DENIED);
    make_update(&b, "a1", 329); /* the model's dimension */
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, up, b.data, b.len), MOSQ_ERR_SUCCESS);
    /* roles: agents read models and their own sensors, dashboards read metrics and alerts,
     * nobody but the coordinator publishes a model, no broad subscriptions */
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_SUBSCRIBE, "fedmq/iot23/model/global", NULL, 0),
                    MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_SUBSCRIBE, "sensors/a1/+/conn", NULL, 0),
                    MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_SUBSCRIBE, "sensors/+/+/conn", NULL, 0),
                    MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_SUBSCRIBE, "fedmq/+/update/+", NULL, 0),
                    MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_READ, "fedmq/iot23/update/a2", NULL, 0),
                    MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, "fedmq/iot23/model/global", g.data, g.len),
                    MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(
        acl("coord", "coord", MOSQ_ACL_WRITE, "fedmq/iot23/model/global", g.data, g.len),
        MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("coord", "coord", MOSQ_ACL_SUBSCRIBE, "fedmq/+/update/+", NULL, 0),
                    MOSQ_ERR_SUCCESS);
    /* the coordinator reads the retained model (it resumes above it) and owns its status */
    CU_ASSERT_EQUAL(acl("coord", "coord", MOSQ_ACL_SUBSCRIBE, "fedmq/iot23/model/global", NULL, 0),
                    MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("coord", "coord", MOSQ_ACL_WRITE, "fedmq/iot23/coordinator", "{}", 2),
                    MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("a1", "a1", MOSQ_ACL_WRITE, "fedmq/iot23/coordinator", "{}", 2),
                    MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("dash", "dash", MOSQ_ACL_SUBSCRIBE, "fedmq/iot23/coordinator", NULL, 0),
                    MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("dash", "dash", MOSQ_ACL_SUBSCRIBE, "fedmq/#", NULL, 0),
                    MOSQ_ERR_ACL_DENIED);
    CU_ASSERT_EQUAL(acl("dash", "dash", MOSQ_ACL_SUBSCRIBE, "fedmq/iot23/alerts/#", NULL, 0),
                    MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("dash", "dash", MOSQ_ACL_WRITE, "fedmq/iot23/metrics", "{}", 2),
                    MOSQ_ERR_ACL_DENIED);
    /* rate: a burst of 3, then refused (0.01 tokens per second come back) */
    make_update(&b, "a3", 329);
    {
        int ok = 0;
        for (int i = 0; i < 5; i++)
            ok += acl("a3", "a3", MOSQ_ACL_WRITE, "fedmq/iot23/update/a3", b.data, b.len) ==
                  MOSQ_ERR_SUCCESS;
        CU_ASSERT_EQUAL(ok, 3);
    }
    /* the counters go out on the tick */
    {
        struct mosquitto_evt_tick t = {0};
        struct timespec ts = {0, 150 * 1000000L};
        nanosleep(&ts, NULL);
        callbacks[MOSQ_EVT_TICK](MOSQ_EVT_TICK, &t, NULL);
        CU_ASSERT(published >= 1);
        CU_ASSERT_STRING_EQUAL(last_topic, "fedmq/broker/metrics");
        CU_ASSERT(strstr(last_payload, "\"forged\":1") != NULL);
        CU_ASSERT(strstr(last_payload, "\"id_mismatch\":2") != NULL);
        CU_ASSERT(strstr(last_payload, "\"model_dim\":329") != NULL);
        if (getenv("FMQ_TEST_VERBOSE")) fprintf(stderr, "\n  plugin metrics: %s\n", last_payload);
    }
    CU_ASSERT(logged > 0);
    CU_ASSERT_EQUAL(mosquitto_plugin_cleanup(NULL, NULL, 0), MOSQ_ERR_SUCCESS);
    fmq_model_free(&m);
    fmq_buf_free(&b);
    fmq_buf_free(&g);
}

/* the per-client token bucket on its own */
static void test_policy_rate(void)
{
    struct fmq_policy *p = calloc(1, sizeof *p);
    struct fmq_buf b = {0};
    int ok = 0;
    fmq_policy_default(p);
    p->rate = 1.0;
    p->burst = 3;
    CU_ASSERT_FATAL(fmq_policy_init(p) == 0);
    make_update(&b, "a1", 4);
    for (int i = 0; i < 5; i++)
        ok += fmq_policy_check(p, "a1", "a1", FMQ_ACC_WRITE, "fedmq/iot23/update/a1", b.data, b.len,
                               100.0) == FMQ_DENY_OK;
    CU_ASSERT_EQUAL(ok, 3);
    CU_ASSERT_EQUAL(p->denied[FMQ_DENY_RATE], 2);
    CU_ASSERT_EQUAL(fmq_policy_check(p, "a1", "a1", FMQ_ACC_WRITE, "fedmq/iot23/update/a1", b.data,
                                     b.len, 101.5),
                    FMQ_DENY_OK); /* a token back after a second */
    CU_ASSERT_EQUAL(fmq_policy_check(p, "a2", "a2", FMQ_ACC_WRITE, "fedmq/iot23/update/a2", b.data,
                                     b.len, 100.0),
                    FMQ_DENY_FORGED); /* another client has its own bucket; id still checked */
    fmq_policy_free(p);
    fmq_buf_free(&b);
    free(p);
}

int init_plugin_tests(void)
{
    static const struct fmq_test t[] = {{"topic matching", test_policy_topics},
                                        {"plugin with broker stubs", test_plugin},
                                        {"update rate", test_policy_rate},
                                        {NULL, NULL}};
    return fmq_add_suite("plugin", t);
}
