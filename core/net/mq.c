/* Paho MQTTAsync wrapper (see mq.h). Paho return codes are translated to FMQ_ENET here and
 * nowhere else. References: Paho C MQTTAsync API, MQTT 3.1.1 (OASIS 2014). */
#include "fedmq/mq.h"

#include "fedmq/config.h"
#include "fedmq/common.h"
#include "mq_mem.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SUBS 32
/* A released slot keeps a buffer of at most SLOT_KEEP bytes (sensor records, statuses and
 * receipts fit, so the steady state allocates nothing) and all idle slots together at most
 * IDLE_KEEP: a large message (a model, an update) gives its memory back once it is consumed, so
 * what the queue holds no longer ratchets up to nslots x the largest message ever seen. */
#define SLOT_KEEP 4096
#define TOPIC_KEEP 256
#define IDLE_KEEP (8u << 20)

struct fmq_mq {
    MQTTAsync client;        /* NULL on a mem:// bus */
    struct fmq_mem_bus *mem; /* mem://NAME: the in-process bus (mq_mem.c), else NULL */
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* queue not empty / not full / connect result */
    struct fmq_mq_msg **slots; /* owned ring of owned slots (slots never move when it grows) */
    size_t nslots, min_slots, max_slots, head, count;
    size_t held;         /* bytes of slot buffers (payload and topic capacities) */
    size_t queued_bytes; /* payload bytes of messages waiting (and the one lent out) */
    size_t max_bytes;    /* queued_bytes bound: beyond it a message waits in Paho */
    int subs_acked;      /* 0 pending, 1 the broker acknowledged the subscriptions, -1 refused */
    int borrowed;        /* slot at head lent to the consumer */
    int woken;
    int closing; /* destroy began: the callback stops waiting for slots */
    int connected;
    int connect_result; /* 0 pending, 1 ok, -1 failed */
    int ever_connected;
    /* the first connect (fmq_mq_connect; Paho reconnects by itself once connected) */
    int attempting;       /* a connect is in flight (caller's thread only) */
    double next_try;      /* fmq_mono() time of the next attempt (caller's thread only) */
    double backoff;       /* seconds to wait after the next failure: 1, 2, 4 ... reconnect_max */
    unsigned failures;    /* failed attempts so far (caller's thread only) */
    int fail_code;        /* Paho's code for the last failure (lock held) */
    char fail_msg[160];   /* Paho's text for it, "" if none (lock held) */
    char *subs[MAX_SUBS]; /* owned filter copies */
    int sub_qos[MAX_SUBS];
    int nsubs;
    struct fmq_mq_opts opts;
    struct fmq_tls_cfg tls;
    char *uri, *client_id, *will_topic, *username, *password; /* owned copies */
    void *will_payload;
    /* live-link back-pressure (fmq_mq_publish): of the handed-over messages neither confirmed
     * nor failed, those Paho no longer holds (deleted unsent: no callback will come), as last
     * measured */
    uint64_t untracked;
    double untracked_at;  /* fmq_mono() of that measurement */
    uint64_t stall_mark;  /* acked + failed when a wait last timed out: no second wait until then */
    unsigned stall_skips; /* publishes since, while stalled: every 256th measures the drops */
    int pub_waiting;
    struct fmq_mq_stats st;
};

void fmq_tls_cfg_default(struct fmq_tls_cfg *t)
{
    memset(t, 0, sizeof *t);
    t->verify_hostname = 1;
    t->reconnect_max = 16;
}

int fmq_tls_cfg_set(struct fmq_tls_cfg *t, const char *k, const char *v, int *rc)
{
    if (!strcmp(k, "tls_ca"))
        *rc = fmq_config_str(t->ca, sizeof t->ca, v);
    else if (!strcmp(k, "tls_cert"))
        *rc = fmq_config_str(t->cert, sizeof t->cert, v);
    else if (!strcmp(k, "tls_key"))
        *rc = fmq_config_str(t->key, sizeof t->key, v);
    else if (!strcmp(k, "tls_verify_hostname"))
        *rc = fmq_parse_bool(v, &t->verify_hostname);
    else if (!strcmp(k, "username"))
        *rc = fmq_config_str(t->username, sizeof t->username, v);
    else if (!strcmp(k, "password"))
        *rc = fmq_config_str(t->password, sizeof t->password, v);
    else if (!strcmp(k, "reconnect_max"))
        *rc = fmq_parse_int(v, 1, 3600, &t->reconnect_max);
    else
        return 0;
    return 1;
}

