/* fedmq-agent: the edge daemon. It subscribes to sensor topics and hands every flow to its
 * learners (learner.h: one per model kind, the one whose global model is in use scores it
 * through the site's calibration), publishes explained alerts, and when a new global model
 * arrives trains the learner on it and publishes its update (or, in the statistics phase, its
 * feature moments; in the calibration phase, its sketch). agent.c holds the logic, main.c the
 * configuration and the loop; nothing here depends on the model kind. */
#ifndef FMQ_AGENT_H
#define FMQ_AGENT_H

#include <signal.h>

#include "fedmq/codec.h"
#include "fedmq/gsfs.h"
#include "fedmq/learner.h"
#include "fedmq/mq.h"
#include "fedmq/wire.h"

#define AGENT_MAX_SENSORS 8

/* Test mode only: Byzantine agents for the robustness benchmark and tests. */
enum agent_attack {
    AGENT_ATTACK_NONE = 0,
    AGENT_ATTACK_SIGN_FLIP,     /* send -scale x the honest change (default 1) */
    AGENT_ATTACK_SCALE,         /* send scale x the honest change (default 10) */
    AGENT_ATTACK_LABEL_FLIP,    /* train on inverted labels */
    AGENT_ATTACK_NOISE,         /* send Gaussian noise of standard deviation scale (default 1) */
    AGENT_ATTACK_ALIE,          /* "a little is enough" (Baruch et al. 2019), as colluders without
                                   the others' updates can mount it: every weight of the honest
                                   change moved scale (default 1.5) x its RMS against its own sign,
                                   a small shift all attackers make in nearly the same direction */
    AGENT_ATTACK_REPLACE,       /* model replacement (Bagdasaryan et al. 2020, "How to backdoor
                                   federated learning"): train on inverted labels, send scale
                                   (default 1) x that change and claim attack_count examples
                                   (default 2^40) so the weighted mean becomes the attacker's model */
    AGENT_ATTACK_HUGE_COUNT,    /* sign flip (scale, default 1) claiming attack_count examples
                                   (default 2^40): a plausible update that wins by its weight */
    AGENT_ATTACK_HUGE_VALUES,   /* every value of the update = scale (default 3e38, the largest
                                   float is 3.4e38), claiming attack_count examples (default 2^40) */
    AGENT_ATTACK_STATS_POISON,  /* statistics round: every feature's mean = scale (default 1e300)
                                   with variance 0 over attack_count samples (default 1) */
    AGENT_ATTACK_STATS_EXTREME, /* statistics round: every mean at the top of its feature's range
                                  (all mass there, variance 0) over attack_count samples
                                  (default 1e12, the wire's limit): moments real features could
                                  have, so no check refuses them; only the count cap and the
                                  robust merge hold them */
    AGENT_ATTACK_SECAGG_FORGE   /* secure aggregation: every share it sends is corrupted, then it
                                  drops out (sends no masked update), so its mask key cannot be
                                  recovered: the round fails once and the coordinator leaves it
                                  out of later rosters */
};
int agent_attack_parse(const char *s, int *attack);

#define AGENT_MAX_KINDS 4 /* learners kept ready, one per registered model kind */

