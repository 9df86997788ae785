/* The fedmq broker policy, free of the broker API so it is unit-tested on its own: who may
 * publish, subscribe to and receive what, and which update messages reach the coordinator.
 *
 * Identity: the broker maps a client certificate's CN to the username
 * (use_identity_as_username). A client whose client id differs from its username is refused
 * every action, so one certificate cannot take over another agent's session or id. Roles come
 * from the username: the configured coordinators, dashboards and sensor feeds; any other
 * authenticated identity is an agent whose id is that username.
 *
 * Topics (<root> and tasks as in schemas/topics.md; "+" is any task):
 *   agent u      publish <root>/+/update/u, <root>/+/status/u, <root>/+/alerts/u;
 *                read <root>/+/model/global and sensors/u/#
 *   coordinator  publish <root>/+/model/global, <root>/+/metrics, <root>/+/receipt/+;
 *                read <root>/+/update/+, <root>/+/status/+
 *   dashboard    read <root>/+/metrics, <root>/+/alerts/#, <root>/+/status/#, <root>/broker/#
 *   sensor feed  publish sensors/#
 * A subscription is granted only when every topic it can match is readable (so "fedmq/#" is
 * refused to a dashboard, not filtered at delivery). Topics outside <root>/ and sensors/ are
 * left to the broker's other ACL mechanisms (the policy defers).
 *
 * Updates: before any subscriber sees one, its size, envelope version, task (when configured),
 * codec, dimension (against the current global model, learned from the coordinator's retained
 * model messages) and agent id (must equal the publisher's identity) are checked, and each
 * client is held to a token-bucket rate. Every refusal is counted by reason. */
#ifndef FMQ_POLICY_H
#define FMQ_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/wire.h"

#define FMQ_POLICY_MAX_NAMES 16
#define FMQ_POLICY_RATE_SLOTS 4096

enum fmq_access { FMQ_ACC_READ = 1, FMQ_ACC_WRITE = 2, FMQ_ACC_SUBSCRIBE = 4 };
enum fmq_role {
    FMQ_ROLE_NONE,
    FMQ_ROLE_AGENT,
    FMQ_ROLE_COORDINATOR,
    FMQ_ROLE_DASHBOARD,
    FMQ_ROLE_SENSOR
};

/* Why something was refused (index into counters; FMQ_DENY_OK = allowed). */
enum fmq_deny {
    FMQ_DENY_OK = 0,
    FMQ_DENY_DEFER,       /* outside fedmq's topics: not ours to decide */
    FMQ_DENY_ANONYMOUS,   /* no authenticated identity */
    FMQ_DENY_ID_MISMATCH, /* client id differs from the identity */
    FMQ_DENY_TOPIC,       /* the role may not use this topic */
    FMQ_DENY_SIZE,        /* update larger than max_update_bytes */
    FMQ_DENY_MALFORMED,   /* update does not decode (version, type, codec, structure) */
    FMQ_DENY_DIM,         /* update dimension differs from the current model's */
    FMQ_DENY_TASK,        /* update for another task */
    FMQ_DENY_FORGED,      /* agent id inside the update differs from the publisher */
    FMQ_DENY_RATE,        /* over the per-client update rate */
    FMQ_DENY_COUNT
};
const char *fmq_deny_name(int d);

struct fmq_rate_slot {
    uint64_t key; /* hash of the client id, 0 = empty */
    double tokens, last;
};

struct fmq_policy {
    char root[64];
    char task[FMQ_ID_MAX]; /* "" = any task */
    char coordinators[FMQ_POLICY_MAX_NAMES][FMQ_ID_MAX];
    char dashboards[FMQ_POLICY_MAX_NAMES][FMQ_ID_MAX];
    char sensors[FMQ_POLICY_MAX_NAMES][FMQ_ID_MAX];
    int ncoordinators, ndashboards, nsensors;
    size_t max_update_bytes;
    uint32_t max_dim;       /* decode storage when the model is not yet known */
    double rate, burst;     /* updates per second per client, bucket size */
    uint32_t dim;           /* trainable parameters of the current global model, 0 = unknown */
    uint64_t model_version; /* of the model dim was learned from */
    uint64_t allowed_updates, denied[FMQ_DENY_COUNT];
    struct fmq_rate_slot rates[FMQ_POLICY_RATE_SLOTS];
    struct fmq_wire_dec dec;
    float *delta; /* owned decode storage, delta_cap floats */
    size_t delta_cap;
    struct fmq_moments moments; /* decode storage for statistics updates */
    struct fmq_moments bmoments; /* the same, the benign rows (the profile) */
};

void fmq_policy_default(struct fmq_policy *p);
/* plugin_opt_<key> values: root, task, coordinators, dashboards, sensors (comma lists),
 * max_update_bytes, max_dim, update_rate, update_burst. Returns 0, or FMQ_EINVAL with err. */
int fmq_policy_set(struct fmq_policy *p, const char *key, const char *value, char *err,
                   size_t errlen);
int fmq_policy_init(struct fmq_policy *p); /* after the options */
void fmq_policy_free(struct fmq_policy *p);

int fmq_policy_role(const struct fmq_policy *p, const char *username);
/* Decides one action. payload/len only for FMQ_ACC_WRITE. now: seconds (monotonic).
 * Returns FMQ_DENY_OK, FMQ_DENY_DEFER, or the reason for refusing; counts refusals. */
int fmq_policy_check(struct fmq_policy *p, const char *client_id, const char *username, int access,
                     const char *topic, const void *payload, size_t len, double now);
/* A message the broker accepted: the coordinator's global models teach the policy the
 * dimension updates must have. */
void fmq_policy_observe(struct fmq_policy *p, const char *username, const char *topic,
                        const void *payload, size_t len);
/* Counters as one JSON object into buf; returns its length. */
size_t fmq_policy_metrics_json(const struct fmq_policy *p, char *buf, size_t cap);

/* MQTT filter / topic helpers: 1 when topic matches filter; 1 when every topic filter f can
 * match is also matched by pattern g. */
int fmq_policy_match(const char *filter, const char *topic);
int fmq_policy_covers(const char *pattern, const char *filter);

#endif