void fmq_mq_opts_default(struct fmq_mq_opts *o)
{
    memset(o, 0, sizeof *o);
    o->uri = "tcp://127.0.0.1:1883";
    o->client_id = "fedmq";
    o->clean_session = 1;
    o->keepalive = 20;
    o->queue_slots = 4096;
    o->queue_max = 1u << 20;
    o->max_buffered = 1000;
    o->drop_oldest = 1;
    o->queue_bytes_max = 256u << 20;
}

int fmq_topic_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) return 0;
    while (*f) {
        if (f[0] == '#') return 1;
        if (f[0] == '+') {
            while (*t && *t != '/') t++;
            f++;
        } else {
            while (*f && *f != '/') {
                if (*f != *t) return 0;
                f++, t++;
            }
            if (*t && *t != '/') return 0;
        }
        if (!*f) return !*t;
        if (*f == '/') {
            if (*t != '/') return f[1] == '#' && !*t;
            f++, t++;
        }
    }
    return !*t;
}

static void on_subscribed(void *ctx, MQTTAsync_successData *resp)
{
    struct fmq_mq *mq = ctx;
    pthread_mutex_lock(&mq->lock);
    mq->subs_acked = 1;
    mq->st.subacks++;
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
}

static void on_subscribe_failed(void *ctx, MQTTAsync_failureData *resp)
{
    struct fmq_mq *mq = ctx;
    pthread_mutex_lock(&mq->lock);
    mq->subs_acked = -1;
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
    fmq_log(FMQ_LOG_WARN, "mqtt: the broker refused a subscription");
}

static void on_published(void *ctx, MQTTAsync_successData *resp)
{
    struct fmq_mq *mq = ctx;
    pthread_mutex_lock(&mq->lock);
    mq->st.acked++;
    if (mq->pub_waiting) pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
}

static void on_publish_failed(void *ctx, MQTTAsync_failureData *resp)
{
    struct fmq_mq *mq = ctx;
    pthread_mutex_lock(&mq->lock);
    mq->st.failed++;
    if (mq->pub_waiting) pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
}

static void resubscribe(struct fmq_mq *mq)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_subscribed;
    ro.onFailure = on_subscribe_failed;
    ro.context = mq;
    pthread_mutex_lock(&mq->lock);
    mq->subs_acked = mq->nsubs == 0;
    pthread_mutex_unlock(&mq->lock);
    if (mq->nsubs == 0) return;
    if (MQTTAsync_subscribeMany(mq->client, mq->nsubs, mq->subs, mq->sub_qos, &ro) !=
        MQTTASYNC_SUCCESS)
        fmq_log(FMQ_LOG_WARN, "mqtt: subscribe failed");
}

static void on_connected(void *ctx, char *cause)
{
    struct fmq_mq *mq = ctx;
    /* Subscribe before anyone learns the link is up: Paho sends its commands in order and the
     * broker handles a connection's packets in order, so nothing the caller publishes after
     * fmq_mq_connect returns (an agent's "online" status, which tests and operators take as
     * "ready") can reach the broker before the subscriptions. The other way round, an agent
     * could announce itself, miss the first sensor records and never train (CI saw it). */
    resubscribe(mq);
    pthread_mutex_lock(&mq->lock);
    if (mq->ever_connected) mq->st.reconnects++;
    mq->connected = 1;
    mq->ever_connected = 1;
    mq->connect_result = 1;
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
}

static void on_connection_lost(void *ctx, char *cause)
{
    struct fmq_mq *mq = ctx;
    pthread_mutex_lock(&mq->lock);
    mq->connected = 0;
    pthread_cond_broadcast(&mq->cond); /* a publisher waiting for room stops waiting */
    pthread_mutex_unlock(&mq->lock);
    fmq_log(FMQ_LOG_WARN, "mqtt: connection to %s lost; reconnecting", mq->uri);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
    struct fmq_mq *mq = ctx;
    pthread_mutex_lock(&mq->lock);
    mq->connect_result = -1;
    mq->fail_code = resp ? resp->code : MQTTASYNC_FAILURE;
    snprintf(mq->fail_msg, sizeof mq->fail_msg, "%s", resp && resp->message ? resp->message : "");
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
}

