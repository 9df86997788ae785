/* The fedmq broker policy, free of the broker API so it is unit-tested on its own: who may
 * publish, subscribe to and receive what, and which messages reach their subscribers.
 *
 * Identity: the broker maps a client certificate's CN to the username
 * (use_identity_as_username) and, in the production template, the username to the client id
 * (use_username_as_clientid), so no certificate can take another client's id or session. A
 * client whose client id still differs from its username is refused every action. Roles come
 * from the username: the configured coordinators, operators and dashboards; `<site>.sensors`
 * (sensor_suffix) is the sensor feed of one site; any other authenticated identity is an agent
 * whose id is that username.
 *
 * Topics (<root> and tasks as in schemas/topics.md; "+" is any task, never "broker"):
 *   agent u         publish <root>/+/update/u, <root>/+/status/u, <root>/+/alerts/u;
 *                   read <root>/+/model/global, <root>/+/receipt/u and sensors/u/#
 *   coordinator     publish <root>/+/model/global, <root>/+/metrics, <root>/+/receipt/+;
 *                   read <root>/+/update/+, <root>/+/status/+ (also as $share/<group>/...)
 *   operator        read <root>/+/metrics, <root>/+/alerts/#, <root>/+/status/#, <root>/broker/#
 *   dashboard       read <root>/+/metrics, <root>/+/status/# (alert counts), <root>/broker/#
 *   s.sensors       publish sensors/s/#: flow records, with labels only if listed in labellers
 * A subscription is granted only when every topic it can match is readable (so "fedmq/#" is
 * refused to a dashboard, not filtered at delivery); unsubscribing is always allowed. Topics
 * outside <root>/ and sensors/ are left to the broker's other ACL mechanisms (the policy
 * defers). <root>/broker/ is the plugin's own: no client publishes there.
 *
 * Messages, before any subscriber sees one (every refusal counted by reason):
 *   updates   charged to the client's token bucket first (malformed ones too), never retained,
 *             then size, envelope version and structure, task (when configured), codec,
 *             dimension (against that task's global model, learned from the coordinator's
 *             publishes) and agent id (must equal the publisher's identity);
 *   status    its own bucket, a size bound, a status envelope naming the publisher and the
 *             topic's task;
 *   alerts    their own bucket, a size bound, one JSON object whose "agent" is the publisher,
 *             never retained;
 *   sensors   a size bound, one flow record, never retained, labels only from labellers;
 *   retained  at most max_retained distinct retained topics per identity (agents and sensors). */
#ifndef FMQ_POLICY_H
#define FMQ_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/wire.h"

#define FMQ_POLICY_MAX_NAMES 16
#define FMQ_POLICY_RATE_SLOTS 4096
#define FMQ_POLICY_MAX_TASKS 16    /* tasks whose model dimension is tracked */
#define FMQ_POLICY_RETAINED_MAX 16 /* upper bound of max_retained */

enum fmq_access {
    FMQ_ACC_READ = 1,
    FMQ_ACC_WRITE = 2,
    FMQ_ACC_SUBSCRIBE = 4,
    FMQ_ACC_UNSUBSCRIBE = 8
};
enum fmq_role {
    FMQ_ROLE_NONE,
    FMQ_ROLE_AGENT,
    FMQ_ROLE_COORDINATOR,
    FMQ_ROLE_DASHBOARD,
    FMQ_ROLE_SENSOR,
    FMQ_ROLE_OPERATOR
};

/* Why something was refused (index into counters; FMQ_DENY_OK = allowed). */
enum fmq_deny {
    FMQ_DENY_OK = 0,
    FMQ_DENY_DEFER,       /* outside fedmq's topics: not ours to decide */
    FMQ_DENY_ANONYMOUS,   /* no authenticated identity */
    FMQ_DENY_ID_MISMATCH, /* client id differs from the identity */
    FMQ_DENY_TOPIC,       /* the role may not use this topic */
    FMQ_DENY_SIZE,        /* larger than the kind's size bound */
    FMQ_DENY_MALFORMED,   /* does not decode (version, type, codec, structure, JSON) */
    FMQ_DENY_DIM,         /* update dimension differs from its task's model */
    FMQ_DENY_TASK,        /* update for another task */
    FMQ_DENY_FORGED,      /* agent id inside differs from the publisher */
    FMQ_DENY_RATE,        /* over the per-client rate of its kind */
    FMQ_DENY_RETAIN,      /* the retain flag on a kind that is never retained */
    FMQ_DENY_RETAINED,    /* over max_retained distinct retained topics */
    FMQ_DENY_LABEL,       /* a labelled sensor record from an identity that may not label */
    FMQ_DENY_COUNT
};
const char *fmq_deny_name(int d);