struct agent_cfg {
    char broker[256]; /* MQTT URI: tcp://, or ssl:// with tls */
    struct fmq_tls_cfg tls;
    char id[FMQ_ID_MAX];                  /* agent id, also the MQTT client id */
    char task[FMQ_ID_MAX];                /* federated task name */
    char root[64];                        /* topic root, "fedmq" */
    char sensors[AGENT_MAX_SENSORS][128]; /* sensor topic filters */
    int nsensors;
    long buffer;                /* labelled flows (mlp) or flows (giot) kept for training */
    double val_fraction;        /* newest share of the buffer held out for validation */
    long min_train;             /* flows needed before training */
    double threshold;           /* P(malicious) alert threshold when the model has no fleet
                                   rule (calib.h); also the validation metrics' cut */
    long max_devices;           /* featurizer device table bound */
    double status_interval;     /* seconds between status messages (a calibration state change
                                   is sent sooner, at most once a second) */
    double stop_drain;          /* seconds a stop may spend scoring what was already received
                                   (the client acknowledged it: unscored, it would be lost) */
    double update_retry;        /* seconds without a receipt before the update goes again
                                   (doubling up to 16x); 0 = only after a reconnect or a
                                   republished model */
    int clean_session;          /* 0: the broker keeps the session and queues QoS 1 messages
                                   (sensor records, models, receipts) while the agent is away */
    int train;                  /* 0: score and alert only, never train or send updates */
    double simulate_uplink_bps; /* test mode: hold each update len/bps seconds */
    double dp_clip, dp_noise;   /* local DP: clip the update to dp_clip, add N(0, (z dp_clip)^2) */
    int attack;                 /* test mode: enum agent_attack (Byzantine behaviour) */
    int secagg_drop;            /* test mode: AGENT_SA_DROP_* (silent after that step) */
    double attack_scale;        /* its strength; 0 = the attack's default */
    uint64_t attack_seed;       /* colluding attackers share it (alie) */
    uint64_t attack_count;      /* examples claimed; 0 = the attack's default (most: honest) */
    struct fmq_train_opts train_opts; /* local training (mlp) */
    struct fmq_calib_cfg calib;       /* the site's calibration (calib.h); budget is fp_budget */
    /* GIoT */
    struct fmq_learner_cfg learn; /* giot_* steps, batch, lr, head weights; explain_fields,
                                     predict_rate (the rest is set from the fields above) */
    long giot_val_max;            /* newest flows scored to validate */
    int log_level;
    char log_file[256]; /* fedmq-agent's log goes here, reopened on SIGHUP ("" = stderr) */
};

/* Test mode: where a secure-aggregation agent goes silent (a device dropping out). */
enum { AGENT_SA_DROP_NONE, AGENT_SA_DROP_KEYS, AGENT_SA_DROP_SHARES, AGENT_SA_DROP_MASKED };

/* Called with every scored flow and its verdict (fedmq-sim's new-site evaluation); NULL = none. */
typedef void (*agent_verdict_fn)(void *ud, const struct fmq_flow *f, const struct fmq_verdict *v);