/* Condition waits run on CLOCK_MONOTONIC (fmq_mq_create sets the condvar's clock): a wall clock
 * stepped back by hours must not turn a 200 ms poll into hours. */
static void deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

static int grow(struct fmq_mq *mq, void **p, size_t *cap, size_t need)
{
    void *n;
    if (need <= *cap) return 0;
    if (!(n = realloc(*p, need))) return -1;
    mq->held += need - *cap;
    *p = n;
    *cap = need;
    return 0;
}

/* Frees a slot's buffers (lock held). */
static void drop_buffers(struct fmq_mq *mq, struct fmq_mq_msg *s)
{
    mq->held -= s->cap + s->topic_cap;
    free(s->payload);
    free(s->topic);
    s->payload = NULL;
    s->topic = NULL;
    s->cap = s->topic_cap = 0;
}

/* Frees every slot beyond the first n (lock held, queue empty). */
static void trim_ring(struct fmq_mq *mq, size_t n)
{
    for (size_t i = n; i < mq->nslots; i++) {
        drop_buffers(mq, mq->slots[i]);
        free(mq->slots[i]);
        mq->slots[i] = NULL;
    }
    mq->nslots = n;
    mq->head = 0;
}

/* Doubles the ring (lock held), keeping the order: head becomes 0. */
static int grow_ring(struct fmq_mq *mq)
{
    size_t n = mq->nslots * 2 > mq->max_slots ? mq->max_slots : mq->nslots * 2;
    struct fmq_mq_msg **r;
    if (n <= mq->nslots || !(r = calloc(n, sizeof *r))) return FMQ_EFULL;
    for (size_t i = 0; i < mq->nslots; i++) r[i] = mq->slots[(mq->head + i) % mq->nslots];
    for (size_t i = mq->nslots; i < n; i++)
        if (!(r[i] = calloc(1, sizeof **r))) {
            while (i-- > mq->nslots) free(r[i]);
            free(r);
            return FMQ_ENOMEM;
        }
    free(mq->slots);
    mq->slots = r;
    mq->nslots = n;
    mq->head = 0;
    mq->st.queue_grown++;
    return 0;
}

