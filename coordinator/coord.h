/* fedmq-coordinator: consumes agent updates, aggregates them round by round, republishes the
 * versioned global model (retained) and per-round metrics (JSON) for dashboards, and evaluates
 * every global model on a held-out test set. Round 0 is the statistics phase: agents send
 * feature moments, merged into the normalisation that then travels inside the model. coord.c
 * holds the round logic, main.c the configuration and the loop. */
#ifndef FMQ_COORD_H
#define FMQ_COORD_H

#include <stdio.h>

#include "fedmq/codec.h"
#include "fedmq/featurize.h"
#include "fedmq/giot.h"
#include "fedmq/gsfs.h"
#include "fedmq/learner.h"
#include "fedmq/sensing.h"
#include "fedmq/model.h"
#include "fedmq/mq.h"
#include "fedmq/robust.h"
#include "fedmq/dp.h"
#include "fedmq/strategy.h"
#include "fedmq/wire.h"

#define COORD_MAX_AGENTS 1024
#define COORD_MAX_TEST 16

struct coord_cfg {
    char broker[256];
    struct fmq_tls_cfg tls;
    char task[FMQ_ID_MAX];
    char root[64];
    char client_id[FMQ_ID_MAX];
    struct fmq_model_config model; /* kind, hidden sizes, window */
    uint64_t seed;                 /* initial parameters */
    long rounds;                   /* training rounds, 0 = run until stopped */
    long min_participants;         /* updates needed to close a round at its deadline */
    long expected_agents;          /* close as soon as this many arrived; 0 = agents online */
    double deadline;               /* seconds a round waits for stragglers */
    double round_interval;         /* a training round closes no sooner than this many seconds
                                      after it opened (always-on pacing; 0 = as soon as ready) */
    double republish;              /* a round still open this long after its deadline publishes
                                      its model again (then doubling, up to 16x); 0 = never */
    int strategy;                  /* enum fmq_strategy_kind */
    struct fmq_strategy_params sp; /* server optimizer and announced client settings */
    double fraction_fit;           /* share of online agents sampled per round (sync) */
    struct fmq_client_plan plan;   /* codec and GSFS trigger settings for agents */
    struct fmq_gsfs_params gsfs;   /* GSFS coordinator settings */
    int sensing;                   /* per-agent codec and time budget from link estimates */
    struct fmq_sensing_params sensing_p;
    double server_lr; /* FedAvg server step, 1.0 = plain FedAvg */
    int robust;       /* enum fmq_robust_rule for synchronous rounds */
    double robust_clip, robust_trim, robust_f, robust_krum_tau, robust_krum_cos, robust_majority;

    /* no client's numbers are trusted (README, Security) */
    double count_cap;       /* example counts capped at count_cap x the round's median (robust.h,
                               also in the statistics round and the GSFS pool); 0 = off */
    double max_update_norm; /* an update whose L2 norm exceeds this is refused (receipt
                               "refused"); 0 = no bound */
    double max_step_norm;   /* a global model that moved further than this (L2) from the last
                               is not published: the round keeps the old model; 0 = no bound */

    /* secure aggregation (coord_secagg.c): the coordinator learns only each round's sum */
    int secure_agg;          /* on: statistics and training rounds run the masking protocol */
    double secagg_threshold; /* t = ceil(threshold x roster): shares needed to unmask */
    long secagg_min;         /* agents a secure round needs (fewer: it fails, nothing revealed) */
    double secagg_timeout;   /* seconds each step after the roster waits for the agents */
    double secagg_clip;      /* agents clip each coordinate of their change to +-clip */

