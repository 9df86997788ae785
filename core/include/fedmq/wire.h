/* Wire format: msgpack envelopes for every message on the bus (schemas/wire.md documents them
 * field by field). Each is a map whose first key is "v" (the envelope version), then "type".
 * Decoders treat input as hostile: size cap, a structural pre-check of every declared length and
 * the nesting depth against the bytes present (msgpack-c reserves memory from declared lengths),
 * no trailing bytes, types, sizes, dimensions and finiteness, with the field named in the error. */
#ifndef FMQ_WIRE_H
#define FMQ_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/calib.h"
#include "fedmq/codec.h"
#include "fedmq/featurize.h"
#include "fedmq/gpt.h"
#include "fedmq/model.h"
#include "fedmq/secagg.h"

#define FMQ_WIRE_VERSION 1
#define FMQ_WIRE_UPDATE_COMPACT 2        /* "v" of the compact update envelope (schemas/wire.md) */
#define FMQ_WIRE_MAX_PAYLOAD (64u << 20) /* bytes; a larger message is refused unread */
#define FMQ_WIRE_MAX_DEPTH 6
#define FMQ_ID_MAX 64 /* agent ids and task names, including NUL */
/* Global model versions above this are refused: an update's sequence number is
 * (base version << 16) + k (schemas/wire.md), which must not overflow. */
#define FMQ_VERSION_MAX (1ULL << 40)

/* Growable output buffer, reused across messages (grows, never shrinks). */
struct fmq_buf {
    uint8_t *data; /* owned */
    size_t len, cap;
};
void fmq_buf_free(struct fmq_buf *b);
/* Copies n bytes of p into b (growing it); b keeps its old contents when that fails. */
int fmq_buf_set(struct fmq_buf *b, const void *p, size_t n);

struct fmq_local_metrics {
    float loss;     /* mean training loss of the last epoch */
    float accuracy; /* on the agent's validation split */
    float f1;       /* on the agent's validation split */
    uint64_t n_val; /* validation examples */
};

struct fmq_update {
    char agent[FMQ_ID_MAX];
    char task[FMQ_ID_MAX];
    uint64_t base_version; /* global model version the delta was computed from */
    uint64_t seq;          /* per-agent sequence number */
    uint64_t n_examples;   /* training examples behind this update */
    double ts;             /* send time, seconds since the epoch */
    struct fmq_local_metrics metrics;
    float sps;      /* optional: local training speed, examples/s (0 = not sent) */
    int trigger;    /* optional: GSFS trigger bits that caused the upload (0 = none) */
    int no_metrics; /* encode: leave metrics, sps and trigger out (client.report 0); decode: they
                       were absent */
    int no_ids;     /* encode: leave agent and task out, the topic names them (client.ids 0);
                       decode: both were absent, agent and task are "" until fmq_update_topic_ids */
    int compact;    /* envelope version 2 (client.envelope 2): one-letter keys, the tensor's keys
                       at the top level, never agent or task (implies no_ids) */
    int has_stats;  /* stats present (normalisation round) */
    int has_sketch; /* sketch present: the agent's benign score quantiles under base_version */
    struct fmq_sketch sketch;
    struct fmq_moments *stats;  /* borrowed storage, required when decoding */
    int has_benign;             /* stats also hold the benign rows' own moments (the profile) */
    struct fmq_moments *benign; /* borrowed storage, required when decoding such stats */
    int codec;                  /* enum fmq_codec; FMQ_CODEC_NONE when no tensor */
    uint32_t dim;               /* tensor length */
    float *delta;               /* borrowed storage of delta_cap floats */
    size_t delta_cap;
    const uint8_t *tensor; /* encode: codec payload (fmq_codec_encode); NULL = dense-f32 of delta */
    size_t tensor_len;
};

/* stats: agents send feature moments; train: model updates; calib: only sketches of the
 * model as it is (after the last training round), for an exact fleet rule. */
enum fmq_phase { FMQ_PHASE_STATS = 1, FMQ_PHASE_TRAIN = 2, FMQ_PHASE_CALIB = 3 };