/* Copies a message into the next slot (lock held); FMQ_EFULL when the ring is at its cap. */
static int enqueue_locked(struct fmq_mq *mq, const char *topic, size_t tl, const void *p, size_t n,
                          int retained)
{
    struct fmq_mq_msg *s;
    if (mq->count == mq->nslots && grow_ring(mq) != 0) return FMQ_EFULL;
    if (mq->count > 0 && mq->queued_bytes + n > mq->max_bytes) return FMQ_EFULL;
    s = mq->slots[(mq->head + mq->count) % mq->nslots];
    if (grow(mq, (void **)&s->topic, &s->topic_cap, tl + 1) ||
        grow(mq, (void **)&s->payload, &s->cap, n + 1))
        return FMQ_ENOMEM;
    memcpy(s->topic, topic, tl);
    s->topic[tl] = 0;
    if (n) memcpy(s->payload, p, n);
    s->payload[n] = 0; /* convenience for text payloads; len excludes it */
    s->len = n;
    s->retained = retained;
    mq->count++;
    mq->queued_bytes += n;
    mq->st.msgs_in++;
    mq->st.bytes_in += n;
    pthread_cond_broadcast(&mq->cond);
    return 0;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct fmq_mq *mq = ctx;
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    struct timespec ts;
    int rc;

    pthread_mutex_lock(&mq->lock);
    /* Full: grow the ring (up to queue_max) rather than refuse. A refused message (return 0)
     * stays in Paho's own queue, after which Paho hands over one message per network-loop cycle
     * (with 100 ms sleeps when the socket is idle): a burst then trickles in at tens of messages
     * per second. Waiting here for the consumer is no option either: Paho calls this with its
     * client mutex held, and the consumer's own publishes need that mutex. */
    rc = enqueue_locked(mq, topic, tl, m->payload, (size_t)m->payloadlen, m->retained);
    if (rc == FMQ_EFULL) {
        mq->st.backpressure++; /* at the cap: the slow path is the bound */
        if (!mq->closing) {
            deadline(&ts, 100);
            pthread_cond_timedwait(&mq->cond, &mq->lock, &ts);
            rc = enqueue_locked(mq, topic, tl, m->payload, (size_t)m->payloadlen, m->retained);
        }
        if (rc != 0 && !mq->closing) {
            pthread_mutex_unlock(&mq->lock);
            return 0; /* Paho redelivers later */
        }
    } else if (rc != 0) {
        pthread_mutex_unlock(&mq->lock);
        return 0;
    }
    pthread_mutex_unlock(&mq->lock);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

int fmq_mq_deliver(struct fmq_mq *mq, const char *filter, const char *topic, const void *p,
                   size_t n, int retained)
{
    int match = 0, rc;
    pthread_mutex_lock(&mq->lock);
    if (filter)
        match = fmq_topic_match(filter, topic);
    else
        for (int i = 0; i < mq->nsubs && !match; i++) match = fmq_topic_match(mq->subs[i], topic);
    rc = match && mq->connected ? enqueue_locked(mq, topic, strlen(topic), p, n, retained) : 0;
    if (rc == FMQ_EFULL) mq->st.backpressure++;
    pthread_mutex_unlock(&mq->lock);
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int fmq_mq_create(struct fmq_mq **out, const struct fmq_mq_opts *o)
{
    struct fmq_mq *mq = calloc(1, sizeof *mq);
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    int rc;

    *out = NULL;
    if (!mq) return FMQ_ENOMEM;
    mq->opts = *o;
    if (o->tls) { /* own copy: the caller's may not outlive the client */
        mq->tls = *o->tls;
        mq->opts.tls = &mq->tls;
    }
    mq->stall_mark = UINT64_MAX; /* no wait has timed out */
    mq->nslots = mq->min_slots = o->queue_slots ? o->queue_slots : 4096;
    mq->max_slots = o->queue_max > mq->nslots ? o->queue_max : mq->nslots;
    mq->max_bytes = o->queue_bytes_max ? o->queue_bytes_max : 256u << 20;
    mq->slots = calloc(mq->nslots, sizeof *mq->slots);
    for (size_t i = 0; mq->slots && i < mq->nslots; i++)
        if (!(mq->slots[i] = calloc(1, sizeof **mq->slots))) {
            fmq_mq_destroy(mq);
            return FMQ_ENOMEM;
        }
    mq->uri = strdup(o->uri);
    mq->client_id = strdup(o->client_id);
    mq->will_topic = dup_or_null(o->will_topic);
    mq->username = dup_or_null(o->username                     ? o->username
                               : o->tls && o->tls->username[0] ? o->tls->username
                                                               : NULL);
    mq->password = dup_or_null(o->password                     ? o->password
                               : o->tls && o->tls->password[0] ? o->tls->password
                                                               : NULL);
    if (o->will_topic && o->will_len) {
        mq->will_payload = malloc(o->will_len);
        if (mq->will_payload) memcpy(mq->will_payload, o->will_payload, o->will_len);
    }
    pthread_mutex_init(&mq->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&mq->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (!mq->slots || !mq->uri || !mq->client_id || (o->will_topic && !mq->will_topic)) {
        fmq_mq_destroy(mq);
        return FMQ_ENOMEM;
    }
    if (strncmp(mq->uri, "mem://", 6) == 0) { /* in-process bus: joined at connect */
        *out = mq;
        return 0;
    }
    co.sendWhileDisconnected = 1; /* queued in Paho while the link is down */
    co.maxBufferedMessages = o->max_buffered > 0 ? o->max_buffered : 1000;
    /* full while offline: the oldest goes and sending never blocks, or (drop_oldest = 0) the
     * publish is refused with FMQ_EFULL and the caller waits */
    co.deleteOldestMessages = o->drop_oldest;
    rc = MQTTAsync_createWithOptions(&mq->client, mq->uri, mq->client_id,
                                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        fmq_log(FMQ_LOG_ERROR, "mqtt: cannot create client for %s: %s", mq->uri,
                MQTTAsync_strerror(rc));
        mq->client = NULL;
        fmq_mq_destroy(mq);
        return FMQ_ENET;
    }
    MQTTAsync_setCallbacks(mq->client, mq, on_connection_lost, on_message, NULL);
    MQTTAsync_setConnected(mq->client, mq, on_connected);
    *out = mq;
    return 0;
}

int fmq_mq_subscribe(struct fmq_mq *mq, const char *filter, int qos)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    if (mq->nsubs == MAX_SUBS) return FMQ_EFULL;
    if (!(mq->subs[mq->nsubs] = strdup(filter))) return FMQ_ENOMEM;
    mq->sub_qos[mq->nsubs++] = qos;
    ro.onSuccess = on_subscribed;
    ro.onFailure = on_subscribe_failed;
    ro.context = mq;
    if (mq->mem) {
        fmq_mem_send_retained(mq->mem, mq, filter);
        return 0;
    }
    if (fmq_mq_connected(mq) &&
        MQTTAsync_subscribe(mq->client, filter, qos, &ro) != MQTTASYNC_SUCCESS)
        return FMQ_ENET;
    return 0;
}

/* Why a connect failed, in words: CONNACK return codes (MQTT 3.1.1 section 3.2.2.3) are the
 * broker's answer; negative codes are Paho's own (no route, refused, TLS, timeout). */
static void describe_failure(int code, const char *msg, char *out, size_t n)
{
    static const char *const connack[] = {NULL,
                                          "unacceptable protocol version",
                                          "client identifier rejected",
                                          "server unavailable",
                                          "bad user name or password",
                                          "not authorized"};
    const char *what = code >= 1 && code <= 5 ? connack[code] : MQTTAsync_strerror(code);
    if (msg && *msg)
        snprintf(out, n, "%s (Paho code %d: %s)", msg, code, what);
    else
        snprintf(out, n, "%s (Paho code %d)", what, code);
}

/* Starts one connect attempt; on_connected or on_connect_failure reports how it ended. */
static int start_attempt(struct fmq_mq *mq)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_willOptions wo = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions so = MQTTAsync_SSLOptions_initializer;
    const struct fmq_tls_cfg *tls = mq->opts.tls;
    int rc;
    if (tls && (tls->ca[0] || tls->cert[0])) {
        so.trustStore = tls->ca[0] ? tls->ca : NULL;
        so.keyStore = tls->cert[0] ? tls->cert : NULL;
        so.privateKey = tls->key[0] ? tls->key : NULL;
        so.enableServerCertAuth = 1;
        so.verify = tls->verify_hostname; /* Paho's default is 0: no hostname check */
        so.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
        co.ssl = &so;
    }
    co.keepAliveInterval = mq->opts.keepalive;
    co.cleansession = mq->opts.clean_session;
    co.automaticReconnect = 1;
    co.minRetryInterval = 1;
    co.maxRetryInterval = tls && tls->reconnect_max > 0 ? tls->reconnect_max : 16;
    co.connectTimeout = 5;
    co.context = mq;
    co.onFailure = on_connect_failure;
    co.username = mq->username;
    co.password = mq->password;
    if (mq->will_topic) {
        wo.topicName = mq->will_topic;
        wo.payload.data = mq->will_payload;
        wo.payload.len = (int)mq->opts.will_len;
        wo.message = NULL;
        wo.retained = mq->opts.will_retained;
        wo.qos = 1;
        co.will = &wo;
    }
    pthread_mutex_lock(&mq->lock);
    mq->connect_result = 0;
    pthread_mutex_unlock(&mq->lock);
    rc = MQTTAsync_connect(mq->client, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        fmq_log(FMQ_LOG_ERROR, "mqtt: connect to %s: %s", mq->uri, MQTTAsync_strerror(rc));
        return FMQ_ENET;
    }
    mq->attempting = 1;
    return 0;
}

int fmq_mq_connect(struct fmq_mq *mq, double timeout_s)
{
    double end = fmq_mono() + timeout_s;
    const struct fmq_tls_cfg *tls = mq->opts.tls;
    double max_backoff = tls && tls->reconnect_max > 0 ? tls->reconnect_max : 16;
    struct timespec ts;

    if (!mq->client) { /* mem://NAME */
        if (!mq->mem && !(mq->mem = fmq_mem_attach(mq->uri + 6, mq))) return FMQ_ENOMEM;
        pthread_mutex_lock(&mq->lock);
        mq->connected = mq->ever_connected = mq->subs_acked = 1;
        pthread_mutex_unlock(&mq->lock);
        for (int i = 0; i < mq->nsubs; i++) fmq_mem_send_retained(mq->mem, mq, mq->subs[i]);
        return 0;
    }
    for (;;) {
        double now = fmq_mono();
        int result, code = 0, rc;
        char msg[sizeof mq->fail_msg], why[256];

        pthread_mutex_lock(&mq->lock);
        result = mq->ever_connected ? 1 : mq->connect_result;
        if (result == -1) {
            code = mq->fail_code;
            memcpy(msg, mq->fail_msg, sizeof msg);
            mq->connect_result = 0;
        }
        pthread_mutex_unlock(&mq->lock);
        if (result == 1) {
            if (mq->failures)
                fmq_log(FMQ_LOG_INFO, "mqtt: connected to %s after %u failed attempt(s)", mq->uri,
                        mq->failures);
            mq->attempting = 0;
            return 0;
        }
        if (result == -1 && mq->attempting) { /* this attempt failed: say why, back off */
            mq->attempting = 0;
            mq->failures++;
            if (mq->backoff < 1) mq->backoff = 1;
            mq->next_try = now + mq->backoff;
            describe_failure(code, msg, why, sizeof why);
            fmq_log(FMQ_LOG_WARN, "mqtt: cannot connect to %s: %s; retrying in %.0f s", mq->uri,
                    why, mq->backoff);
            mq->backoff = mq->backoff * 2 > max_backoff ? max_backoff : mq->backoff * 2;
        }
        if (!mq->attempting && now >= mq->next_try) {
            if ((rc = start_attempt(mq)) != 0) return rc;
            continue;
        }
        if (now >= end) return FMQ_ETIMEOUT;
        { /* until the attempt ends, the next one is due, or the caller's time is up */
            double until = end;
            if (!mq->attempting && mq->next_try < until) until = mq->next_try;
            if (until > now + 0.2) until = now + 0.2;
            deadline(&ts, (int)((until - now) * 1000) + 1);
        }
        pthread_mutex_lock(&mq->lock);
        if (mq->connect_result == 0 && !mq->ever_connected)
            pthread_cond_timedwait(&mq->cond, &mq->lock, &ts);
        pthread_mutex_unlock(&mq->lock);
    }
}

int fmq_mq_connected(struct fmq_mq *mq)
{
    int c;
    pthread_mutex_lock(&mq->lock);
    c = mq->connected;
    pthread_mutex_unlock(&mq->lock);
    return c;
}

/* Back-pressure while the link is up. Paho holds at most max_buffered unsent commands and, with
 * deleteOldestMessages, deletes the oldest beyond that without a word, connected or not: a
 * scoring burst of 6,900 alerts lost 4,200 of them on a loaded CI machine. So while connected a
 * publish waits, up to PUB_WAIT_MS, until fewer than three quarters of the buffer are
 * outstanding. The count is kept from the callbacks (cheap) and measured with Paho's pending
 * tokens only when it says "full", since a message Paho deleted never calls back. A wait that
 * times out (a broker that stopped reading) is not repeated until a confirmation arrives, so a
 * stuck link costs one wait, not one per message, and what Paho deletes meanwhile is counted
 * (publish_dropped); offline, buffering is Paho's as before. */
#define PUB_WAIT_MS 2000

static uint64_t outstanding(const struct fmq_mq *mq) /* lock held */
{
    uint64_t done = mq->st.acked + mq->st.failed + mq->untracked;
    return mq->st.msgs_out > done ? mq->st.msgs_out - done : 0;
}

/* Recomputed, never accumulated (lock held): handed over, neither confirmed nor failed, and not
 * in Paho's queue or in flight, given Paho's pending count. What Paho deleted unsent stays in
 * it for good; a message on its way (written, its callback not yet run) only until the next
 * look, which fmq_mq_get_stats takes (at most once a second) while the count is not zero, and
 * fmq_mq_flush once everything went. */
static void measure_untracked(struct fmq_mq *mq, int pending)
{
    uint64_t raw = mq->st.msgs_out - mq->st.acked - mq->st.failed;
    mq->untracked = raw > (uint64_t)pending ? raw - (uint64_t)pending : 0;
    mq->untracked_at = fmq_mono();
}

static void await_room(struct fmq_mq *mq)
{
    uint64_t hi = (uint64_t)(mq->opts.max_buffered > 0 ? mq->opts.max_buffered : 1000) * 3 / 4;
    struct timespec ts;
    int pending, stalled;

    pthread_mutex_lock(&mq->lock);
    stalled = mq->stall_mark == mq->st.acked + mq->st.failed;
    if (!mq->connected || outstanding(mq) < hi || (stalled && (++mq->stall_skips & 255))) {
        pthread_mutex_unlock(&mq->lock);
        return;
    }
    pthread_mutex_unlock(&mq->lock);
    pending = fmq_mq_pending(mq); /* the true count: Paho's queue and its in-flight messages */
    pthread_mutex_lock(&mq->lock);
    measure_untracked(mq, pending);
    if (stalled) { /* still no confirmation: counted, and on without waiting */
        pthread_mutex_unlock(&mq->lock);
        return;
    }
    deadline(&ts, PUB_WAIT_MS);
    mq->pub_waiting++;
    if (mq->connected && outstanding(mq) >= hi) mq->st.publish_waits++;
    while (mq->connected && outstanding(mq) >= hi && !mq->closing)
        if (pthread_cond_timedwait(&mq->cond, &mq->lock, &ts) != 0) {
            mq->stall_mark = mq->st.acked + mq->st.failed;
            break;
        }
    mq->pub_waiting--;
    pthread_mutex_unlock(&mq->lock);
}

int fmq_mq_publish(struct fmq_mq *mq, const char *topic, const void *p, size_t n, int qos,
                   int retained)
{
    MQTTAsync_message m = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int rc;

    if (n > 256u << 20) return FMQ_ETOOBIG;
    m.payload = (void *)p;
    m.payloadlen = (int)n;
    m.qos = qos;
    m.retained = retained;
    if (mq->mem) {
        rc = fmq_mem_publish(mq->mem, topic, p, n, retained);
        pthread_mutex_lock(&mq->lock);
        mq->st.acked += rc == 0;
        mq->st.msgs_out++;
        mq->st.bytes_out += n;
        pthread_mutex_unlock(&mq->lock);
        return rc;
    }
    if (!mq->client) return FMQ_ENET; /* mem:// before connect */
    await_room(mq);
    ro.onSuccess = on_published;
    ro.onFailure = on_publish_failed;
    ro.context = mq;
    rc = MQTTAsync_sendMessage(mq->client, topic, &m, &ro);
    pthread_mutex_lock(&mq->lock);
    if (rc == MQTTASYNC_SUCCESS) {
        mq->st.msgs_out++;
        mq->st.bytes_out += n;
    } else
        mq->st.publish_errors++;
    pthread_mutex_unlock(&mq->lock);
    if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) return FMQ_EFULL;
    if (rc != MQTTASYNC_SUCCESS) {
        fmq_log(FMQ_LOG_WARN, "mqtt: publish to %s failed: %s", topic, MQTTAsync_strerror(rc));
        return FMQ_ENET;
    }
    return 0;
}