    double dp_clip;        /* DP-FedAvg: L2 bound of every update, 0 = off */
    double dp_noise;       /* noise multiplier z: std z x dp_clip / m on the mean of m updates */
    double dp_delta;       /* delta of the reported (epsilon, delta) */
    double dp_epsilon_max; /* privacy budget: training stops before epsilon passes it; 0 = none */
    double threshold;      /* decision threshold for test metrics */
    double fp_budget;      /* the fleet rule's false-positive budget (calib.h) */
    int calib_round;       /* after the last training round, a calibration round (phase calib) */
    long rule_min_benign;  /* benign validation flows a site's sketch needs to count */
    char test[COORD_MAX_TEST][256]; /* labelled conn logs for evaluation */
    int ntest;
    double test_from;       /* evaluate on each file's flows after this time fraction */
    char metrics_file[256]; /* also append each round's metrics JSON here ("" = no) */
    /* GIoT (model = giot) */
    struct fmq_gpt_config giot; /* layers, heads, channels (vocab and max_seq derived) */
    int giot_context;           /* flows of device context per window */
    int giot_head;              /* add the supervised head (benign/malicious) */
    int lora_rank;              /* adapter mode when > 0: agents train and send adapters only */
    float lora_alpha;
    double giot_lr;       /* AdamW rate announced to agents */
    char init_model[256]; /* start from this saved global model (the frozen base) */
    char model_out[256];  /* save every global model here (atomic replace) */
    char state_file[256]; /* crash-safe state: resume from it after a restart ("" = none) */
    double resume_wait;   /* seconds at start to learn the retained model's version (its SUBACK) */
    long silent_rounds;   /* an agent that sent nothing for this many rounds it was due in stops
                             counting as online until it sends again (0 = never forget) */
    long eval_max;        /* evaluate on at most this many test flows (0 = all) */
    int log_level;
    char log_file[256]; /* fedmq-coordinator's log goes here, reopened on SIGHUP ("" = stderr) */
    int summary;        /* print the round table to stdout on exit (deploy/demo.sh) */
};

struct coord_agent {
    char id[FMQ_ID_MAX];
    struct fmq_link_est link;   /* network and device sensing */
    uint64_t n_examples;        /* examples behind its last accepted update */
    int online;                 /* last status said online */
    int in_round;               /* update accepted this round */
    uint64_t updates;           /* accepted updates, all rounds */
    uint64_t last_seq;          /* newest update accepted: (last_base, last_seq); an update whose */
    uint64_t last_base;         /* (base, seq) is not above it is a replay (coord_key_after) */
    uint64_t app_seq, app_base; /* newest update aggregated into the model (saved with it) */
    uint64_t rcpt_seq, rcpt_base; /* newest update confirmed "applied" to the agent */
    double last_heard;            /* monotonic time of its last update or status */
    int missed;                   /* consecutive closed rounds it was due in and sent nothing */
    int calib;                    /* calibration state its status reports, -1 unknown */
    int refused;                  /* an update of this round was refused: it has had its say */
};

#define COORD_HISTORY 4096

struct coord_round {
    uint64_t round, version;
    int participants;
    double f1, accuracy, precision, recall;
    uint64_t bytes_up, bytes_down;
    double secs;
};

/* One evaluation of the global model on the test set. */
struct coord_eval {
    struct fmq_confusion cm, per_file[COORD_MAX_TEST];  /* at the configured threshold */
    struct fmq_confusion dep, dep_file[COORD_MAX_TEST]; /* at the deployed (fleet) rule */
    double recall_at_fpr;        /* at 1% false-positive rate, -1 without malicious test flows */
    double head_recall_at_fpr;   /* GIoT's supervised head, -1 without one */
    double either_recall_at_fpr; /* either channel, at 1% together; -1 without two */
    double recall_ch[FMQ_NCH];   /* each channel's own, -1 without it */
    float threshold;             /* decision threshold used for cm */
    double eval_s;               /* wall seconds to score the test set (the paper's latency) */
    uint64_t model_hash;         /* FNV-1a of the trainable parameters: equal models, equal hash */
};

