/* Learners: one scoring and training path for every model kind. A learner holds a model kind's
 * global and local copies, the site's data in the form that kind needs (feature rows, token
 * streams), and its calibration. Its implementation is an ops table in the shape of sqlite's
 * sqlite3_io_methods (sqlite.h: a version field, then function pointers, one file per
 * implementation: learner_mlp.c, learner_giot.c), chosen by the model kind a global model
 * names. The agent, the coordinator's evaluation, fedmq-sim and bench/eval never branch on the
 * kind: they call fmq_learner_* below, and a new model is one more ops table in the registry
 * (learner.c).
 *
 * Every verdict comes from fmq_calib_verdict (calib.h) over the channel scores the learner
 * produces, so an agent and the coordinator judge the same flow with the same model alike. */
#ifndef FMQ_LEARNER_H
#define FMQ_LEARNER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "fedmq/calib.h"
#include "fedmq/featurize.h"
#include "fedmq/flow.h"
#include "fedmq/model.h"
#include "fedmq/wire.h"

#define FMQ_LEARNER_OPS_VERSION 1

struct fmq_learner_cfg {
    size_t buffer;       /* labelled rows (mlp) or flows (giot) held for training */
    size_t recent;       /* newest flows whose slots stay scorable (at least calib.window) */
    size_t max_devices;  /* per-device context table bound */
    double val_fraction; /* newest share of what is held, validated (and sketched) not trained */
    size_t val_max;      /* at most this many validation flows (giot: each costs a forward) */
    struct fmq_train_opts train; /* mlp local training */
    long giot_steps;             /* giot: optimizer steps per synchronous round */
    int giot_batch;              /* giot: windows per step */
    float giot_lr;               /* giot: AdamW rate when the coordinator announces none */
    float giot_cls_weight;       /* giot: weight of the supervised head's loss */
    float giot_cls_balance; /* giot: least share of the rarer labelled class in the head's batch */
    int explain_fields;     /* giot: least likely fields an explanation names */
    double predict_rate;    /* giot: explanations per second that predict the next flow (0 = all) */
    uint64_t seed;
    struct fmq_calib_cfg calib;
    const volatile sig_atomic_t *stop; /* set by a signal: long training ends early (may be NULL) */
};
void fmq_learner_cfg_default(struct fmq_learner_cfg *c);

struct fmq_learner;

struct fmq_learner_ops {
    int version;      /* FMQ_LEARNER_OPS_VERSION */
    const char *name; /* "mlp", "giot": alerts and status name it */
    int kind;         /* FMQ_MODEL_* of the global models it takes */
    int primary;      /* FMQ_CH_* validation metrics and GSFS's performance trigger watch */
    /* the implementation's state in l->impl, from l->cfg; 0 or FMQ_E* */
    int (*init)(struct fmq_learner *l);
    void (*free)(struct fmq_learner *l); /* safe after a failed init */
    /* Takes a decoded global model of this kind (copies what it keeps). A model of another
     * shape drops the held training state that depended on the old one. 0 or FMQ_E*; err says
     * why (for example another feature version). */
    int (*adopt)(struct fmq_learner *l, const struct fmq_global *g, char *err, size_t errlen);
    int (*channels)(const struct fmq_learner *l); /* FMQ_CH_BIT the adopted model scores */
    /* One flow into the site's context (and, labelled, the training data); returns its slot,
     * which stays scorable for at least the calibration window's newest flows. */
    uint32_t (*ingest)(struct fmq_learner *l, const struct fmq_flow *f);
    /* The flows that follow come from another site: every device's context is forgotten (the
     * flows held so far stay scorable). */
    void (*new_context)(struct fmq_learner *l);
    /* Scores slots with the adopted (global) model: out is n x FMQ_NCH, NAN where absent. */
    void (*score)(struct fmq_learner *l, const uint32_t *slots, size_t n, float *out);
    /* The validation flows' scores (global model, or the local copy after training) and
     * labels, at most cap of them. */
    size_t (*val_scores)(struct fmq_learner *l, int local, float *out, int8_t *labels, size_t cap);
    /* JSON members (without braces, starting with ',') and a text naming why slot's verdict
     * alerted, from the model's own view of the flow. Returns the members' length. */
    size_t (*explain)(struct fmq_learner *l, uint32_t slot, const struct fmq_verdict *v, char *json,
                      size_t cap, char *text, size_t tcap);
    size_t (*held)(const struct fmq_learner *l); /* what training would use */
    /* Local training: begin copies the global model to the local one, splits what is held
     * (oldest to train, newest to validate) and resets the optimizer; steps runs that many
     * optimizer steps, or one synchronous round as configured when steps is 0. */
    int (*train_begin)(struct fmq_learner *l, const struct fmq_client_plan *plan, size_t *ntrain);
    int (*train_steps)(struct fmq_learner *l, long steps, float *loss);
    /* optimizer steps of one round, and examples per step (training speed, sensing) */
    long (*round_steps)(const struct fmq_learner *l, int *batch);
    /* GSFS: the gradient norm of each layer (or parameter group) of the last step. */
    int (*layer_norms)(const struct fmq_learner *l, double *norms, int max);
    /* What federated training moves: global or local, n floats (borrowed). */
    float *(*params)(struct fmq_learner *l, int local, size_t *n);
    /* Personalisation: on 1, scoring moves to a copy of the local model (after train_steps);
     * on 0, back to the global one; on -1 only asks. Returns whether the personal model scores
     * (an adopted model of another shape drops it). */
    int (*personalise)(struct fmq_learner *l, int on);
    /* Round 0: moments of the training split's features, all and the benign rows alone (the
     * fleet's benign profile); FMQ_EINVAL for a kind without a statistics round. */
    int (*stats)(struct fmq_learner *l, struct fmq_moments *all, struct fmq_moments *benign,
                 size_t *n);
};