int fmq_mq_poll(struct fmq_mq *mq, struct fmq_mq_msg **msg, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&mq->lock);
    if (mq->borrowed) {
        struct fmq_mq_msg *s = mq->slots[mq->head];
        mq->queued_bytes -= s->len;
        if (s->cap > SLOT_KEEP || s->topic_cap > TOPIC_KEEP || mq->held > IDLE_KEEP)
            drop_buffers(mq, s);
        mq->head = (mq->head + 1) % mq->nslots;
        mq->count--;
        mq->borrowed = 0;
        if (mq->count == 0 && mq->nslots > mq->min_slots) trim_ring(mq, mq->min_slots);
        pthread_cond_broadcast(&mq->cond);
    }
    while (mq->count == 0 && !mq->woken)
        if (pthread_cond_timedwait(&mq->cond, &mq->lock, &ts) != 0) break;
    if (mq->woken) {
        mq->woken = 0;
        rc = FMQ_EINVAL;
    } else if (mq->count == 0)
        rc = FMQ_ETIMEOUT;
    else {
        *msg = mq->slots[mq->head];
        mq->borrowed = 1;
    }
    pthread_mutex_unlock(&mq->lock);
    return rc;
}

void fmq_mq_wake(struct fmq_mq *mq)
{
    pthread_mutex_lock(&mq->lock);
    mq->woken = 1;
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
}

