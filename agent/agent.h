/* fedmq-agent: the edge daemon. It subscribes to sensor topics, featurizes and scores every
 * flow with the current global model, publishes explained alerts, keeps a bounded buffer of
 * recent labelled flows split by time into train and validation, and when a new global model
 * arrives trains on it and publishes its update (or, in the statistics phase, its feature
 * moments). agent.c holds the logic, main.c the configuration and the loop. */
#ifndef FMQ_AGENT_H
#define FMQ_AGENT_H

#include <signal.h>

#include "fedmq/codec.h"
#include "fedmq/featurize.h"
#include "fedmq/giot.h"
#include "fedmq/gsfs.h"
#include "fedmq/model.h"
#include "fedmq/mq.h"
#include "fedmq/wire.h"

#define AGENT_MAX_SENSORS 8

/* Test mode only: Byzantine agents for the robustness benchmark and tests. */
enum agent_attack {
    AGENT_ATTACK_NONE = 0,
    AGENT_ATTACK_SIGN_FLIP,    /* send -scale x the honest change (default 1) */
    AGENT_ATTACK_SCALE,        /* send scale x the honest change (default 10) */
    AGENT_ATTACK_LABEL_FLIP,   /* train on inverted labels */
    AGENT_ATTACK_NOISE,        /* send Gaussian noise of standard deviation scale (default 1) */
    AGENT_ATTACK_ALIE,         /* "a little is enough" (Baruch et al. 2019), as colluders without
                                  the others' updates can mount it: every weight of the honest
                                  change moved scale (default 1.5) x its RMS against its own sign,
                                  a small shift all attackers make in nearly the same direction */
    AGENT_ATTACK_REPLACE,      /* model replacement (Bagdasaryan et al. 2020, "How to backdoor
                                  federated learning"): train on inverted labels, send scale
                                  (default 1) x that change and claim attack_count examples
                                  (default 2^40) so the weighted mean becomes the attacker's model */
    AGENT_ATTACK_HUGE_COUNT,   /* sign flip (scale, default 1) claiming attack_count examples
                                  (default 2^40): a plausible update that wins by its weight */
    AGENT_ATTACK_HUGE_VALUES,  /* every value of the update = scale (default 3e38, the largest
                                  float is 3.4e38), claiming attack_count examples (default 2^40) */
    AGENT_ATTACK_STATS_POISON, /* statistics round: every feature's mean = scale (default 1e300)
                                  with variance 0 over attack_count samples (default 1) */
    AGENT_ATTACK_STATS_EXTREME /* statistics round: every mean at the top of its feature's range
                                  (all mass there, variance 0) over attack_count samples
                                  (default 1e12, the wire's limit): moments real features could
                                  have, so no check refuses them; only the count cap and the
                                  robust merge hold them */
};
int agent_attack_parse(const char *s, int *attack);

struct agent_cfg {
    char broker[256]; /* MQTT URI: tcp://, or ssl:// with tls */
    struct fmq_tls_cfg tls;
    char id[FMQ_ID_MAX];                  /* agent id, also the MQTT client id */
    char task[FMQ_ID_MAX];                /* federated task name */
    char root[64];                        /* topic root, "fedmq" */
    char sensors[AGENT_MAX_SENSORS][128]; /* sensor topic filters */
    int nsensors;
    long buffer;                 /* labelled flows kept (ring) */
    double val_fraction;         /* newest share of the buffer held out for validation */
    long min_train;              /* labelled flows needed before training */
    double threshold;            /* alert when P(malicious) >= threshold */
    long max_devices;            /* featurizer device table bound */
    double status_interval;      /* seconds between status messages */
    double update_retry;         /* seconds without a receipt before the update goes again
                                    (doubling up to 16x); 0 = only after a reconnect or a
                                    republished model */
    int clean_session;           /* 0: the broker keeps the session and queues QoS 1 messages
                                    (sensor records, models, receipts) while the agent is away */
    double simulate_uplink_bps;  /* test mode: hold each update len/bps seconds */
    double dp_clip, dp_noise;    /* local DP: clip the update to dp_clip, add N(0, (z dp_clip)^2) */
    int attack;                  /* test mode: enum agent_attack (Byzantine behaviour) */
    double attack_scale;         /* its strength; 0 = the attack's default */
    uint64_t attack_seed;        /* colluding attackers share it (alie) */
    uint64_t attack_count;       /* examples claimed; 0 = the attack's default (most: honest) */
    struct fmq_train_opts train; /* local training */
    /* GIoT (agent_giot.c) */
    long giot_steps;        /* optimizer steps per round */
    int giot_batch;         /* windows per step */
    float giot_lr;          /* AdamW rate when the coordinator announces none */
    double fp_budget;       /* alert threshold: this share of validation flows would alert */
    long giot_val_max;      /* newest flows scored to calibrate and validate */
    double predict_rate;    /* alerts per second that get a predicted next flow (0 = all) */
    int explain_fields;     /* least likely fields named in an alert */
    float giot_cls_weight;  /* weight of the supervised head's loss on labelled flows */
    float giot_cls_balance; /* least share of the rarer labelled class among the head's examples */
    int log_level;
};

