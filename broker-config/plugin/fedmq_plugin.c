/* fedmq Mosquitto plugin (plugin API v5, Mosquitto 2.0): enforces fmq_policy.h at the broker.
 * ACL_CHECK decides every publish, subscribe and delivery (a refused update is dropped with
 * MOSQ_ERR_ACL_DENIED before any subscriber sees it); MESSAGE lets the policy learn the current
 * global model's dimension per task from the coordinator's publishes; TICK publishes the counters
 * as JSON, retained, on <root>/broker/metrics every metrics_interval seconds. Refusals are logged
 * at a rate limit. Options (plugin_opt_*) are listed in broker-config/README.md. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "fedmq/common.h"
#include "fedmq/config.h"
#include "fmq_policy.h"

static mosquitto_plugin_id_t *plugin_id;
static struct fmq_policy policy;
static double metrics_interval = 10.0, last_metrics;
static struct fmq_ratelimit deny_log = {10.0, 20, 0, 0, 0};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int to_access(int a)
{
    return a == MOSQ_ACL_WRITE         ? FMQ_ACC_WRITE
           : a == MOSQ_ACL_SUBSCRIBE   ? FMQ_ACC_SUBSCRIBE
           : a == MOSQ_ACL_READ        ? FMQ_ACC_READ
           : a == MOSQ_ACL_UNSUBSCRIBE ? FMQ_ACC_UNSUBSCRIBE
                                       : 0;
}

static int on_acl(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    const char *id = mosquitto_client_id(ed->client), *u = mosquitto_client_username(ed->client);
    int acc = to_access(ed->access), d;
    if (!acc) return MOSQ_ERR_PLUGIN_DEFER; /* future kinds: not ours */
    d = fmq_policy_check(&policy, id, u, acc, ed->topic, ed->payload, ed->payloadlen, ed->retain,
                         now_s());
    if (d == FMQ_DENY_DEFER) return MOSQ_ERR_PLUGIN_DEFER;
    if (d == FMQ_DENY_OK) return MOSQ_ERR_SUCCESS;
    if (fmq_ratelimit_ok(&deny_log))
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "fedmq: denied %s %s by client \"%s\" (identity \"%s\"): %s",
                             acc == FMQ_ACC_WRITE       ? "publish to"
                             : acc == FMQ_ACC_READ      ? "delivery of"
                             : acc == FMQ_ACC_SUBSCRIBE ? "subscribe to"
                                                        : "unsubscribe from",
                             ed->topic, id ? id : "", u ? u : "", fmq_deny_name(d));
    return MOSQ_ERR_ACL_DENIED;
}

static int on_message(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_message *ed = event_data;
    fmq_policy_observe(&policy, mosquitto_client_username(ed->client), ed->topic, ed->payload,
                       ed->payloadlen);
    return MOSQ_ERR_SUCCESS;
}

static void publish_metrics(void)
{
    char json[4096], topic[128];
    size_t n = fmq_policy_metrics_json(&policy, json, sizeof json);
    snprintf(topic, sizeof topic, "%s/broker/metrics", policy.root);
    mosquitto_broker_publish_copy(NULL, topic, (int)n, json, 0, true, NULL);
}

static int on_tick(int event, void *event_data, void *userdata)
{
    double t = now_s();
    if (t - last_metrics >= metrics_interval) {
        last_metrics = t;
        publish_metrics();
    }
    return MOSQ_ERR_SUCCESS;
}

/* The entry points: the only symbols the module exports (CMakeLists.txt hides the rest). */
#define FMQ_PLUGIN_API __attribute__((visibility("default")))

FMQ_PLUGIN_API int mosquitto_plugin_version(int supported_version_count,
                                            const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5) return 5;
    return -1;
}

FMQ_PLUGIN_API int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                         struct mosquitto_opt *opts, int opt_count)
{
    char err[200];
    plugin_id = identifier;
    fmq_policy_default(&policy);
    for (int i = 0; i < opt_count; i++) {
        if (!strcmp(opts[i].key, "metrics_interval")) {
            if (fmq_parse_double(opts[i].value, 0.1, 86400, &metrics_interval) != 0) {
                mosquitto_log_printf(MOSQ_LOG_ERR,
                                     "fedmq: plugin_opt_metrics_interval: invalid value \"%s\"",
                                     opts[i].value);
                return MOSQ_ERR_INVAL;
            }
        } else if (fmq_policy_set(&policy, opts[i].key, opts[i].value, err, sizeof err) != 0) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "fedmq: plugin_opt_%s: %s", opts[i].key, err);
            return MOSQ_ERR_INVAL;
        }
    }
    if (fmq_policy_init(&policy) != 0) return MOSQ_ERR_NOMEM;
    last_metrics = now_s();
    if (mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl, NULL, NULL) ||
        mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL) ||
        mosquitto_callback_register(plugin_id, MOSQ_EVT_TICK, on_tick, NULL, NULL))
        return MOSQ_ERR_UNKNOWN;
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "fedmq: plugin loaded: root %s, %d coordinator(s), update limit %zu bytes "
                         "at %.1f/s per client, sensor feeds <site>%s",
                         policy.root, policy.ncoordinators, policy.max_update_bytes,
                         policy.rate[FMQ_KIND_UPDATE], policy.sensor_suffix);
    return MOSQ_ERR_SUCCESS;
}

FMQ_PLUGIN_API int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts,
                                            int opt_count)
{
    mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl, NULL);
    mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
    mosquitto_callback_unregister(plugin_id, MOSQ_EVT_TICK, on_tick, NULL);
    publish_metrics();
    fmq_policy_free(&policy);
    return MOSQ_ERR_SUCCESS;
}
