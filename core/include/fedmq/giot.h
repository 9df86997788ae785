/* GIoT training and scoring on device traffic "sentences" (fmq_tok_flow). A flow's context is
 * its device's previous K-1 flows: the model reads [PAD.. BOS s(i-K+1) .. s(i)] (T = 1 + 10K
 * tokens, left-padded) and learns next-token prediction, which needs no labels. A flow's anomaly
 * score is the negative log-likelihood of its own 10 tokens given that context; its explanation
 * names the fields the model found least likely, with their probability and the model's most
 * likely value. */
#ifndef FMQ_GIOT_H
#define FMQ_GIOT_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/flow.h"
#include "fedmq/gpt.h"
#include "fedmq/model.h"
#include "fedmq/tokenize.h"

/* Tokenized flows with, for each, the index of the same device's previous flow. */
struct fmq_giot_data {
    uint16_t *tok; /* owned: n x FMQ_TOK_PER_FLOW */
    int32_t *prev; /* owned: previous flow of the same originator, -1 for none */
    int8_t *label; /* owned: 1 malicious, 0 benign, -1 unknown */
    size_t n;
    /* streams only (NULL otherwise): a link prev[i] holds while gen[prev[i]] == prev_gen[i] */
    const uint32_t *gen, *prev_gen;
};
/* flows must be in time order (per device at least). */
int fmq_giot_data_build(struct fmq_giot_data *d, const struct fmq_flow *flows, size_t n);
void fmq_giot_data_free(struct fmq_giot_data *d);

/* Online store for an agent: a ring of the fleet's last `cap` flows, tokenized as they arrive,
 * linked per device, exposed as an fmq_giot_data (slot indices) so the trainer and scorer run on
 * it directly. A link to a slot that has since been overwritten is cut. The device table holds
 * at most max_devices originators; when it is full it starts over (older devices lose their
 * context, counted in resets). No allocation after init. */
struct fmq_giot_stream {
    struct fmq_giot_data d; /* view: arrays of cap slots, d.n = slots filled */
    uint32_t *gen;          /* owned: generation written into each slot */
    uint32_t *prev_gen;     /* owned: generation the slot's link expects */
    double *ts;             /* owned: flow time per slot (for the next flow's gap) */
    uint64_t *keys;         /* owned: device hash table */
    int32_t *last;          /* owned: device -> last slot */
    uint32_t *last_gen;     /* owned: generation of that slot when it was the device's */
    size_t cap, head, tcap, ndev, max_devices;
    uint32_t next_gen;
    uint64_t resets; /* device table restarts */
};
int fmq_giot_stream_init(struct fmq_giot_stream *s, size_t cap, size_t max_devices);
void fmq_giot_stream_free(struct fmq_giot_stream *s);
/* The next flow of every device starts without context (flows of another capture follow). */
void fmq_giot_stream_forget_devices(struct fmq_giot_stream *s);
/* Tokenizes f into the next slot and links it to its device's previous flow; returns the slot. */
size_t fmq_giot_stream_push(struct fmq_giot_stream *s, const struct fmq_flow *f);

/* Window of flow i with K flows of context: inputs and next-token targets (T = 1 + 10K);
 * targets are -1 where nothing is to be predicted (padding, the window's end). */
void fmq_giot_window(const struct fmq_giot_data *d, size_t i, int K, int *inputs, int *targets);

struct fmq_giot_trainer {
    struct fmq_gpt_acts acts;
    struct fmq_optim opt;
    int B, K, T;
    int *inputs, *targets; /* owned, B x T */
    int *labels;           /* owned, B: the window's last flow, 1 malicious, 0 benign, -1 none */
    float lm_weight;       /* objective: lm_weight x next-token loss (default 1) */
    float cls_weight;      /*   + cls_weight x classification loss (default 0; needs classes) */
    float cls_balance;     /* least share of the head's examples from the pool's rarer labelled
                            * class, topped up by extra draws (default 0; see fmq_giot_train) */
    uint32_t *minor;       /* owned: that class's pool indices, grown as the pool grows */
    size_t minor_cap;
    struct fmq_rng rng;
};
int fmq_giot_trainer_init(struct fmq_giot_trainer *t, const struct fmq_gpt *m, int B, int K,
                          float lr, float weight_decay, uint64_t seed);
void fmq_giot_trainer_free(struct fmq_giot_trainer *t);
/* steps optimizer steps on random windows ending at the flows listed in idx (or all when idx is
 * NULL); returns the loss of the last step. The objective is lm_weight x next-token loss +
 * cls_weight x the classification head's loss on labelled windows (unlabelled ones add
 * nothing to it), so (a) self-supervised, (b) supervised and (c) both are weight settings.
 * With cls_balance > 0 and a head to train, when the rarer of the pool's two labelled classes
 * is under that share of them, enough of every batch is drawn from that class alone to bring
 * its expected share of the batch up to cls_balance, with the extra windows' next-token
 * targets masked: the head sees the rare class that often (attacks are often a few flows in
 * thousands), while the language model still learns the stream at its natural mix, which the
 * likelihood score needs.
 * Returns NAN when the pool's indices cannot be listed (out of memory).
 * With LoRA adapters on the model (initialise
 * them before the trainer) only the adapters are updated: the base stays frozen. */
float fmq_giot_train(struct fmq_giot_trainer *t, struct fmq_gpt *m, const struct fmq_giot_data *d,
                     const uint32_t *idx, size_t nidx, long steps);

/* Supervised head: out[k] = P(malicious) of flow idx[k] from the classification head (the
 * model needs classes >= 2; class 1 is malicious). */
void fmq_giot_classify(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                       const struct fmq_giot_data *d, const uint32_t *idx, size_t n, float *out);

/* Scores flows idx[0..n) (B at a time through the trainer's buffers): out[k] = NLL of flow
 * idx[k]'s tokens given its context, in nats. */
void fmq_giot_score(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                    const struct fmq_giot_data *d, const uint32_t *idx, size_t n, float *out);

/* Both scores from one forward per batch: nll[k * stride] as fmq_giot_score and, when head is
 * not NULL, head[k * stride] = the head's logit of malicious against benign (NAN without a
 * head), which ranks flows without saturating as P(malicious) does. */
void fmq_giot_score_both(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                         const struct fmq_giot_data *d, const uint32_t *idx, size_t n, float *nll,
                         float *head, size_t stride);

/* For flow i: per field, the probability of the observed token and the model's most likely
 * token; writes up to `worst` least likely fields as text, e.g.
 * "responder port 50 p=0.0004, expected responder port 123 p=0.93; ...". Returns the NLL. */
float fmq_giot_explain(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                       const struct fmq_giot_data *d, size_t i, int worst, char *text, size_t cap);

/* The same text from the trainer's last forward pass, without running another: window 0 of the
 * last fmq_giot_score / fmq_giot_score_both call on t with model m (the caller knows it was the
 * flow it wants explained). */
void fmq_giot_explain_last(const struct fmq_giot_trainer *t, const struct fmq_gpt *m, int worst,
                           char *text, size_t cap);

/* The model's most likely next flow of flow i's device (greedy, field by field, given the
 * device's last K-1 flows up to i), as text: "proto udp, service dns, ... (p=0.41)" with the
 * product of the chosen tokens' probabilities. 10 forward passes. */
int fmq_giot_predict_next(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                          const struct fmq_giot_data *d, size_t i, char *text, size_t cap);

#endif