struct agent {
    struct agent_cfg cfg;
    const volatile sig_atomic_t *stop; /* set by a signal: long work ends early (may be NULL) */
    struct fmq_mq *mq;                 /* owned */
    struct fmq_wire_dec dec;
    struct fmq_buf out; /* encoded messages, reused */
    struct fmq_featurizer fz;
    /* ring buffer of labelled flows: rows of FMQ_FEAT_DIM raw features */
    float *X, *y;       /* owned, cfg.buffer rows */
    size_t head, count; /* next write slot, rows held */
    uint32_t *idx;      /* owned, cfg.buffer */
    /* models */
    struct fmq_model cur; /* global model in use */
    int have_model;
    char run[FMQ_ID_MAX]; /* coordinator run of cur */
    uint64_t version, round;
    int phase;
    int pending;            /* cur arrived and our contribution is still due */
    struct fmq_model local; /* training copy */
    struct fmq_trainer tr;
    struct fmq_mlp_ws ws; /* scoring, batch 1 */
    float *delta;         /* owned, nparams */
    struct fmq_moments moments;
    struct fmq_client_plan plan; /* what the coordinator asked for this version */
    int selected;                /* sampled for this round */
    float time_budget;           /* seconds of training allowed (sensing), 0 = none */
    double sps;                  /* measured training examples/s, 0 = unknown */
    double gsfs_deadline;        /* monotonic time the GSFS session must end by */
    struct fmq_codec_ws cws;     /* codec workspace, nparams */
    struct fmq_ef ef;            /* error-feedback residual, kept across versions */
    struct fmq_buf tensor;       /* encoded update tensor, reused */
    /* GSFS session: chunked local training between trigger checks */
    int gsfs_active;
    long gsfs_budget; /* optimizer steps left for this version */
    int gsfs_uploads; /* uploads made for this version */
    long gsfs_checks;
    struct fmq_gsfs_trigger trig;
    uint64_t seq;        /* update sequence number */
    struct fmq_buf sent; /* the last update published, kept until its receipt */
    uint64_t sent_version, sent_seq;
    int sent_confirmed;  /* the coordinator's receipt for sent_seq arrived */
    uint64_t reconnects; /* seen in the MQTT client's counters */
    uint64_t resent;
    double sent_at, retry_wait; /* monotonic time of the last (re)send; wait before the next */
    double global_ts;           /* send time of the global model in use */
    /* GIoT */
    int kind;                         /* FMQ_MODEL_* of the model in use, 0 = none */
    size_t dim;                       /* trainable parameters of the model in use */
    struct fmq_giot_stream gs;        /* every flow, tokenized and linked per device */
    struct fmq_gpt gcur, glocal;      /* global and training copy */
    struct fmq_giot_trainer gtr, gsc; /* training (giot_batch) and scoring (batch 1) */
    float gthr;                       /* calibrated NLL threshold (nats) */
    int gthr_ok, gcal_due;
    float *gscore, *glab, *gscratch; /* owned, giot_val_max each */
    struct fmq_ratelimit predict_rl;
    uint64_t predicted;
    /* counters */
    uint64_t flows, labelled, alerts, bad, updates;
    uint64_t bytes_sent; /* update payload bytes */
    struct fmq_ratelimit bad_log;
    double last_status;
    char t_global[256], t_update[256], t_status[256], t_alerts[256], t_receipt[256];
};

void agent_cfg_default(struct agent_cfg *c);
/* One `key = value` setting (agent_cfg.c; fmq_config_fn); agent_bool_keys for fmq_config_args. */
int agent_cfg_set(void *cfg, const char *k, const char *v, char *err, size_t errlen);
extern const char *const agent_bool_keys[];
int agent_init(struct agent *a, const struct agent_cfg *cfg);
void agent_free(struct agent *a);
int agent_connect(struct agent *a);
/* One turn of the loop: handles at most one message, then due work (training, status). */
int agent_step(struct agent *a, int timeout_ms);
void agent_publish_status(struct agent *a, const char *state);

/* shared by agent.c and agent_giot.c */
size_t agent_held(const struct agent *a);
void agent_free_model_state(struct agent *a); /* flows held for training and validation */
void agent_take_plan(struct agent *a, const struct fmq_global *g);
/* Publishes local - cur (n floats) as an update with the announced codec and error feedback. */
int agent_send_delta(struct agent *a, const float *local, const float *cur, size_t n, size_t ntrain,
                     const struct fmq_local_metrics *lm, double sps, int trigger);
size_t agent_json_escape(char *dst, size_t cap, const char *s);

int agent_giot_init(struct agent *a);
void agent_giot_free(struct agent *a);
void agent_giot_free_model(struct agent *a);
int agent_giot_adopt(struct agent *a, struct fmq_gpt *m, const struct fmq_global *g);
void agent_giot_on_flow(struct agent *a, const struct fmq_flow *f);
void agent_giot_due(struct agent *a);
int agent_giot_round(struct agent *a);
/* GSFS sessions with GIoT: chunks of eval_every optimizer steps, the paper's triggers. */
int agent_giot_gsfs_start(struct agent *a);
/* A GSFS session for the current version: budget optimizer steps, the plan's time budget. */
void agent_gsfs_begin(struct agent *a, long budget);
/* Ends the session when its budget, time or upload cap is spent (after each chunk). */
void agent_gsfs_end_check(struct agent *a);
/* The paper's triggers with the announced plan's constants (either model). */
int agent_gsfs_check(struct agent *a, const double *layer_norms, double metric);
void agent_giot_gsfs_chunk(struct agent *a);

#endif