struct coord {
    struct coord_cfg cfg;
    int kind;         /* FMQ_MODEL_* */
    size_t dim;       /* trainable parameters: what updates carry */
    float *trainable; /* borrowed view: model.params, gpt.params or gpt.lora */
    struct fmq_gpt gpt;
    struct fmq_learner ev;    /* evaluation: the agents' scoring path over the test flows */
    uint32_t *tslot;          /* owned: test rows -> ev slots */
    float *tscore;            /* owned: ntest x FMQ_NCH channel scores */
    float *tch;               /* owned: the supervised then the novelty scores, 2 x ntest */
    float *tscratch;          /* owned: 3 x ntest */
    struct fmq_rule_acc racc; /* this round's sketches */
    struct fmq_rule rule;     /* the fleet rule the next global model carries */
    struct fmq_mq *mq;
    struct fmq_wire_dec dec;
    struct fmq_buf out;
    struct fmq_model model;       /* the global model */
    struct fmq_robust rob;        /* every update of the round, aggregated by cfg.robust */
    struct fmq_server_opt opt;    /* server-side step of the chosen strategy */
    struct fmq_gsfs_pool pool;    /* GSFS */
    double *mean;                 /* aggregate change, nparams */
    char (*selected)[FMQ_ID_MAX]; /* owned: agents sampled for this round */
    int nselected;
    struct fmq_rng rng; /* sampling */
    struct fmq_rng dp_rng;
    uint64_t dp_rounds;           /* noisy aggregations so far */
    double dp_rdp[FMQ_DP_ORDERS]; /* composed Renyi DP per order */
    double dp_eps;
    int dp_clipped; /* updates clipped in the last round */
    int codec_last;
    struct fmq_agent_plan *plans;   /* owned: tailored plans announced with the model */
    int nplans;                     /* codec of the last accepted update, for the metrics */
    struct fmq_moments moments;     /* the statistics round's merge */
    struct fmq_moments bmoments;    /* the same of the kept agents' benign rows: the profile */
    struct fmq_moments upd_moments; /* decode storage */
    struct fmq_moments upd_bmoments;
    float *delta; /* decode storage, nparams */
    float *yt;    /* owned: test labels, 1 malicious */
    size_t ntest;
    size_t test_start[COORD_MAX_TEST + 1]; /* first test row of each file */
    char test_name[COORD_MAX_TEST][96];    /* file base names, JSON-safe */
    char run[FMQ_ID_MAX];
    uint64_t version, round;
    int phase;
    double round_start;
    double linked_since; /* monotonic time the broker link last came up, 0 while it is down */
    int deadline_warned;
    int deadline_expired;        /* coord_expire_deadline: the open round's deadline has passed */
    int val_n;                   /* agents' own validation metrics in this round's updates */
    double val_accuracy, val_f1; /* sums */
    double last_publish, republish_wait; /* monotonic; wait before publishing the model again */
    struct coord_agent agents[COORD_MAX_AGENTS];
    int nagents;
    int participants;
    uint64_t examples;
    /* traffic, payload bytes */
    uint64_t bytes_up_round, bytes_up_total, bytes_down_total;
    uint64_t bytes_in_round; /* update payloads received this round, refused ones too */
    int updates_round;       /* updates accepted this round (GSFS: repeats included) */
    size_t last_model_bytes;
    uint64_t rej_stale, rej_dup, rej_bad, rej_task, rej_phase, rej_replay;
    struct fmq_ratelimit bad_log;
    int done;                               /* configured rounds finished */
    FILE *metrics;                          /* owned, may be NULL */
    struct coord_round hist[COORD_HISTORY]; /* first COORD_HISTORY rounds, for the summary */
    int nhist;
    char t_global[256], t_update_filter[256], t_status_filter[256], t_metrics[256];
    char t_secagg_filter[256];
    struct coord_sa *sa; /* owned: secure aggregation's round state (NULL when off) */
    int sa_out_of_range; /* values of the last secure training sum clamped (a liar's) */
    uint64_t reconnects; /* seen in the MQTT client's counters */
    /* crash safety (coord_commit): save durably, then publish, then confirm */
    uint64_t published_version; /* newest version on the wire from this process (0 = none) */
    uint64_t saved_version;     /* version of the newest state saved durably (0 = none) */
    uint64_t save_failures;     /* state saves that failed, all time */
    int blocked;                /* a closed round waits for its state to be saved */
    double blocked_since, retry_at, retry_wait; /* monotonic */
    double blocked_s;      /* seconds the last committed round waited for its save */
    char save_error[160];  /* why the last save failed ("" = it did not) */
    char *round_body;      /* owned: the closed round's metrics JSON, without its "state" */
    int round_new;         /* round_body is not yet published */
    char *round_json;      /* owned: the committed round's metrics (saved with the state) */
    struct fmq_buf pub;    /* the global model envelope last published */
    uint64_t seen_version; /* highest version seen on the model topic, and its run */
    char seen_run[FMQ_ID_MAX];
    struct fmq_ratelimit wire_log;
    char t_coord[256];     /* <root>/<task>/coordinator: retained status (JSON) */
    uint64_t wire_ahead;   /* global models seen on the topic ahead of ours */
    char test_exit_at[32]; /* FMQ_TEST_EXIT_AT=POINT[:N]: _exit(70) there (tests only) */
    long test_exit_n;