int fmq_mq_pending(struct fmq_mq *mq)
{
    MQTTAsync_token *tokens = NULL;
    int pending = 0;
    if (!mq->client) return 0;
    if (MQTTAsync_getPendingTokens(mq->client, &tokens) == MQTTASYNC_SUCCESS && tokens) {
        while (tokens[pending] != -1) pending++;
        MQTTAsync_free(tokens);
    }
    return pending;
}

size_t fmq_mq_queued(struct fmq_mq *mq)
{
    size_t n;
    pthread_mutex_lock(&mq->lock);
    n = mq->count - (size_t)mq->borrowed;
    pthread_mutex_unlock(&mq->lock);
    return n;
}

int fmq_mq_flush(struct fmq_mq *mq, double timeout_s)
{
    double end = fmq_mono() + timeout_s;
    for (;;) {
        if (fmq_mq_pending(mq) == 0) {
            /* all sent: what is still unconfirmed once the last callbacks ran (200 ms at most)
             * was dropped */
            double settle = fmq_mono() + 0.2;
            pthread_mutex_lock(&mq->lock);
            while (mq->st.msgs_out > mq->st.acked + mq->st.failed && fmq_mono() < settle) {
                pthread_mutex_unlock(&mq->lock);
                usleep(2000);
                pthread_mutex_lock(&mq->lock);
            }
            measure_untracked(mq, 0);
            pthread_mutex_unlock(&mq->lock);
            return 0;
        }
        if (fmq_mono() > end) return FMQ_ETIMEOUT;
        usleep(20000);
    }
}