extern const struct fmq_learner_ops fmq_learner_mlp;  /* learner_mlp.c */
extern const struct fmq_learner_ops fmq_learner_giot; /* learner_giot.c */
/* The registry: the ops for a model kind, NULL if none. */
const struct fmq_learner_ops *fmq_learner_find(int kind);
/* The kinds the registry holds, for a daemon that keeps one learner per kind ready (the kind
 * of the next global model is not known in advance): writes at most cap, returns the count. */
size_t fmq_learner_kinds(int *kinds, size_t cap);

struct fmq_learner {
    const struct fmq_learner_ops *ops;
    struct fmq_learner_cfg cfg;
    void *impl; /* owned by ops */
    int have_model;
    int personal;         /* scoring with the personal model at its own thresholds */
    uint64_t version;     /* of the adopted model */
    struct fmq_calib cal; /* the site's calibration */
    size_t vcap;          /* validation flows the buffers below hold */
    float *vscore;        /* owned: validation scores, vcap x FMQ_NCH */
    int8_t *vlab;         /* owned: vcap */
    float *scratch;       /* owned: vcap */
    uint32_t *slots;      /* owned: calibration window, for rescoring */
    float *sbuf;          /* owned: rescoring scores, window x FMQ_NCH */
};

/* Binds l to the ops of `kind` and initialises both. */
int fmq_learner_init(struct fmq_learner *l, int kind, const struct fmq_learner_cfg *cfg);
void fmq_learner_free(struct fmq_learner *l);
/* Adopts a global model (the implementation's adopt), sets its fleet rule (NULL: none) and
 * rescores the calibration window with it. */
int fmq_learner_adopt(struct fmq_learner *l, const struct fmq_global *g, const struct fmq_rule *r,
                      char *err, size_t errlen);
/* One flow into the learner's context and training data, not scored (a learner whose kind is
 * not the model in use keeps its data current for when it is). Returns the slot. */
uint32_t fmq_learner_ingest(struct fmq_learner *l, const struct fmq_flow *f);
/* One live flow: ingested, scored with the adopted model, judged by the site's calibration
 * (and recorded in its window). Returns the slot; v is all-NAN and no alert without a model. */
uint32_t fmq_learner_observe(struct fmq_learner *l, const struct fmq_flow *f,
                             struct fmq_verdict *v);
/* Scores with the site's fine-tuned local model from now on (after a round's training), at
 * thresholds set on its own labelled benign validation flows (each channel's 1 - budget / k
 * quantile): exact calibration where a site has labels, so no site pays for joining. Returns 0,
 * or FMQ_EINVAL when the site has too few benign labels (the global model stays in use). */
int fmq_learner_personalise(struct fmq_learner *l);
/* The validation metrics of the global (local 0) or local model at the site's rule, and the
 * sketch of its benign validation flows' scores (may be NULL). */
void fmq_learner_validate(struct fmq_learner *l, int local, struct fmq_local_metrics *m,
                          struct fmq_sketch *sk);

#endif