    /* checks on what clients send (README, Security) */
    struct fmq_moments *stats_in;  /* owned: this statistics round's accepted moments */
    struct fmq_moments *stats_ben; /* owned: the moments of their benign rows (n 0: none) */
    int *stats_who, *stats_kept;   /* owned: their agent (index), and whether merged */
    int nstats, stats_cap, stats_used, stats_capped;
    float *guard_theta;        /* owned: the model before a step, to take it back */
    double *guard_m, *guard_v; /* owned: the server optimizer's state before it */
    double step_norm;          /* L2 of the last step applied, or refused */
    int guard_refused;         /* the last round's aggregate was not published */
    char guard_why[200];       /* why */
    uint64_t guard_total;      /* aggregates never published */
    double *norms;             /* owned: this round's accepted update norms */
    int nnorms;                /* of COORD_MAX_AGENTS */
    int refused_round;         /* updates refused this round by their numbers */
    uint64_t rej_range;        /* statistics outside what real features give */
    uint64_t rej_norm;         /* updates above max_update_norm */
    uint64_t rej_retained;     /* retained (replayed) updates */
    int dp_exhausted;          /* the privacy budget is spent: no more training */
};

void coord_cfg_default(struct coord_cfg *c);
/* One `key = value` setting (coord_cfg.c; fmq_config_fn); coord_bool_keys for fmq_config_args.
 * After the last one, coord_cfg_finish applies strategy parameters over the strategy's
 * defaults, whatever the order they came in. */
int coord_cfg_set(void *cfg, const char *k, const char *v, char *err, size_t errlen);
void coord_cfg_finish(struct coord_cfg *c);
extern const char *const coord_bool_keys[];
int coord_init(struct coord *c, const struct coord_cfg *cfg);
void coord_free(struct coord *c);
/* Connects to the broker, waiting at most timeout_s: 0 once connected (and resumed), or
 * FMQ_ETIMEOUT to call again (failed attempts are logged and retried with back-off). */
int coord_connect(struct coord *c, double timeout_s);
/* SIGHUP: reopens metrics_file (after logrotate moved it); the old one stays on failure. */
void coord_reopen(struct coord *c);
int coord_step(struct coord *c, int timeout_ms);
/* The open round's deadline counts as passed (fedmq-sim: every agent is idle, so waiting longer
 * cannot bring another update). */
void coord_expire_deadline(struct coord *c);
/* Prints the per-round summary table to f. */
void coord_print_summary(const struct coord *c, FILE *f);