/* What the coordinator asks of every agent for the next round ("client" in the global model). */
struct fmq_client_plan {
    float lr;          /* local learning rate eta_l; 0 = the agent's own setting */
    float proximal_mu; /* FedProx term; 0 = none */
    int codec;         /* enum fmq_codec for the update tensor */
    float ratio;       /* top-k fraction */
    int block;         /* int8 block size */
    int stochastic;    /* int8 stochastic rounding */
    int gsfs;          /* event-triggered uploads (GSFS) instead of one per round */
    float alpha, beta; /* GSFS norm trigger */
    float delta_perf;  /* GSFS performance trigger */
    int eval_every;    /* GSFS: mini-batches between checks */
    int warmup;        /* GSFS: checks before the norm trigger may fire */
    int max_uploads;   /* GSFS: uploads per global version, 0 = no cap */
    int report;        /* agents send validation metrics with updates (1) or not (0) */
    int ids;           /* agents name agent and task in updates (1) or leave them to the topic */
    int envelope;      /* update envelope version: 1, or 2 (compact, FMQ_WIRE_UPDATE_COMPACT) */
    int personal;      /* enum fmq_personal: how a site with labels personalises its scoring */
    int secagg;        /* secure aggregation (secagg.h): agents take part in the masking
                          protocol on the secagg topics and send masked-u32 updates */
};
/* Personalisation (learner.h): none, or finetune: a site with labelled benign validation flows
 * scores with its own fine-tuned copy of the global model (the local model of its last round,
 * trained from the global one) at thresholds set on those flows. */
enum fmq_personal { FMQ_PERSONAL_NONE = 0, FMQ_PERSONAL_FINETUNE = 1 };
void fmq_client_plan_default(struct fmq_client_plan *c);

#define FMQ_MAX_SELECTED 1024

/* A per-agent override from network and device sensing ("plan" in the global model). */
struct fmq_agent_plan {
    char agent[FMQ_ID_MAX];
    int codec;         /* enum fmq_codec */
    float ratio;       /* top-k fraction */
    float time_budget; /* seconds of local training allowed; 0 = no limit */
};

struct fmq_global {
    char task[FMQ_ID_MAX];
    char run[FMQ_ID_MAX]; /* coordinator run id: versions compare only within one run */
    uint64_t version;     /* increases by one per aggregation */
    uint64_t round;       /* training round that produced it */
    int phase;            /* enum fmq_phase: what agents must send next */
    char strategy[32];    /* aggregation strategy name */
    double ts;
    struct fmq_model *model;       /* borrowed: config, params and normalisation (mlp, logreg) */
    struct fmq_gpt *gpt;           /* borrowed: a GIoT model instead of `model` */
    int giot_context;              /* GIoT: flows of device context per window */
    int kind;                      /* decode: FMQ_MODEL_* of the message */
    struct fmq_client_plan client; /* decode: defaults when the message has none */
    /* Agents sampled for this round (fraction_fit); nselected 0 = every agent. Encode: ids
     * from `selected` (borrowed). Decode: only whether `self` is among them. */
    const char (*selected)[FMQ_ID_MAX];
    int nselected;
    const char *self;  /* decode: the agent's own id, or NULL */
    int self_selected; /* decode: 1 when nselected is 0 or self is listed */
    /* Per-agent plans (sensing). Encode: nplans entries of `plans` (borrowed). Decode: only
     * the entry for `self`, into self_plan (has_self_plan 1 when present). */
    const struct fmq_agent_plan *plans;
    int nplans;
    struct fmq_agent_plan self_plan;
    int has_self_plan;
    struct fmq_rule rule; /* the fleet alert rule (calib.h); rule.channels 0 = none */
};

struct fmq_status {
    char agent[FMQ_ID_MAX];
    char task[FMQ_ID_MAX];
    char state[16];         /* online, training, offline */
    uint64_t model_version; /* global version in use */
    uint64_t flows;         /* sensor records accepted */
    uint64_t labelled;      /* of which carried labels */
    uint64_t buffered;      /* records in the training buffer */
    uint64_t alerts;        /* alerts published */
    uint64_t bad;           /* malformed messages dropped */
    char calib[16];         /* calibration state (fmq_calib_state_name); "" = not reported */
    double ts;
};

/* Valid ids: 1..63 of [A-Za-z0-9._-], safe as one MQTT topic level. */
int fmq_id_valid(const char *s);

int fmq_wire_encode_update(const struct fmq_update *u, struct fmq_buf *out);
int fmq_wire_encode_global(const struct fmq_global *g, struct fmq_buf *out);
/* status.c: JSON, what agents send (dashboards read it as it is) */
int fmq_wire_encode_status(const struct fmq_status *s, struct fmq_buf *out);
/* wire.c: the msgpack form agents sent before; still decoded */
int fmq_wire_encode_status_msgpack(const struct fmq_status *s, struct fmq_buf *out);

/* Decoder context: holds msgpack-c's zone, reused across messages. */
struct fmq_wire_dec {
    void *zone; /* owned msgpack_zone */
};
int fmq_wire_dec_init(struct fmq_wire_dec *d);
void fmq_wire_dec_free(struct fmq_wire_dec *d);