void fmq_mq_get_stats(struct fmq_mq *mq, struct fmq_mq_stats *s)
{
    pthread_mutex_lock(&mq->lock);
    if (mq->untracked > 0 && mq->client && fmq_mono() - mq->untracked_at >= 1.0) {
        int pending; /* a drop was seen: look again, at most once a second (it is not free) */
        pthread_mutex_unlock(&mq->lock);
        pending = fmq_mq_pending(mq);
        pthread_mutex_lock(&mq->lock);
        measure_untracked(mq, pending);
    }
    *s = mq->st;
    s->publish_dropped = mq->untracked; /* what Paho deleted unsent, as last measured */
    s->held_bytes = mq->held;
    s->queued_bytes = mq->queued_bytes;
    s->slots = mq->nslots;
    pthread_mutex_unlock(&mq->lock);
}

int fmq_mq_subscribed(struct fmq_mq *mq)
{
    int r;
    pthread_mutex_lock(&mq->lock);
    r = mq->connected ? mq->subs_acked : 0;
    pthread_mutex_unlock(&mq->lock);
    return r;
}

size_t fmq_mq_queued_on(struct fmq_mq *mq, const char *topic)
{
    size_t n = 0;
    pthread_mutex_lock(&mq->lock);
    for (size_t i = (size_t)mq->borrowed; i < mq->count; i++)
        n += strcmp(mq->slots[(mq->head + i) % mq->nslots]->topic, topic) == 0;
    pthread_mutex_unlock(&mq->lock);
    return n;
}

void fmq_mq_destroy(struct fmq_mq *mq)
{
    if (!mq) return;
    pthread_mutex_lock(&mq->lock);
    mq->closing = 1;
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
    if (mq->mem) fmq_mem_detach(mq->mem, mq);
    if (mq->client) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        if (MQTTAsync_isConnected(mq->client)) {
            MQTTAsync_disconnect(mq->client, &d);
            for (int i = 0; i < 50 && MQTTAsync_isConnected(mq->client); i++) usleep(20000);
        }
        MQTTAsync_destroy(&mq->client);
    }
    for (size_t i = 0; mq->slots && i < mq->nslots; i++) {
        if (!mq->slots[i]) continue;
        free(mq->slots[i]->topic);
        free(mq->slots[i]->payload);
        free(mq->slots[i]);
    }
    for (int i = 0; i < mq->nsubs; i++) free(mq->subs[i]);
    free(mq->slots);
    free(mq->uri);
    free(mq->client_id);
    free(mq->will_topic);
    free(mq->will_payload);
    free(mq->username);
    free(mq->password);
    pthread_mutex_destroy(&mq->lock);
    pthread_cond_destroy(&mq->cond);
    free(mq);
}