/* coord_secagg.c: secure aggregation's stages (the file's comment) */
struct coord_sa;
int coord_sa_init(struct coord *c); /* nothing when secure_agg is off */
void coord_sa_free(struct coord *c);
void coord_sa_reset(struct coord *c);         /* a new round */
uint32_t coord_sa_dim(const struct coord *c); /* the masked vector's length this round */
/* A keys, shares or answer message from `agent` (the topic's last level, a valid id). */
void coord_sa_on_msg(struct coord *c, const char *agent, const struct fmq_mq_msg *m);
/* An accepted update's masked vector (dim words, bit patterns in a float array); 0, or a code
 * with why in err (the update is then refused). */
int coord_sa_masked(struct coord *c, const char *agent, const float *words, uint32_t dim, char *err,
                    size_t errlen);
/* Moves the stages on; 1 when the round can close (summed or failed). target: the agents the
 * round waits for; deadline: the round's deadline has passed. */
int coord_sa_ready(struct coord *c, int target, int deadline);
/* After the round: 0 with the sum (coord_sa_dim values, borrowed) of count vectors, or
 * FMQ_ERANGE with why. */
int coord_sa_result(const struct coord *c, const double **sum, int *count, const char **why);
/* "secagg":{...}, with out_of_range: the round's clamped values (secure_mean, the statistics) */
void coord_sa_json(const struct coord *c, int out_of_range, char *buf, size_t cap);
/* An agent left out for forged shares (rounds do not wait for it). */
int coord_sa_blamed(const struct coord *c, const char *id);
int coord_sa_nblamed(const struct coord *c);

/* coord_model.c */
int coord_model_init(struct coord *c); /* model, trainable view, test set */
void coord_model_free(struct coord *c);
const char *coord_model_name(const struct coord *c);
size_t coord_model_params(const struct coord *c);
void coord_model_to_global(struct coord *c, struct fmq_global *g);
/* Scores the test set with the global model; deployed figures at `rule` (the one it carries). */
void coord_evaluate(struct coord *c, const struct fmq_rule *rule, struct coord_eval *e);
int coord_model_save(struct coord *c, const uint8_t *buf, size_t len);
/* The metrics' detection members: "per_test_file" (configured threshold and deployed rule per
 * file), "deployed" (fpr, recall, precision, f1, alerts per 1,000 benign flows), "rule" and
 * "calibration" (agents per state), without braces. */
void coord_eval_json(const struct coord *c, const struct coord_eval *e, char *buf, size_t cap);

/* coord_state.c */
/* Writes the state (with the encoded model and the round's metrics) to a temporary file, fsyncs
 * it, renames it over state_file and fsyncs the directory. 0 only when all of that succeeded;
 * otherwise why in err. FMQ_TEST_SAVE_FAIL=PATH (tests only): fails with ENOSPC while PATH
 * exists. */
int coord_state_save(struct coord *c, const uint8_t *model, size_t model_len, char *err,
                     size_t errlen);
int coord_state_load(struct coord *c); /* 0 loaded, 1 none, < 0 unusable */
/* Decodes a saved state (hostile input: every length and count is checked; fuzz/fuzz_state.c).
 * Nothing in c changes unless the whole state is valid, except the model's parameters, which
 * may be partly overwritten before an error (the coordinator then refuses to start). */
int coord_state_decode(struct coord *c, const uint8_t *buf, size_t len, char *err, size_t errlen);
/* FNV-1a 64 of the state's bytes before its last 8 (which hold it). */
uint64_t coord_state_checksum(const uint8_t *p, size_t n);
/* metrics_file: drops a torn last line (a crash mid-write), then appends the saved round's
 * metrics when the file does not end with that version (a crash between save and write). */
int coord_metrics_recover(struct coord *c);
/* (b1, s1) after (b0, s0): a newer base version, or the same base and a higher seq. */
static inline int coord_key_after(uint64_t b1, uint64_t s1, uint64_t b0, uint64_t s0)
{
    return b1 > b0 || (b1 == b0 && s1 > s0);
}

#endif
