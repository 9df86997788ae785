/* GIoT: a small decoder-only transformer over flow tokens (Radford et al. 2019, GPT-2 layout;
 * layer equations as in Vaswani et al. 2017 with pre-norm blocks). Token and position embeddings,
 * L blocks of (layernorm, causal multi-head self-attention, residual, layernorm, GELU MLP with
 * 4C hidden, residual), a final layernorm, a language-model head tied to the token embedding,
 * and a classification head on the last position. Forward and backward are layer pairs over one
 * contiguous parameter vector; activations and their gradients are sized once for (B, T).
 * Parameter order (every tensor row-major): wte (V,C), wpe (T,C), ln1w (L,C), ln1b (L,C),
 * qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C), attprojb (L,C), ln2w (L,C), ln2b (L,C),
 * fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb (L,C), lnfw (C), lnfb (C),
 * clsw (K,C), clsb (K). */
#ifndef FMQ_GPT_H
#define FMQ_GPT_H

#include <stddef.h>
#include <stdint.h>

#define FMQ_GPT_NTENSORS 18

struct fmq_gpt_config {
    int vocab;    /* V */
    int max_seq;  /* T, context length in tokens */
    int layers;   /* L */
    int heads;    /* NH, divides C */
    int channels; /* C */
    int classes;  /* K, classification head outputs (0 = none) */
};

/* LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): each adapted
 * linear W (OC,C) gains (alpha/r) B A with A (r,C), B (OC,r); B starts at zero so the adapted
 * model equals the base until trained. Adapted: qkv, attproj, fc, fcproj of every layer. The
 * adapter tensors form their own contiguous vector, in the order A_qkv, B_qkv, A_attproj,
 * B_attproj, A_fc, B_fc, A_fcproj, B_fcproj, each (L, ...), so an agent can train and send only
 * them while the base stays frozen. */
#define FMQ_LORA_NTENSORS 8

struct fmq_gpt {
    struct fmq_gpt_config cfg;
    int lora_rank;                /* 0: no adapters */
    float lora_alpha;             /* scale alpha / rank */
    size_t lora_n;                /* adapter parameters */
    float *lora;                  /* owned, contiguous adapters (NULL without) */
    float *lt[FMQ_LORA_NTENSORS]; /* views into lora */
    size_t sizes[FMQ_GPT_NTENSORS];
    size_t nparams;
    float *params;              /* owned, contiguous */
    float *t[FMQ_GPT_NTENSORS]; /* views into params */
};

/* Activations and their gradients for batch B and sequence length up to T. */
struct fmq_gpt_acts {
    int B, T;
    float *mem; /* owned: everything below */
    float *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *residual2, *ln2, *ln2_mean,
        *ln2_rstd, *fch, *fch_gelu, *residual3, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs,
        *cls_logits, *cls_probs;
    /* scratch and gradients */
    float *tmp_c, *dlogits, *dlnf, *dres, *dfch_gelu, *dfch, *dln, *datty, *datt, *dpreatt, *dqkv,
        *dcls, *dlast;
    float *grads;      /* owned: nparams, accumulated by backward */
    float *lora_grads; /* owned: lora_n, accumulated by backward (adapters on) */
    float *lora_h;     /* owned: x A^T of every adapted linear, (4, L, B, T, r) */
    float *lora_dh;    /* scratch (B, T, r) */
    /* inputs of the last forward (borrowed) */
    const int *inputs, *targets, *labels;
    int cur_T;
    int lm_tail; /* > 0: a forward without targets computes logits and probabilities only for
                    the last lm_tail positions of each sequence (scoring); the rest are stale */
    float lm_weight, cls_weight;
    int ntargets;
};

int fmq_gpt_config_check(const struct fmq_gpt_config *c);
size_t fmq_gpt_param_count(const struct fmq_gpt_config *c);
int fmq_gpt_init(struct fmq_gpt *m, const struct fmq_gpt_config *c);
void fmq_gpt_free(struct fmq_gpt *m);
/* dst (uninitialised) becomes a copy of src, adapters included. */
int fmq_gpt_copy(struct fmq_gpt *dst, const struct fmq_gpt *src);
/* What federated training moves: the adapters in adapter mode, else every parameter. */
float *fmq_gpt_trainable(const struct fmq_gpt *m, size_t *n);
/* GPT-2 style init: N(0, 0.02), residual projections scaled by 1/sqrt(2L), layernorm 1/0. */
void fmq_gpt_init_params(struct fmq_gpt *m, uint64_t seed);

/* Adds rank-r adapters (A small random, B zero); call before fmq_gpt_acts_init. */
int fmq_gpt_lora_init(struct fmq_gpt *m, int rank, float alpha, uint64_t seed);

int fmq_gpt_acts_init(struct fmq_gpt_acts *a, const struct fmq_gpt *m, int B, int T);
void fmq_gpt_acts_free(struct fmq_gpt_acts *a);

/* Forward over inputs (B,T) token ids. targets (B,T): next-token ids, -1 to ignore, or NULL;
 * labels (B): class ids, -1 to ignore, or NULL. Returns lm_weight * mean next-token
 * cross-entropy + cls_weight * mean classification cross-entropy (0 for absent parts).
 * Logits and probabilities stay in a (logits (B,T,V), cls_logits (B,K)). */
float fmq_gpt_forward(const struct fmq_gpt *m, struct fmq_gpt_acts *a, const int *inputs,
                      const int *targets, const int *labels, int T, float lm_weight,
                      float cls_weight);
/* Gradients of the last forward's loss, accumulated into a->grads (caller zeroes). */
void fmq_gpt_backward(const struct fmq_gpt *m, struct fmq_gpt_acts *a);

/* ---- layers (exposed for gradient checks) ---- */
void fmq_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C);
/* accumulates dinp, dw, db */
void fmq_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C);
void fmq_gelu_forward(float *out, const float *inp, int n);
/* writes dinp = gelu'(inp) * dout */
void fmq_gelu_backward(float *dinp, const float *inp, const float *dout, int n);
/* qkv (B,T,3C) -> out (B,T,C); att (B,NH,T,T) keeps the softmax for backward */
void fmq_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* writes dqkv (B,T,3C); datt, dpreatt are scratch (B,NH,T,T) */
void fmq_attention_backward(float *dqkv, float *datt, float *dpreatt, const float *dout,
                            const float *qkv, const float *att, int B, int T, int C, int NH);

#endif
