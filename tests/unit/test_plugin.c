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
static int acl_r(const char *id, const char *user, int access, const char *topic, const void *pl,
                 size_t len, int retain)
{
    struct mosquitto c = {id, user};
    struct mosquitto_evt_acl_check ev;
    memset(&ev, 0, sizeof ev);
    ev.client = &c;
    ev.access = access;
    ev.topic = topic;
    ev.payload = pl;
    ev.payloadlen = (uint32_t)len;
    ev.retain = retain != 0;
    return callbacks[MOSQ_EVT_ACL_CHECK](MOSQ_EVT_ACL_CHECK, &ev, NULL);
}

static int acl(const char *id, const char *user, int access, const char *topic, const void *pl,
               size_t len)
{
    return acl_r(id, user, access, topic, pl, len, 0);
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
                                   {"update_burst", "10"},       {"metrics_interval", "0.1"}};
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
                    MOSQ_ERR_ACL_DENIED); /* alerts name hosts: operators only */
    CU_ASSERT_EQUAL(acl("dash", "dash", MOSQ_ACL_SUBSCRIBE, "fedmq/iot23/status/#", NULL, 0),
                    MOSQ_ERR_SUCCESS); /* the counts */
    CU_ASSERT_EQUAL(
        acl("operator", "operator", MOSQ_ACL_SUBSCRIBE, "fedmq/iot23/alerts/#", NULL, 0),
        MOSQ_ERR_SUCCESS);
    CU_ASSERT_EQUAL(acl("dash", "dash", MOSQ_ACL_WRITE, "fedmq/iot23/metrics", "{}", 2),
                    MOSQ_ERR_ACL_DENIED);
    /* rate: a burst of 10, then refused (0.01 tokens per second come back) */
    make_update(&b, "a3", 329);
    {
        int ok = 0;
        for (int i = 0; i < 12; i++)
            ok += acl("a3", "a3", MOSQ_ACL_WRITE, "fedmq/iot23/update/a3", b.data, b.len) ==
                  MOSQ_ERR_SUCCESS;
        CU_ASSERT_EQUAL(ok, 10);
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
    p->rate[FMQ_KIND_UPDATE] = 1.0;
    p->burst[FMQ_KIND_UPDATE] = 3;
    CU_ASSERT_FATAL(fmq_policy_init(p) == 0);
    make_update(&b, "a1", 4);
    for (int i = 0; i < 5; i++)
        ok += fmq_policy_check(p, "a1", "a1", FMQ_ACC_WRITE, "fedmq/iot23/update/a1", b.data, b.len,
                               0, 100.0) == FMQ_DENY_OK;
    CU_ASSERT_EQUAL(ok, 3);
    CU_ASSERT_EQUAL(p->denied[FMQ_DENY_RATE], 2);
    CU_ASSERT_EQUAL(fmq_policy_check(p, "a1", "a1", FMQ_ACC_WRITE, "fedmq/iot23/update/a1", b.data,
                                     b.len, 0, 101.5),
                    FMQ_DENY_OK); /* a token back after a second */
    CU_ASSERT_EQUAL(fmq_policy_check(p, "a2", "a2", FMQ_ACC_WRITE, "fedmq/iot23/update/a2", b.data,
                                     b.len, 0, 100.0),
                    FMQ_DENY_FORGED); /* another client has its own bucket; id still checked */
    /* malformed updates are charged before they are decoded: 3 tokens, then refused unread */
    ok = 0;
    for (int i = 0; i < 5; i++)
        ok += fmq_policy_check(p, "a5", "a5", FMQ_ACC_WRITE, "fedmq/iot23/update/a5", b.data,
                               b.len - 3, 0, 200.0) == FMQ_DENY_MALFORMED;
    CU_ASSERT_EQUAL(ok, 3);
    CU_ASSERT_EQUAL(p->denied[FMQ_DENY_RATE], 4);
    fmq_policy_free(p);
    fmq_buf_free(&b);
    free(p);
}

