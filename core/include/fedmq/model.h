/* Models over one contiguous parameter vector (llm.c style): logistic regression and an MLP
 * (ReLU hidden layers, one logit out, binary cross-entropy with class weights). Layers are
 * x_forward/x_backward pairs over flat arrays. Normalisation (mean, std per input feature) is
 * part of the model so it travels with the global model. Also: optimizers (SGD with momentum,
 * Adam), the local training loop, and detection metrics. */
#ifndef FMQ_MODEL_H
#define FMQ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/common.h"

/* ---- layers (core/model/layers.c); shapes in comments, row-major ---- */
/* out (B,OC) = inp (B,C) @ W^T (OC,C) + b (OC) */
void fmq_linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int C,
                        int OC);
/* accumulates dw (OC,C) and db (OC); writes dinp (B,C) unless NULL */
void fmq_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int B, int C, int OC);
void fmq_relu_forward(float *out, const float *inp, int n);
void fmq_relu_backward(float *dinp, const float *out, const float *dout, int n);
/* mean over the batch of w_i * BCE(sigmoid(z_i), y_i); numerically stable form */
float fmq_bce_forward(const float *logits, const float *y, const float *w, int B);
void fmq_bce_backward(float *dlogits, const float *logits, const float *y, const float *w, int B);
float fmq_sigmoid(float z);

/* ---- model ---- */
enum fmq_model_kind { FMQ_MODEL_LOGREG = 1, FMQ_MODEL_MLP = 2, FMQ_MODEL_GIOT = 3 };
#define FMQ_MLP_MAXHIDDEN 4
#define FMQ_MODEL_MAXPARAMS (1u << 24) /* 64 MiB of float32: far above an edge model */

struct fmq_model_config {
    int kind;                      /* enum fmq_model_kind */
    int in_dim;                    /* input features */
    int n_hidden;                  /* hidden layers (0 for logreg) */
    int hidden[FMQ_MLP_MAXHIDDEN]; /* hidden layer widths */
    int feat_version;              /* FMQ_FEAT_VERSION the inputs follow */
    int window;                    /* featurizer context window */
};

struct fmq_model {
    struct fmq_model_config cfg;         /* copy */
    int nlayers;                         /* linear layers */
    int dims[FMQ_MLP_MAXHIDDEN + 2];     /* dims[0]=in_dim ... dims[nlayers]=1 */
    size_t w_off[FMQ_MLP_MAXHIDDEN + 1]; /* offsets into params */
    size_t b_off[FMQ_MLP_MAXHIDDEN + 1];
    size_t nparams;   /* length of params */
    float *params;    /* owned, contiguous */
    float *norm_mean; /* owned, in_dim; 0 until set */
    float *norm_std;  /* owned, in_dim; 1 until set */
    int has_norm;     /* normalisation came from training data */
    /* The fleet's benign profile: per feature, the mean (for a 0/1 feature its rate) and std
     * (floored) of the training sites' benign flows, merged in the statistics round. It scores
     * novelty: the negative log-likelihood of a flow under independent per-feature laws
     * (Bernoulli for 0/1 features, Gaussian for the others), a factorised density ("naive
     * Bayes") model of normal traffic. */
    float *prof_mean; /* owned, in_dim */
    float *prof_std;  /* owned, in_dim */
    int has_prof;
};

/* Checks a config (kinds, sizes, limits) without allocating. */
int fmq_model_config_check(const struct fmq_model_config *cfg);
size_t fmq_model_param_count(const struct fmq_model_config *cfg);
int fmq_model_init(struct fmq_model *m, const struct fmq_model_config *cfg);
void fmq_model_free(struct fmq_model *m);
/* He-uniform init for hidden layers, small uniform for the output, zero biases, from seed. */
void fmq_model_init_params(struct fmq_model *m, uint64_t seed);
int fmq_model_copy(struct fmq_model *dst, const struct fmq_model *src);
/* A global model the federation may use: every parameter finite and within
 * +-FMQ_MODEL_PARAM_MAX (no trained weight comes near it; a larger one is a corrupt or poisoned
 * model whose training would overflow), and, for a model over the featurizer's inputs with a
 * normalisation, means and stds that moments of real features can produce (fmq_norm_check).
 * Agents refuse any other model and keep the one they have; the coordinator never publishes
 * one, nor resumes from one. 0, or FMQ_ERANGE with what and where in err. */
