/* MQTT client for the daemons, over Eclipse Paho's async API (MQTTAsync). Paho delivers on its
 * own thread; the callback copies each message into a queue of reusable slots and the daemon
 * takes them on its own thread with fmq_mq_poll. A full queue doubles (a burst is held, not
 * trickled: see on_message) up to queue_max messages; beyond that the callback waits briefly
 * and then asks Paho to redeliver, so nothing is dropped.
 * Subscriptions are remembered and renewed after every automatic reconnect.
 * A mem://NAME URI uses an in-process bus instead (net/mq_mem.h): fedmq-sim runs the coordinator
 * and its agents in one process through these same calls. */
#ifndef FMQ_MQ_H
#define FMQ_MQ_H

#include <stddef.h>
#include <stdint.h>

/* How a client proves who it is. TLS for ssl:// and mqtts:// broker URIs: the CA that signed the
 * broker's certificate, this client's certificate and key (the broker maps the certificate's CN
 * to the username), and hostname verification (on unless turned off: Paho leaves it off by
 * default). Or a username and password (brokers with a password file or an auth plugin; over
 * plain TCP they travel in clear, so only on loopback or inside TLS). */
struct fmq_tls_cfg {
    char ca[256], cert[256], key[256];
    int verify_hostname;
    char username[128], password[256]; /* "" = none */
    int reconnect_max; /* seconds: Paho retries a lost link after 1 s, doubling up to this (16) */
};
void fmq_tls_cfg_default(struct fmq_tls_cfg *t);
/* Config keys tls_ca, tls_cert, tls_key, tls_verify_hostname, username, password,
 * reconnect_max (the broker connection's settings, shared by every program): returns 1
 * when k is one of them (then *rc is the parse result), 0 otherwise. */
int fmq_tls_cfg_set(struct fmq_tls_cfg *t, const char *k, const char *v, int *rc);

struct fmq_mq_opts {
    const struct fmq_tls_cfg *tls; /* NULL: plain TCP (ssl:// URIs then fail to connect) */
    const char *uri;               /* tcp://127.0.0.1:1883, ssl://..., or mem://NAME */
    const char *client_id;
    int clean_session;      /* 1: no broker-side session */
    int keepalive;          /* seconds */
    const char *will_topic; /* NULL: no last will */
    const void *will_payload;
    size_t will_len;
    int will_retained;
    const char *username; /* NULL: none */
    const char *password;
    size_t queue_slots; /* inbound queue slots at start, messages (it shrinks back when empty) */
    size_t queue_max;   /* the queue doubles when full, up to this many messages */
    size_t queue_bytes_max; /* payload bytes the inbound queue holds at most (256 MiB) */
    int max_buffered;       /* outbound messages Paho holds unsent; when full the oldest is
                               dropped (an agent's update is still kept until its receipt and sent
                               again after the reconnect); while connected a publish first waits
                               for room */
    int drop_oldest;        /* 1 (default): as above; 0: a publish to a full buffer is refused with
                               FMQ_EFULL instead, so nothing handed over is ever dropped */
};
void fmq_mq_opts_default(struct fmq_mq_opts *o);

struct fmq_mq_msg {
    char *topic;      /* NUL-terminated, owned by the queue */
    uint8_t *payload; /* owned by the queue; valid until the next fmq_mq_poll */
    size_t len;
    int retained;
    size_t topic_cap, cap; /* slot capacities (a large one is freed once consumed) */
};

struct fmq_mq_stats {
    uint64_t msgs_in, bytes_in;   /* delivered to the daemon */
    uint64_t msgs_out, bytes_out; /* handed to Paho for sending (payload bytes) */
    uint64_t publish_errors;
    uint64_t reconnects;
    uint64_t backpressure;    /* times the inbound queue was full at queue_max */
    uint64_t queue_grown;     /* times the inbound queue doubled */
    uint64_t subacks;         /* subscribe requests the broker acknowledged */
    uint64_t acked;           /* publishes the broker confirmed (QoS 1: PUBACK; QoS 0: sent) */
    uint64_t failed;          /* publishes Paho gave up on (link lost before the confirmation) */
    uint64_t publish_waits;   /* publishes that waited for room in Paho's buffer (link up) */
    uint64_t publish_dropped; /* handed-over publishes Paho deleted unsent (buffer full), as
                                 last measured: a message still on its way may count until the
                                 next look */
    size_t held_bytes;        /* bytes of the inbound queue's buffers, waiting or idle */
    size_t queued_bytes;      /* payload bytes waiting in the inbound queue */
    size_t slots;             /* inbound queue slots now */
};

struct fmq_mq;

/* Returns owned *out (free with fmq_mq_destroy). */
int fmq_mq_create(struct fmq_mq **out, const struct fmq_mq_opts *o);
/* Remembers filter and subscribes now if connected and after every reconnect. */
int fmq_mq_subscribe(struct fmq_mq *mq, const char *filter, int qos);
/* Connects, waiting at most timeout_s; Paho reconnects by itself afterwards. A failed attempt is
 * logged with the broker's or Paho's reason and retried after 1 s, then 2, 4 ... up to
 * reconnect_max seconds. Returns 0 once connected, FMQ_ETIMEOUT when timeout_s passed first (call
 * again to keep trying: the back-off carries over, so a daemon loops on short timeouts and checks
 * its stop flag in between), FMQ_ENET when Paho refused to start an attempt. */
int fmq_mq_connect(struct fmq_mq *mq, double timeout_s);
int fmq_mq_connected(struct fmq_mq *mq);
/* Paho copies the payload; p may be reused at once. FMQ_EFULL when Paho's outbound buffer is
 * full: nothing was queued, the caller decides whether to wait and retry or drop. */
int fmq_mq_publish(struct fmq_mq *mq, const char *topic, const void *p, size_t n, int qos,
                   int retained);
/* Waits up to timeout_ms for a message; *msg is borrowed until the next call. Returns 0,
 * FMQ_ETIMEOUT, or FMQ_EINVAL after fmq_mq_wake. */
int fmq_mq_poll(struct fmq_mq *mq, struct fmq_mq_msg **msg, int timeout_ms);
/* Makes a blocked poll return (signal handlers may not call it; use a flag and short timeouts). */
void fmq_mq_wake(struct fmq_mq *mq);
/* Publishes handed to Paho and not yet completed. */
int fmq_mq_pending(struct fmq_mq *mq);
/* Messages waiting in the inbound queue (not counting the one fmq_mq_poll lent out). */
size_t fmq_mq_queued(struct fmq_mq *mq);
/* Of those, how many are on exactly this topic. */
size_t fmq_mq_queued_on(struct fmq_mq *mq, const char *topic);
/* 1 once the broker acknowledged the subscriptions made at the last (re)connect (retained
 * messages for them follow at once), 0 while pending or disconnected, -1 if it refused one. */
int fmq_mq_subscribed(struct fmq_mq *mq);
/* Waits until every publish so far is acknowledged (QoS 1) or timeout. */
int fmq_mq_flush(struct fmq_mq *mq, double timeout_s);
void fmq_mq_get_stats(struct fmq_mq *mq, struct fmq_mq_stats *s);
/* Disconnects (the broker does not send the will) and frees everything. */
void fmq_mq_destroy(struct fmq_mq *mq);

/* MQTT topic filter match (MQTT 3.1.1 section 4.7), '+' and '#' wildcards. */
int fmq_topic_match(const char *filter, const char *topic);

#endif