/* What issue 15 found open: retain, status, alerts, retained topics, per-task dimensions,
 * UNSUBSCRIBE, $share, the plugin's own topic, per-site sensor identities and labels. */
static void test_policy_hardening(void)
{
    struct fmq_policy *p = calloc(1, sizeof *p);
    struct fmq_buf b = {0}, st = {0}, g = {0};
    struct fmq_status s;
    struct fmq_global gl;
    struct fmq_model m;
    char err[200], topic[96];
    const char *alert = "{\"agent\":\"a1\",\"score\":0.9,\"reasons\":[{\"feature\":\"x\"}]}",
               *forged = "{\"agent\":\"a2\",\"score\":0.9}",
               *rec = "{\"ts\":1.5,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\"}",
               *labelled = "{\"ts\":1.5,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\","
                           "\"label\":\"Benign\"}";
    int ok;
#define CHECK(id, acc, t, pl, n, r) fmq_policy_check(p, id, id, acc, t, pl, n, r, 100.0)
    fmq_policy_default(p);
    CU_ASSERT_EQUAL(fmq_policy_set(p, "sensors", "sensors", err, sizeof err), FMQ_EINVAL);
    CU_ASSERT(strstr(err, ".sensors") != NULL);
    CU_ASSERT(fmq_policy_set(p, "labellers", "lab.sensors", err, sizeof err) == 0);
    CU_ASSERT(fmq_policy_set(p, "coordinators", "coord", err, sizeof err) == 0);
    CU_ASSERT_FATAL(fmq_policy_init(p) == 0);
    /* updates are never retained */
    make_update(&b, "a1", 4);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/update/a1", b.data, b.len, 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/update/a1", b.data, b.len, 1),
                    FMQ_DENY_RETAIN);
    /* status: the envelope, naming the publisher and the topic's task, within 1 kB */
    sample_status(&s);
    strcpy(s.agent, "a1");
    CU_ASSERT_FATAL(fmq_wire_encode_status(&s, &st) == 0);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/status/a1", st.data, st.len, 1),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/other/status/a1", st.data, st.len, 0),
                    FMQ_DENY_TASK);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/status/a1", "{}", 2, 0),
                    FMQ_DENY_MALFORMED);
    {
        static char big[2048];
        memset(big, 'x', sizeof big);
        CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/status/a1", big, sizeof big, 0),
                        FMQ_DENY_SIZE);
    }
    /* retained topics per identity: the first four distinct ones (invented tasks), no more */
    ok = 0;
    for (int t = 0; t < 6; t++) {
        struct fmq_buf one = {0};
        snprintf(s.task, sizeof s.task, "t%d", t);
        snprintf(topic, sizeof topic, "fedmq/t%d/status/a1", t);
        CU_ASSERT_FATAL(fmq_wire_encode_status(&s, &one) == 0);
        ok += CHECK("a1", FMQ_ACC_WRITE, topic, one.data, one.len, 1) == FMQ_DENY_OK;
        fmq_buf_free(&one);
    }
    CU_ASSERT_EQUAL(ok, 3); /* iot23 holds the first of four */
    CU_ASSERT_EQUAL(p->denied[FMQ_DENY_RETAINED], 3);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/status/a1", st.data, st.len, 1),
                    FMQ_DENY_OK); /* a topic it already holds */
    /* alerts: one JSON object naming the publisher, never retained */
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/alerts/a1", alert, strlen(alert), 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/alerts/a1", alert, strlen(alert), 1),
                    FMQ_DENY_RETAIN);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/alerts/a1", forged, strlen(forged), 0),
                    FMQ_DENY_FORGED);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/alerts/a1", "{\"agent\":", 9, 0),
                    FMQ_DENY_MALFORMED);
    /* the plugin's own namespace: no client publishes there, whatever its role */
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/broker/status/a1", st.data, st.len, 0),
                    FMQ_DENY_TOPIC);
    CU_ASSERT_EQUAL(CHECK("coord", FMQ_ACC_WRITE, "fedmq/broker/metrics", "{}", 2, 1),
                    FMQ_DENY_TOPIC);
    /* UNSUBSCRIBE is allowed to an identified client; $share to the coordinator only */
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_UNSUBSCRIBE, "fedmq/iot23/model/global", NULL, 0, 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(
        fmq_policy_check(p, "a2", "a1", FMQ_ACC_UNSUBSCRIBE, "fedmq/#", NULL, 0, 0, 100.0),
        FMQ_DENY_ID_MISMATCH);
    CU_ASSERT_EQUAL(CHECK("coord", FMQ_ACC_SUBSCRIBE, "$share/g/fedmq/+/update/+", NULL, 0, 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(CHECK("coord", FMQ_ACC_SUBSCRIBE, "$share/g/#", NULL, 0, 0), FMQ_DENY_TOPIC);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_SUBSCRIBE, "$share/g/fedmq/+/model/global", NULL, 0, 0),
                    FMQ_DENY_TOPIC);
    /* per-site sensor identities; labels only from labellers */
    CU_ASSERT_EQUAL(fmq_policy_role(p, "site-a.sensors"), FMQ_ROLE_SENSOR);
    CU_ASSERT_EQUAL(fmq_policy_role(p, "sensors"), FMQ_ROLE_AGENT); /* no shared feed any more */
    CU_ASSERT_EQUAL(
        CHECK("site-a.sensors", FMQ_ACC_WRITE, "sensors/site-a/10.0.0.1/conn", rec, strlen(rec), 0),
        FMQ_DENY_OK);
    CU_ASSERT_EQUAL(
        CHECK("site-a.sensors", FMQ_ACC_WRITE, "sensors/site-b/10.0.0.1/conn", rec, strlen(rec), 0),
        FMQ_DENY_TOPIC);
    CU_ASSERT_EQUAL(CHECK("site-a.sensors", FMQ_ACC_WRITE, "sensors/site-a/10.0.0.1/conn", labelled,
                          strlen(labelled), 0),
                    FMQ_DENY_LABEL);
    CU_ASSERT_EQUAL(CHECK("lab.sensors", FMQ_ACC_WRITE, "sensors/lab/10.0.0.1/conn", labelled,
                          strlen(labelled), 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(
        CHECK("site-a.sensors", FMQ_ACC_WRITE, "sensors/site-a/10.0.0.1/conn", rec, strlen(rec), 1),
        FMQ_DENY_RETAIN);
    CU_ASSERT_EQUAL(
        CHECK("site-a.sensors", FMQ_ACC_WRITE, "sensors/site-a/10.0.0.1/conn", "{\"ts\"", 5, 0),
        FMQ_DENY_MALFORMED);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "sensors/a1/10.0.0.1/conn", rec, strlen(rec), 0),
                    FMQ_DENY_TOPIC); /* an agent reads its site's feed, never writes it */
    /* one model dimension per task: iot23 learns 329, other tasks keep their own */
    CU_ASSERT_FATAL(sample_global(&gl, &m) == 0 && fmq_wire_encode_global(&gl, &g) == 0);
    fmq_policy_observe(p, "coord", "fedmq/iot23/model/global", g.data, g.len);
    fmq_policy_observe(p, "coord", "fedmq/other/model/global", g.data, g.len); /* names iot23 */
    CU_ASSERT_EQUAL(fmq_policy_dim(p, "iot23"), 329);
    CU_ASSERT_EQUAL(fmq_policy_dim(p, "other"), 0);
    make_update(&b, "a7", 4);
    CU_ASSERT_EQUAL(CHECK("a7", FMQ_ACC_WRITE, "fedmq/iot23/update/a7", b.data, b.len, 0),
                    FMQ_DENY_DIM);
    {
        struct fmq_update u;
        struct fmq_buf o = {0};
        sample_update(&u);
        strcpy(u.agent, "a7");
        strcpy(u.task, "other");
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &o) == 0);
        CU_ASSERT_EQUAL(CHECK("a7", FMQ_ACC_WRITE, "fedmq/other/update/a7", o.data, o.len, 0),
                        FMQ_DENY_OK);
        fmq_buf_free(&o);
    }
    {
        char json[4096];
        fmq_policy_metrics_json(p, json, sizeof json);
        CU_ASSERT(strstr(json, "\"tasks\":{\"iot23\":{\"dim\":329") != NULL);
        CU_ASSERT(strstr(json, "\"label\":1") != NULL);
        CU_ASSERT(strstr(json, "\"retained\":3") != NULL);
    }