struct agent {
    struct agent_cfg cfg;
    const volatile sig_atomic_t *stop; /* set by a signal: long work ends early (may be NULL) */
    struct fmq_mq *mq;                 /* owned */
    struct fmq_wire_dec dec;
    struct fmq_buf out; /* encoded messages, reused */
    /* one learner per model kind; L is the one whose model is in use (NULL: none yet) */
    struct fmq_learner lrn[AGENT_MAX_KINDS];
    int nlrn;
    struct fmq_learner *L;
    int kind;             /* FMQ_MODEL_* in use, 0 = none */
    size_t dim;           /* trainable parameters of the model in use */
    char run[FMQ_ID_MAX]; /* coordinator run of the model in use */
    uint64_t version, round;
    int phase;
    int pending;                 /* a model arrived and our contribution is still due */
    int scoring;                 /* the model in use has been trained (round >= 1): score */
    float *delta;                /* owned, dim */
    struct fmq_client_plan plan; /* what the coordinator asked for this version */
    int selected;                /* sampled for this round */
    float time_budget;           /* seconds of training allowed (sensing), 0 = none */
    double gsfs_deadline;        /* monotonic time the GSFS session must end by */
    struct fmq_codec_ws cws;     /* codec workspace, dim */
    struct fmq_ef ef;            /* error-feedback residual, kept across versions */
    struct fmq_buf tensor;       /* encoded update tensor, reused */
    struct fmq_sketch sketch;    /* the global model's benign quantiles, for this version */
    /* GSFS session: chunked local training between trigger checks */
    int gsfs_active;
    long gsfs_budget; /* optimizer steps left for this version */
    int gsfs_batch;   /* examples per step */
    int gsfs_uploads; /* uploads made for this version */
    long gsfs_checks;
    struct fmq_gsfs_trigger trig;
    uint64_t seq;        /* last update's sequence number: (base version << 16) + seq_k */
    uint64_t seq_base;   /* base version seq_k counts for */
    uint64_t seq_k;      /* updates sent for seq_base, from 1 */
    uint64_t behind;     /* a stale receipt said the coordinator is at this version (same run):
                            an older pending model is not trained on (0 = none) */
    int rewind;          /* a stale receipt said the coordinator is behind our model: take its
                            next model even if not newer */
    struct fmq_buf sent; /* the last update published, kept until its receipt */
    uint64_t sent_version, sent_seq;
    int sent_confirmed;  /* the coordinator's receipt for sent_seq arrived */
    uint64_t reconnects; /* seen in the MQTT client's counters */
    uint64_t resent;
    double sent_at, retry_wait;  /* monotonic time of the last (re)send; wait before the next */
    double global_ts;            /* send time of the global model in use (coordinator's clock) */
    double global_mono;          /* our monotonic time when it arrived */
    double global_anchor;        /* wall time then: ours, or the model's ts when our clock is off
                                    by more than a second (update_header) */
    agent_verdict_fn on_verdict; /* test and evaluation hook */
    void *on_verdict_ud;
    /* counters */
    uint64_t flows, labelled, alerts, bad, updates;
    uint64_t bytes_sent; /* update payload bytes */
    struct fmq_ratelimit bad_log;
    double last_status;
    int status_calib; /* calibration state the last status carried (-1 none) */
    int last_calib;   /* calibration state last logged */
    char t_global[256], t_update[256], t_status[256], t_alerts[256], t_receipt[256];
    char t_secagg[256], t_secagg_in[256];
    struct agent_sa *sa; /* owned: secure aggregation's session (agent_secagg.c), or NULL */
};

void agent_cfg_default(struct agent_cfg *c);
/* One `key = value` setting (agent_cfg.c; fmq_config_fn); agent_bool_keys for fmq_config_args. */
int agent_cfg_set(void *cfg, const char *k, const char *v, char *err, size_t errlen);
extern const char *const agent_bool_keys[];
int agent_init(struct agent *a, const struct agent_cfg *cfg);
/* Long work (training) ends early once *stop is set (a signal handler's flag). */
void agent_set_stop(struct agent *a, const volatile sig_atomic_t *stop);
void agent_free(struct agent *a);
/* Connects to the broker, waiting at most timeout_s: 0 once connected (the "online" status is
 * out), FMQ_ETIMEOUT to call again (failed attempts are logged and retried with back-off). */
int agent_connect(struct agent *a, double timeout_s);
/* One turn of the loop: handles at most one message, then due work (training, status). */
int agent_step(struct agent *a, int timeout_ms);
/* At a stop: handles what the client already received (acknowledged to the broker, so lost if
 * dropped; what the broker still holds waits in a persistent session), until 0.2 s pass with
 * nothing new or `seconds` end; trains nothing. Returns how many messages were left unhandled;
 * *handled says how many were handled. */
size_t agent_drain(struct agent *a, double seconds, size_t *handled);
void agent_publish_status(struct agent *a, const char *state);

/* agent.c, for agent_secagg.c: publishes the masked vector (dim little-endian words) as this
 * round's update, with the usual header, receipts and resends. */
int agent_send_masked(struct agent *a, const uint8_t *words, uint32_t dim, size_t ntrain,
                      const struct fmq_local_metrics *lm);
/* agent_secagg.c: secure aggregation's session (the file's comment) */
struct agent_sa;
/* Starts the session for the model in use with x (dim values, copied): sends the keys. */
int agent_sa_begin(struct agent *a, const float *x, uint32_t dim, size_t ntrain,
                   const struct fmq_local_metrics *lm);
void agent_sa_on_msg(struct agent *a, const struct fmq_mq_msg *m); /* on secagg-to/<id> */
void agent_sa_free(struct agent *a);

#endif