enum fmq_kind { FMQ_KIND_UPDATE, FMQ_KIND_STATUS, FMQ_KIND_ALERT, FMQ_KIND_SECAGG, FMQ_KIND_N };

struct fmq_rate_slot {
    uint64_t key; /* hash of the identity, 0 = empty */
    double tokens[FMQ_KIND_N], last[FMQ_KIND_N];
    uint64_t retained[FMQ_POLICY_RETAINED_MAX]; /* hashes of its retained topics, 0 = free */
};

struct fmq_task_dim {
    char task[FMQ_ID_MAX]; /* "" = free */
    uint32_t dim;          /* trainable parameters of its current global model */
    uint64_t version;      /* of the model dim was learned from */
};

struct fmq_policy {
    char root[64];
    char task[FMQ_ID_MAX]; /* "" = any task */
    char coordinators[FMQ_POLICY_MAX_NAMES][FMQ_ID_MAX];
    char dashboards[FMQ_POLICY_MAX_NAMES][FMQ_ID_MAX];
    char operators[FMQ_POLICY_MAX_NAMES][FMQ_ID_MAX];
    char labellers[FMQ_POLICY_MAX_NAMES][FMQ_ID_MAX]; /* sensor identities that may label */
    int ncoordinators, ndashboards, noperators, nlabellers;
    char sensor_suffix[32]; /* "<site><suffix>" is site's sensor feed */
    size_t max_update_bytes, max_status_bytes, max_alert_bytes, max_sensor_bytes;
    size_t max_secagg_bytes; /* secure aggregation's keys, shares and answers */
    uint32_t max_dim;        /* decode bound when a task's model is not yet known */
    double rate[FMQ_KIND_N], burst[FMQ_KIND_N]; /* per client, per kind: per second, bucket */
    int max_retained;                           /* distinct retained topics per identity */
    struct fmq_task_dim dims[FMQ_POLICY_MAX_TASKS];
    uint64_t allowed_updates, denied[FMQ_DENY_COUNT];
    struct fmq_rate_slot rates[FMQ_POLICY_RATE_SLOTS];
    struct fmq_wire_dec dec;
    float *delta; /* owned decode storage, delta_cap floats */
    size_t delta_cap;
    struct fmq_moments moments;  /* decode storage for statistics updates */
    struct fmq_moments bmoments; /* the same, the benign rows (the profile) */
};

void fmq_policy_default(struct fmq_policy *p);
/* plugin_opt_<key> values (broker-config/README.md lists them). Returns 0, or FMQ_EINVAL with
 * err. */
int fmq_policy_set(struct fmq_policy *p, const char *key, const char *value, char *err,
                   size_t errlen);
int fmq_policy_init(struct fmq_policy *p); /* after the options */
void fmq_policy_free(struct fmq_policy *p);

int fmq_policy_role(const struct fmq_policy *p, const char *username);
/* Decides one action. payload/len/retain only for FMQ_ACC_WRITE. now: seconds (monotonic).
 * Returns FMQ_DENY_OK, FMQ_DENY_DEFER, or the reason for refusing; counts refusals. */
int fmq_policy_check(struct fmq_policy *p, const char *client_id, const char *username, int access,
                     const char *topic, const void *payload, size_t len, int retain, double now);
/* A message the broker accepted: the coordinator's global models teach the policy the
 * dimension updates for their task must have. */
void fmq_policy_observe(struct fmq_policy *p, const char *username, const char *topic,
                        const void *payload, size_t len);
/* The dimension learned for a task, 0 = not known. */
uint32_t fmq_policy_dim(const struct fmq_policy *p, const char *task);
/* Counters as one JSON object into buf; returns its length. */
size_t fmq_policy_metrics_json(const struct fmq_policy *p, char *buf, size_t cap);

/* MQTT filter / topic helpers: 1 when topic matches filter; 1 when every topic filter f can
 * match is also matched by pattern g. */
int fmq_policy_match(const char *filter, const char *topic);
int fmq_policy_covers(const char *pattern, const char *filter);

#endif