/* The decoders fill *out; strings are copied, so nothing points into buf afterwards.
 * decode_update: expected_dim 0 accepts any dim up to u->delta_cap.
 * decode_global: allocates g->model (fmq_model_init) if g->model->params is NULL, else requires
 * the same config as the model it is given (so a model of another shape is refused). A GIoT
 * model decodes into g->gpt the same way; a decoder given no storage of the message's kind
 * refuses it. On failure
 * the model may be partly overwritten: decode into a scratch model and adopt it on success. */
int fmq_wire_decode_update(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                           uint32_t expected_dim, struct fmq_update *out, char *err, size_t errlen);
int fmq_wire_decode_global(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                           struct fmq_global *out, char *err, size_t errlen);
/* A status in JSON (status.c; at most 4 KiB) or msgpack (the older form, wire.c). */
int fmq_wire_decode_status(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                           struct fmq_status *out, char *err, size_t errlen);
int fmq_wire_decode_status_msgpack(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                                   struct fmq_status *out, char *err, size_t errlen);
/* Fills an update's absent agent and task from its topic, <root>/<task>/update/<agent>, and
 * checks present ones against it. Returns 0, FMQ_EFORMAT (the topic is not an update topic or
 * names an invalid id) or FMQ_EINVAL (the envelope names another agent or task than the topic);
 * err says which. */
int fmq_update_topic_ids(struct fmq_update *u, const char *topic, char *err, size_t errlen);
/* Reads only "v" and "type" (after the same structural checks). type has 16 bytes. */
int fmq_wire_peek(struct fmq_wire_dec *d, const uint8_t *buf, size_t len, char *type, char *err,
                  size_t errlen);

/* Structural check of one msgpack object spanning exactly len bytes (wire_check.c). On failure
 * *where is the byte offset of the problem. */
int fmq_wire_check(const uint8_t *buf, size_t len, int max_depth, size_t *where);

/* Secure aggregation over the bus (secagg.h; topics and steps in schemas/topics.md). Agents
 * send keys, shares and answers on <root>/<task>/secagg/<agent>; the coordinator answers each
 * on <root>/<task>/secagg-to/<agent> with the roster (its index, the round's parameters and
 * every agent's public keys), its inbox (the shares addressed to it) and the survivors; the
 * masked vector itself travels as an update with codec masked-u32. run, version and phase name
 * the round the message belongs to. */
enum fmq_sa_step {
    FMQ_SA_KEYS = 1,  /* agent: its two public keys, 64 bytes */
    FMQ_SA_SHARES,    /* agent: n encrypted shares, FMQ_SECAGG_CIPHER each, by recipient */
    FMQ_SA_ANSWER,    /* agent: n round-3 answers, FMQ_SECAGG_ANSWER each */
    FMQ_SA_ROSTER,    /* coordinator: n x 64 bytes of public keys, with idx, n, t, dim, ... */
    FMQ_SA_INBOX,     /* coordinator: the n shares addressed to this agent, by sender */
    FMQ_SA_SURVIVORS, /* coordinator: n bytes, 1 where the agent's masked update arrived */
};
#define FMQ_WIRE_SA_MAX (64u << 10) /* a secagg message's bytes (255 x 97 shares fit) */
struct fmq_secagg_msg {
    int step; /* enum fmq_sa_step */
    char run[FMQ_ID_MAX];
    uint64_t version; /* global model version the round started from */
    int phase;        /* FMQ_PHASE_STATS or FMQ_PHASE_TRAIN */
    /* roster only */
    int idx, n, t;
    uint32_t dim;        /* the masked vector's length */
    int frac_bits;       /* fixed point */
    float clip;          /* each coordinate clipped to +-clip */
    float l2;            /* agents clip their update's L2 norm to this first (DP-FedAvg), 0 = no */
    const uint8_t *data; /* encode: borrowed; decode: points into the caller's buffer */
    size_t len;
};
const char *fmq_secagg_step_name(int step); /* "keys", ..., "survivors"; "?" for others */
int fmq_wire_encode_secagg(const struct fmq_secagg_msg *s, struct fmq_buf *out);
/* n: the roster's size the data is checked against (ignored for keys and the roster, which
 * carries its own; 0: any size from 2 to 255 agents, as the broker checks); the data is copied
 * into `data`. */
int fmq_wire_decode_secagg(struct fmq_wire_dec *d, const uint8_t *buf, size_t len, int n,
                           struct fmq_secagg_msg *s, struct fmq_buf *data, char *err,
                           size_t errlen);

#endif