#undef CHECK
    fmq_model_free(&m);
    fmq_policy_free(p);
    fmq_buf_free(&b);
    fmq_buf_free(&st);
    fmq_buf_free(&g);
    free(p);
}

#define CHECK(id, acc, t, pl, n, r) fmq_policy_check(p, id, id, acc, t, pl, n, r, 100.0)
/* Secure aggregation's topics: an agent writes keys, shares and answers on its own secagg topic
 * only, never retained and never a coordinator's step; it reads only its own secagg-to topic;
 * the coordinator reads every agent's and writes to each. */
static void test_policy_secagg(void)
{
    struct fmq_policy *p = calloc(1, sizeof *p);
    struct fmq_buf b = {0};
    struct fmq_secagg_msg m;
    static uint8_t data[5 * FMQ_SECAGG_CIPHER];
    char err[200];
    fmq_policy_default(p);
    CU_ASSERT(fmq_policy_set(p, "coordinators", "coord", err, sizeof err) == 0);
    CU_ASSERT_FATAL(fmq_policy_init(p) == 0);
    memset(&m, 0, sizeof m);
    m.step = FMQ_SA_SHARES;
    strcpy(m.run, "r1-x");
    m.version = 3;
    m.phase = FMQ_PHASE_TRAIN;
    m.data = data;
    m.len = sizeof data;
    CU_ASSERT_FATAL(fmq_wire_encode_secagg(&m, &b) == 0);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/secagg/a1", b.data, b.len, 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/secagg/a2", b.data, b.len, 0),
                    FMQ_DENY_TOPIC);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/secagg/a1", b.data, b.len, 1),
                    FMQ_DENY_RETAIN);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/secagg/a1", b.data, b.len - 3, 0),
                    FMQ_DENY_MALFORMED);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/secagg-to/a2", b.data, b.len, 0),
                    FMQ_DENY_TOPIC);
    m.step = FMQ_SA_INBOX; /* the coordinator's step, from an agent */
    CU_ASSERT_FATAL(fmq_wire_encode_secagg(&m, &b) == 0);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_WRITE, "fedmq/iot23/secagg/a1", b.data, b.len, 0),
                    FMQ_DENY_MALFORMED);
    CU_ASSERT_EQUAL(CHECK("coord", FMQ_ACC_WRITE, "fedmq/iot23/secagg-to/a2", b.data, b.len, 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_SUBSCRIBE, "fedmq/iot23/secagg-to/a1", NULL, 0, 0),
                    FMQ_DENY_OK);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_SUBSCRIBE, "fedmq/iot23/secagg-to/+", NULL, 0, 0),
                    FMQ_DENY_TOPIC);
    CU_ASSERT_EQUAL(CHECK("a1", FMQ_ACC_SUBSCRIBE, "fedmq/iot23/secagg/+", NULL, 0, 0),
                    FMQ_DENY_TOPIC);
    CU_ASSERT_EQUAL(CHECK("coord", FMQ_ACC_SUBSCRIBE, "fedmq/iot23/secagg/+", NULL, 0, 0),
                    FMQ_DENY_OK);
    fmq_policy_free(p);
    fmq_buf_free(&b);
    free(p);
}
#undef CHECK

int init_plugin_tests(void)
{
    static const struct fmq_test t[] = {{"topic matching", test_policy_topics},
                                        {"plugin with broker stubs", test_plugin},
                                        {"update rate", test_policy_rate},
                                        {"hardening (issue 15)", test_policy_hardening},
                                        {"secure aggregation topics", test_policy_secagg},
                                        {NULL, NULL}};
    return fmq_add_suite("plugin", t);
}