#define FMQ_MODEL_PARAM_MAX 1e4f
int fmq_params_check(const float *p, size_t n, char *err, size_t errlen);
int fmq_model_check(const struct fmq_model *m, char *err, size_t errlen);
/* out = clip((x - mean) / std, -10, 10) for n rows */
void fmq_model_normalize(const struct fmq_model *m, const float *x, float *out, int n);

/* Per-batch activations and gradients, sized once (no allocation per step). */
struct fmq_mlp_ws {
    int max_batch;
    float *acts;  /* owned: inputs of each layer then logits, B*dims[l] each */
    float *dacts; /* owned: gradients w.r.t. acts */
    float *grads; /* owned: nparams, accumulated by backward */
    size_t act_off[FMQ_MLP_MAXHIDDEN + 2];
};
int fmq_mlp_ws_init(struct fmq_mlp_ws *ws, const struct fmq_model *m, int max_batch);
void fmq_mlp_ws_free(struct fmq_mlp_ws *ws);
/* x (B,in) already normalised; returns a pointer to the B logits inside ws */
const float *fmq_mlp_forward(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *x,
                             int B);
/* after forward: loss and gradients (accumulated into ws->grads; caller zeroes) */
float fmq_mlp_backward(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *y,
                       const float *w, int B);
/* d logit / d input for the one row of the last forward (B=1), in normalised units; the
 * gradient-times-input attribution explains alerts (Simonyan et al. 2014; Shrikumar et al. 2016).
 */
void fmq_mlp_input_grad(const struct fmq_model *m, struct fmq_mlp_ws *ws, float *dx);
/* probability of malicious for one raw (unnormalised) feature vector */
float fmq_model_score(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *raw);
/* Novelty of one raw feature vector under the model's benign profile (has_prof): the sum over
 * features of their negative log-likelihood, in nats (Gaussian without its constant), each
 * feature's at most FMQ_NOVELTY_MAX (-log 0.001: a value the fleet's benign flows show a
 * thousandth of the time is "rare", and no rarer), so the score counts how many ways a flow is
 * rare rather than how far one feature strays; contrib (may be NULL) gets each feature's. */
#define FMQ_NOVELTY_MAX 6.9078
float fmq_model_novelty(const struct fmq_model *m, const float *raw, float *contrib);
/* The same before the sigmoid: the logit, which ranks flows without saturating (P rounds to
 * exactly 1.0f above a logit of about 17, and ties break a false-positive-rate threshold). */
float fmq_model_logit(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *raw);

/* ---- optimizers (core/model/optim.c) ---- */
/* ADAMW: Adam with decoupled weight decay (Loshchilov & Hutter 2019), p -= lr
 * (mhat/(sqrt(vhat)+eps)
 * + wd p); ADAM adds weight decay to the gradient instead (L2). */
enum fmq_optim_kind { FMQ_OPT_SGD = 1, FMQ_OPT_ADAM = 2, FMQ_OPT_ADAMW = 3 };
struct fmq_optim {
    int kind;           /* enum fmq_optim_kind */
    float lr;           /* learning rate */
    float momentum;     /* SGD momentum (heavy ball) */
    float beta1, beta2; /* Adam (Kingma & Ba 2015, Alg. 1) */
    float eps;
    float weight_decay; /* L2 added to the gradient */
    size_t n;
    float *m, *v; /* owned state; v unused by SGD */
    long t;       /* steps taken */
};
int fmq_optim_init(struct fmq_optim *o, int kind, size_t n, float lr);
void fmq_optim_free(struct fmq_optim *o);
void fmq_optim_reset(struct fmq_optim *o); /* zero the state (new global model) */
void fmq_optim_step(struct fmq_optim *o, float *params, const float *grads);

/* ---- local training (core/model/train.c) ---- */
struct fmq_train_opts {
    int epochs; /* passes over the local data */
    int batch;  /* mini-batch size */
    int optim;  /* enum fmq_optim_kind */
    float lr;
    float momentum;
    float weight_decay;
    float pos_weight;      /* weight of malicious examples; <= 0 means balanced (n_neg / n_pos) */
    uint64_t seed;         /* shuffling */
    long max_steps;        /* cap on optimizer steps per call, 0 = none (bounds client drift) */
    float proximal_mu;     /* FedProx: adds mu/2 ||w - prox_ref||^2 to the loss (Li et al. 2020) */
    const float *prox_ref; /* borrowed: the global model the proximal term pulls toward */
    int resume;            /* keep optimizer state from the previous call (chunked training) */
};
void fmq_train_opts_default(struct fmq_train_opts *o);

struct fmq_trainer {
    struct fmq_mlp_ws ws;
    struct fmq_optim opt;
    size_t cap;          /* max examples */
    uint32_t *perm;      /* owned, cap */
    float *xb, *yb, *wb; /* owned batch buffers */
};
int fmq_trainer_init(struct fmq_trainer *t, const struct fmq_model *m,
                     const struct fmq_train_opts *o, size_t cap);
void fmq_trainer_free(struct fmq_trainer *t);
/* Trains m in place on rows of X (raw features, in_dim wide) with labels y (0/1): the n rows
 * listed in idx, or rows 0..n-1 when idx is NULL (so a ring buffer trains without a copy).
 * Returns mean loss of the last epoch in *loss; FMQ_ERANGE if training diverged to NaN/Inf. */
int fmq_train(struct fmq_trainer *t, struct fmq_model *m, const struct fmq_train_opts *o,
              const float *X, const float *y, const uint32_t *idx, size_t n, float *loss);

/* ---- metrics (core/model/metrics.c) ---- */
struct fmq_confusion {
    uint64_t tp, fp, tn, fn;
};
struct fmq_scores {
    double accuracy, precision, recall, f1;
};
void fmq_confusion_add(struct fmq_confusion *c, int truth, int predicted);
void fmq_scores_from(const struct fmq_confusion *c, struct fmq_scores *s);
/* The q-quantile of v[0..n) (sorts v in place). */
float fmq_quantile(float *v, size_t n, double q);
/* Detection at a false-positive budget: the threshold is the (1 - fpr) quantile of the benign
 * (y == 0) scores; flows scoring above it are flagged. Returns the recall of the malicious
 * (y == 1) flows, -1 when there are none; y < 0 (unknown) is skipped. scratch holds n floats.
 * Optional outputs: the threshold and the confusion matrix at it. */
double fmq_recall_at_fpr(const float *score, const float *y, size_t n, double fpr, float *scratch,
                         float *thr_out, struct fmq_confusion *cm);
/* The same for the rule "a or b" over two scores of the same flows: each score becomes its rank
 * among the benign flows' scores of its kind (the share of them strictly below it), a flow's
 * rank is the larger of its two, and that is held to fpr as above. Both scores are thus held
 * to one per-score rate, chosen so that the two together pass fpr of the benign flows (score
 * fusion by rank; Kittler et al., "On combining classifiers", IEEE TPAMI 20(3), 1998, the max
 * rule). scratch holds 3n floats. */
double fmq_recall_at_fpr_either(const float *a, const float *b, const float *y, size_t n,
                                double fpr, float *scratch);
/* Scores X (n raw rows) with threshold; fills c. */
/* L2 norm of each linear layer's gradient (W and b together) in grads; out has nlayers values. */
void fmq_model_layer_norms(const struct fmq_model *m, const float *grads, double *out);
void fmq_model_evaluate(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *X,
                        const float *y, size_t n, float threshold, struct fmq_confusion *c);

#endif
