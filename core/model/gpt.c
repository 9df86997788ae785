/* GIoT transformer: layers and the model's forward/backward (see gpt.h for the layout and
 * references). Shapes are in comments: B batch, T sequence, C channels, NH heads, hs = C/NH,
 * V vocabulary, K classes. All buffers come from fmq_gpt_acts_init; a step allocates nothing. */
#include "fedmq/gpt.h"

#include "fedmq/fastmath.h"
#include "fedmq/common.h"
#include "fedmq/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    WTE,
    WPE,
    LN1W,
    LN1B,
    QKVW,
    QKVB,
    ATTPROJW,
    ATTPROJB,
    LN2W,
    LN2B,
    FCW,
    FCB,
    FCPROJW,
    FCPROJB,
    LNFW,
    LNFB,
    CLSW,
    CLSB
};

int fmq_gpt_config_check(const struct fmq_gpt_config *c)
{
    if (c->vocab < 2 || c->vocab > 65536 || c->max_seq < 1 || c->max_seq > 4096 || c->layers < 1 ||
        c->layers > 64 || c->heads < 1 || c->channels < 1 || c->channels > 4096 ||
        c->channels % c->heads != 0 || c->classes < 0 || c->classes > 1024)
        return FMQ_EINVAL;
    if (fmq_gpt_param_count(c) > FMQ_MODEL_MAXPARAMS) return FMQ_ETOOBIG;
    return 0;
}

static void tensor_sizes(const struct fmq_gpt_config *c, size_t *s)
{
    size_t V = (size_t)c->vocab, T = (size_t)c->max_seq, L = (size_t)c->layers,
           C = (size_t)c->channels, K = (size_t)c->classes;
    s[WTE] = V * C, s[WPE] = T * C, s[LN1W] = L * C, s[LN1B] = L * C;
    s[QKVW] = L * 3 * C * C, s[QKVB] = L * 3 * C, s[ATTPROJW] = L * C * C, s[ATTPROJB] = L * C;
    s[LN2W] = L * C, s[LN2B] = L * C, s[FCW] = L * 4 * C * C, s[FCB] = L * 4 * C;
    s[FCPROJW] = L * C * 4 * C, s[FCPROJB] = L * C, s[LNFW] = C, s[LNFB] = C;
    s[CLSW] = K * C, s[CLSB] = K;
}

size_t fmq_gpt_param_count(const struct fmq_gpt_config *c)
{
    size_t s[FMQ_GPT_NTENSORS], n = 0;
    tensor_sizes(c, s);
    for (int i = 0; i < FMQ_GPT_NTENSORS; i++) n += s[i];
    return n;
}

int fmq_gpt_init(struct fmq_gpt *m, const struct fmq_gpt_config *c)
{
    float *p;
    int rc;
    memset(m, 0, sizeof *m);
    if ((rc = fmq_gpt_config_check(c)) != 0) return rc;
    m->cfg = *c;
    tensor_sizes(c, m->sizes);
    m->nparams = fmq_gpt_param_count(c);
    if (!(m->params = calloc(m->nparams, sizeof(float)))) return FMQ_ENOMEM;
    p = m->params;
    for (int i = 0; i < FMQ_GPT_NTENSORS; i++) {
        m->t[i] = p;
        p += m->sizes[i];
    }
    return 0;
}

int fmq_gpt_copy(struct fmq_gpt *dst, const struct fmq_gpt *src)
{
    int rc;
    if ((rc = fmq_gpt_init(dst, &src->cfg)) != 0) return rc;
    memcpy(dst->params, src->params, src->nparams * sizeof(float));
    if (src->lora_rank) {
        if ((rc = fmq_gpt_lora_init(dst, src->lora_rank, src->lora_alpha, 0)) != 0) {
            fmq_gpt_free(dst);
            return rc;
        }
        memcpy(dst->lora, src->lora, src->lora_n * sizeof(float));
    }
    return 0;
}

float *fmq_gpt_trainable(const struct fmq_gpt *m, size_t *n)
{
    *n = m->lora_rank ? m->lora_n : m->nparams;
    return m->lora_rank ? m->lora : m->params;
}

void fmq_gpt_free(struct fmq_gpt *m)
{
    free(m->params);
    free(m->lora);
    m->params = m->lora = NULL;
}

/* per adapted linear k (0 qkv, 1 attproj, 2 fc, 3 fcproj): in and out widths */
static void lora_dims(const struct fmq_gpt *m, int k, int *in, int *out)
{
    int C = m->cfg.channels;
    static const int ins[4] = {1, 1, 1, 4}, outs[4] = {3, 1, 4, 1};
    *in = ins[k] * C;
    *out = outs[k] * C;
}

int fmq_gpt_lora_init(struct fmq_gpt *m, int rank, float alpha, uint64_t seed)
{
    struct fmq_rng r;
    size_t sizes[FMQ_LORA_NTENSORS], n = 0;
    float *p;
    if (rank < 1 || rank > 256 || !(alpha > 0)) return FMQ_EINVAL;
    for (int k = 0; k < 4; k++) {
        int in, out;
        lora_dims(m, k, &in, &out);
        sizes[2 * k] = (size_t)m->cfg.layers * rank * in;      /* A (L, r, in) */
        sizes[2 * k + 1] = (size_t)m->cfg.layers * out * rank; /* B (L, out, r) */
        n += sizes[2 * k] + sizes[2 * k + 1];
    }
    free(m->lora);
    if (!(m->lora = calloc(n, sizeof(float)))) return FMQ_ENOMEM;
    m->lora_rank = rank;
    m->lora_alpha = alpha;
    m->lora_n = n;
    p = m->lora;
    fmq_rng_seed(&r, seed, 0x6c6f7261ULL);
    for (int i = 0; i < FMQ_LORA_NTENSORS; i++) {
        m->lt[i] = p;
        if (i % 2 == 0) /* A ~ N(0, 1/in) (Kaiming-like, as the LoRA reference code); B = 0 */
            for (size_t k = 0; k < sizes[i]; k++) {
                int in, out;
                lora_dims(m, i / 2, &in, &out);
                p[k] = (float)(fmq_rng_normal(&r) / sqrt((double)in));
            }
        p += sizes[i];
    }
    return 0;
}

/* out (N,OC) += s * (x A^T) B^T ; h (N,r) = x A^T kept for backward */
static void lora_forward(float *out, float *h, const float *x, const float *A, const float *Bm,
                         int N, int C, int OC, int r, float s)
{
    fmq_linear_forward(h, x, A, NULL, N, C, r);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < OC; j++) {
            float acc = 0;
            for (int k = 0; k < r; k++) acc += h[(size_t)i * r + k] * Bm[(size_t)j * r + k];
            out[(size_t)i * OC + j] += s * acc;
        }
}

/* dA, dB accumulate; dx (N,C) += s * (dout B) A */
static void lora_backward(float *dx, float *dA, float *dB, float *dh, const float *dout,
                          const float *x, const float *h, const float *A, const float *Bm, int N,
                          int C, int OC, int r, float s)
{
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < r; k++) {
            float acc = 0;
            for (int j = 0; j < OC; j++) acc += dout[(size_t)i * OC + j] * Bm[(size_t)j * r + k];
            dh[(size_t)i * r + k] = s * acc;
        }
        for (int j = 0; j < OC; j++) {
            float g = s * dout[(size_t)i * OC + j];
            for (int k = 0; k < r; k++) dB[(size_t)j * r + k] += g * h[(size_t)i * r + k];
        }
    }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < r; k++) {
            float g = dh[(size_t)i * r + k];
            for (int c = 0; c < C; c++) {
                dA[(size_t)k * C + c] += g * x[(size_t)i * C + c];
                if (dx) dx[(size_t)i * C + c] += g * A[(size_t)k * C + c];
            }
        }
}

void fmq_gpt_init_params(struct fmq_gpt *m, uint64_t seed)
{
    struct fmq_rng r;
    double proj = 0.02 / sqrt(2.0 * m->cfg.layers);
    fmq_rng_seed(&r, seed, 0x67696f74ULL);
    memset(m->params, 0, m->nparams * sizeof(float));
    for (int i = 0; i < FMQ_GPT_NTENSORS; i++) {
        double sd = 0.0;
        if (i == WTE || i == WPE || i == QKVW || i == FCW || i == CLSW)
            sd = 0.02;
        else if (i == ATTPROJW || i == FCPROJW)
            sd = proj;
        for (size_t k = 0; k < m->sizes[i]; k++)
            m->t[i][k] =
                (i == LN1W || i == LN2W || i == LNFW) ? 1.0f : (float)(sd * fmq_rng_normal(&r));
    }
}

int fmq_gpt_acts_init(struct fmq_gpt_acts *a, const struct fmq_gpt *m, int B, int T)
{
    size_t C = (size_t)m->cfg.channels, L = (size_t)m->cfg.layers, V = (size_t)m->cfg.vocab,
           NH = (size_t)m->cfg.heads, K = (size_t)m->cfg.classes, BT, total;
    float *p;
    memset(a, 0, sizeof *a);
    if (B < 1 || T < 1 || T > m->cfg.max_seq) return FMQ_EINVAL;
    a->B = B, a->T = T;
    BT = (size_t)B * T;
    {
        const size_t sz[] = {
            BT * C, L * BT * C, L * BT, L * BT, L * BT * 3 * C, L * BT * C, L * B * NH * T * T,
            L * BT * C, L * BT * C, L * BT, L * BT, L * BT * 4 * C, L * BT * 4 * C, L * BT * C,
            BT * C, BT, BT, BT * V, BT * V, (size_t)B * K, (size_t)B * K,
            /* scratch and gradients */
            BT * C, BT * V, BT * C, BT * C, BT * 4 * C, BT * 4 * C, BT * C, BT * C, B * NH * T * T,
            B * NH * T * T, BT * 3 * C, (size_t)B * K, 2 * (size_t)B * C};
        float **dst[] = {&a->encoded,   &a->ln1,      &a->ln1_mean,  &a->ln1_rstd,  &a->qkv,
                         &a->atty,      &a->att,      &a->residual2, &a->ln2,       &a->ln2_mean,
                         &a->ln2_rstd,  &a->fch,      &a->fch_gelu,  &a->residual3, &a->lnf,
                         &a->lnf_mean,  &a->lnf_rstd, &a->logits,    &a->probs,     &a->cls_logits,
                         &a->cls_probs, &a->tmp_c,    &a->dlogits,   &a->dlnf,      &a->dres,
                         &a->dfch_gelu, &a->dfch,     &a->dln,       &a->datty,     &a->datt,
                         &a->dpreatt,   &a->dqkv,     &a->dcls,      &a->dlast};
        size_t n = sizeof sz / sizeof sz[0];
        _Static_assert(sizeof sz / sizeof sz[0] == sizeof dst / sizeof dst[0],
                       "one size per activation buffer");
        total = 0;
        for (size_t i = 0; i < n; i++) total += sz[i];
        if (m->lora_rank > 0) {
            a->lora_grads = calloc(m->lora_n, sizeof(float));
            a->lora_h = malloc(4 * L * BT * (size_t)m->lora_rank * sizeof(float));
            a->lora_dh = malloc(BT * (size_t)m->lora_rank * sizeof(float));
            if (!a->lora_grads || !a->lora_h || !a->lora_dh) {
                fmq_gpt_acts_free(a);
                return FMQ_ENOMEM;
            }
        }
        if (!(a->mem = malloc(total * sizeof(float))) ||
            !(a->grads = calloc(m->nparams, sizeof(float)))) {
            fmq_gpt_acts_free(a);
            return FMQ_ENOMEM;
        }
        p = a->mem;
        for (size_t i = 0; i < n; i++) {
            *dst[i] = p;
            p += sz[i];
        }
    }
    return 0;
}

void fmq_gpt_acts_free(struct fmq_gpt_acts *a)
{
    free(a->mem);
    free(a->grads);
    free(a->lora_grads);
    free(a->lora_h);
    free(a->lora_dh);
    a->mem = a->grads = a->lora_grads = a->lora_h = a->lora_dh = NULL;
}

/* ---- layers ---- */

void fmq_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C)
{
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *o = out + (size_t)i * C;
        float m = 0, v = 0;
#pragma omp simd reduction(+ : m)
        for (int k = 0; k < C; k++) m += x[k];
        m /= (float)C;
#pragma omp simd reduction(+ : v)
        for (int k = 0; k < C; k++) v += (x[k] - m) * (x[k] - m);
        v /= (float)C;
        float s = 1.0f / sqrtf(v + 1e-5f);
#pragma omp simd
        for (int k = 0; k < C; k++) o[k] = ((x[k] - m) * s) * w[k] + b[k];
        mean[i] = (float)m;
        rstd[i] = s;
    }
}

void fmq_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C)
{
    for (int i = 0; i < N; i++) {
        const float *d = dout + (size_t)i * C, *x = inp + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        double dn_mean = 0, dn_norm_mean = 0;
        for (int k = 0; k < C; k++) {
            float norm = (x[k] - mean[i]) * rstd[i], dn = w[k] * d[k];
            dn_mean += dn;
            dn_norm_mean += dn * norm;
        }
        dn_mean /= C;
        dn_norm_mean /= C;
        for (int k = 0; k < C; k++) {
            float norm = (x[k] - mean[i]) * rstd[i], dn = w[k] * d[k];
            db[k] += d[k];
            dw[k] += norm * d[k];
            dx[k] += (float)((dn - dn_mean - norm * dn_norm_mean) * rstd[i]);
        }
    }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi): the tanh approximation (Hendrycks & Gimpel) */

void fmq_gelu_forward(float *out, const float *x, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float u = GELU_K * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
        out[i] = 0.5f * x[i] * (1.0f + fmq_fast_tanhf(u));
    }
}

void fmq_gelu_backward(float *dinp, const float *x, const float *dout, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float u = GELU_K * (x[i] + 0.044715f * x[i] * x[i] * x[i]), th = fmq_fast_tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x[i] * x[i]);
        dinp[i] = (0.5f * (1.0f + th) + 0.5f * x[i] * (1.0f - th * th) * du) * dout[i];
    }
}

void fmq_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                float *o = out + ((size_t)b * T + t) * C + h * hs;
                float mx = -INFINITY, sum = 0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float s = 0;
#pragma omp simd reduction(+ : s)
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    a[t2] = s * scale;
                    if (a[t2] > mx) mx = a[t2];
                }
#pragma omp simd reduction(+ : sum)
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = fmq_fast_expf(a[t2] - mx);
                    sum += a[t2];
                }
                for (int t2 = 0; t2 < T; t2++) a[t2] = t2 <= t ? a[t2] / sum : 0.0f;
                for (int i = 0; i < hs; i++) o[i] = 0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
#pragma omp simd
                    for (int i = 0; i < hs; i++) o[i] += a[t2] * v[i];
                }
            }
}

void fmq_attention_backward(float *dqkv, float *datt, float *dpreatt, const float *dout,
                            const float *qkv, const float *att, int B, int T, int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    memset(dqkv, 0, (size_t)B * T * 3 * C * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const float *d = dout + ((size_t)b * T + t) * C + h * hs;
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *da = datt + (((size_t)b * NH + h) * T + t) * T;
                float *dp = dpreatt + (((size_t)b * NH + h) * T + t) * T;
                float *dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float dot = 0;
                for (int t2 = 0; t2 <= t; t2++) { /* through o = sum att * v */
                    const float *v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float *dv = dqkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float s = 0, at = a[t2];
#pragma omp simd reduction(+ : s)
                    for (int i = 0; i < hs; i++) s += d[i] * v[i];
#pragma omp simd
                    for (int i = 0; i < hs; i++) dv[i] += at * d[i];
                    da[t2] = s;
                    dot += at * s;
                }
                for (int t2 = 0; t2 <= t; t2++) { /* softmax, then the scaled dot product */
                    const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float *dk = dqkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float g = a[t2] * (da[t2] - dot) * scale;
                    dp[t2] = g;
#pragma omp simd
                    for (int i = 0; i < hs; i++) {
                        dq[i] += g * k[i];
                        dk[i] += g * q[i];
                    }
                }
            }
}

static void softmax_rows(float *probs, const float *logits, int N, int V)
{
    for (int i = 0; i < N; i++) {
        const float *z = logits + (size_t)i * V;
        float *p = probs + (size_t)i * V, mx = -INFINITY, sum = 0;
        float inv;
#pragma omp simd reduction(max : mx)
        for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < V; v++) sum += (p[v] = fmq_fast_expf(z[v] - mx));
        inv = 1.0f / sum;
#pragma omp simd
        for (int v = 0; v < V; v++) p[v] *= inv;
    }
}

/* ---- model ---- */

/* adapter k of layer l: A (r, in), B (out, r), its saved x A^T, and the same in the gradients */
#define LORA_A(m, base, k, l, in)                                                                  \
    ((base) + ((m)->lt[2 * (k)] - (m)->lora) + (size_t)(l) * (m)->lora_rank * (in))
#define LORA_B(m, base, k, l, out)                                                                 \
    ((base) + ((m)->lt[2 * (k) + 1] - (m)->lora) + (size_t)(l) * (out) * (m)->lora_rank)
#define LORA_H(a, m, k, l, BT)                                                                     \
    ((a)->lora_h + ((size_t)(k) * (m)->cfg.layers + (l)) * (size_t)(BT) * (m)->lora_rank)

#define L_OFF(ptr, l, per) ((ptr) + (size_t)(l) * (per))

float fmq_gpt_forward(const struct fmq_gpt *m, struct fmq_gpt_acts *a, const int *inputs,
                      const int *targets, const int *labels, int T, float lm_weight,
                      float cls_weight)
{
    int B = a->B, C = m->cfg.channels, NH = m->cfg.heads, V = m->cfg.vocab, K = m->cfg.classes;
    int L = m->cfg.layers, BT = B * T;
    size_t btc = (size_t)BT * C, bt = (size_t)BT;
    double lm = 0, cls = 0;
    int nlab = 0, r = m->lora_rank;
    float ls = r ? m->lora_alpha / (float)r : 0.0f;

    a->inputs = inputs, a->targets = targets, a->labels = labels, a->cur_T = T;
    a->lm_weight = lm_weight, a->cls_weight = cls_weight, a->ntargets = 0;
    for (int b = 0; b < B; b++) /* encoder: token + position embedding */
        for (int t = 0; t < T; t++) {
            float *o = a->encoded + ((size_t)b * T + t) * C;
            const float *we = m->t[WTE] + (size_t)inputs[b * T + t] * C,
                        *pe = m->t[WPE] + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = we[c] + pe[c];
        }
    for (int l = 0; l < L; l++) {
        const float *res = l == 0 ? a->encoded : L_OFF(a->residual3, l - 1, btc);
        float *ln1 = L_OFF(a->ln1, l, btc), *qkv = L_OFF(a->qkv, l, btc * 3);
        float *atty = L_OFF(a->atty, l, btc), *r2 = L_OFF(a->residual2, l, btc);
        float *ln2 = L_OFF(a->ln2, l, btc), *fch = L_OFF(a->fch, l, btc * 4);
        float *fchg = L_OFF(a->fch_gelu, l, btc * 4), *r3 = L_OFF(a->residual3, l, btc);
        float *att = L_OFF(a->att, l, (size_t)B * NH * T * T);
        fmq_layernorm_forward(ln1, L_OFF(a->ln1_mean, l, bt), L_OFF(a->ln1_rstd, l, bt), res,
                              m->t[LN1W] + l * C, m->t[LN1B] + l * C, BT, C);
        fmq_linear_forward(qkv, ln1, m->t[QKVW] + (size_t)l * 3 * C * C, m->t[QKVB] + l * 3 * C, BT,
                           C, 3 * C);
        if (r)
            lora_forward(qkv, LORA_H(a, m, 0, l, BT), ln1, LORA_A(m, m->lora, 0, l, C),
                         LORA_B(m, m->lora, 0, l, 3 * C), BT, C, 3 * C, r, ls);
        fmq_attention_forward(atty, att, qkv, B, T, C, NH);
        fmq_linear_forward(a->tmp_c, atty, m->t[ATTPROJW] + (size_t)l * C * C,
                           m->t[ATTPROJB] + l * C, BT, C, C);
        if (r)
            lora_forward(a->tmp_c, LORA_H(a, m, 1, l, BT), atty, LORA_A(m, m->lora, 1, l, C),
                         LORA_B(m, m->lora, 1, l, C), BT, C, C, r, ls);
        for (size_t i = 0; i < btc; i++) r2[i] = res[i] + a->tmp_c[i];
        fmq_layernorm_forward(ln2, L_OFF(a->ln2_mean, l, bt), L_OFF(a->ln2_rstd, l, bt), r2,
                              m->t[LN2W] + l * C, m->t[LN2B] + l * C, BT, C);
        fmq_linear_forward(fch, ln2, m->t[FCW] + (size_t)l * 4 * C * C, m->t[FCB] + l * 4 * C, BT,
                           C, 4 * C);
        if (r)
            lora_forward(fch, LORA_H(a, m, 2, l, BT), ln2, LORA_A(m, m->lora, 2, l, C),
                         LORA_B(m, m->lora, 2, l, 4 * C), BT, C, 4 * C, r, ls);
        fmq_gelu_forward(fchg, fch, BT * 4 * C);
        fmq_linear_forward(a->tmp_c, fchg, m->t[FCPROJW] + (size_t)l * 4 * C * C,
                           m->t[FCPROJB] + l * C, BT, 4 * C, C);
        if (r)
            lora_forward(a->tmp_c, LORA_H(a, m, 3, l, BT), fchg, LORA_A(m, m->lora, 3, l, 4 * C),
                         LORA_B(m, m->lora, 3, l, C), BT, 4 * C, C, r, ls);
        for (size_t i = 0; i < btc; i++) r3[i] = r2[i] + a->tmp_c[i];
    }
    fmq_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, L_OFF(a->residual3, L - 1, btc),
                          m->t[LNFW], m->t[LNFB], BT, C);
    if (!targets && a->lm_tail > 0 && a->lm_tail < T) /* scoring: only the tail is read */
        for (int b = 0; b < B; b++) {
            size_t row = (size_t)b * T + (size_t)(T - a->lm_tail);
            fmq_linear_forward(a->logits + row * V, a->lnf + row * C, m->t[WTE], NULL, a->lm_tail,
                               C, V);
            softmax_rows(a->probs + row * V, a->logits + row * V, a->lm_tail, V);
        }
    else {
        fmq_linear_forward(a->logits, a->lnf, m->t[WTE], NULL, BT, C, V); /* tied LM head */
        softmax_rows(a->probs, a->logits, BT, V);
    }
    if (targets)
        for (int i = 0; i < BT; i++)
            if (targets[i] >= 0) {
                lm -= logf(a->probs[(size_t)i * V + targets[i]] + 1e-30f);
                a->ntargets++;
            }
    if (K > 0) {
        for (int b = 0; b < B; b++) {
            const float *x = a->lnf + ((size_t)b * T + T - 1) * C;
            fmq_linear_forward(a->cls_logits + (size_t)b * K, x, m->t[CLSW], m->t[CLSB], 1, C, K);
        }
        softmax_rows(a->cls_probs, a->cls_logits, B, K);
        if (labels)
            for (int b = 0; b < B; b++)
                if (labels[b] >= 0) {
                    cls -= logf(a->cls_probs[(size_t)b * K + labels[b]] + 1e-30f);
                    nlab++;
                }
    }
    return (float)((a->ntargets ? lm_weight * lm / a->ntargets : 0) +
                   (nlab ? cls_weight * cls / nlab : 0));
}

void fmq_gpt_backward(const struct fmq_gpt *m, struct fmq_gpt_acts *a)
{
    int B = a->B, T = a->cur_T, C = m->cfg.channels, NH = m->cfg.heads, V = m->cfg.vocab;
    int K = m->cfg.classes, L = m->cfg.layers, BT = B * T, nlab = 0, r = m->lora_rank;
    float ls = r ? m->lora_alpha / (float)r : 0.0f;
    size_t btc = (size_t)BT * C, bt = (size_t)BT;
    float *g[FMQ_GPT_NTENSORS], *gp = a->grads;

    for (int i = 0; i < FMQ_GPT_NTENSORS; i++) {
        g[i] = gp;
        gp += m->sizes[i];
    }
    /* softmax + cross-entropy: dz = w/n (p - onehot) */
    for (int i = 0; i < BT; i++) {
        float *dz = a->dlogits + (size_t)i * V;
        const float *p = a->probs + (size_t)i * V;
        int tg = a->targets ? a->targets[i] : -1;
        float s = tg >= 0 && a->ntargets ? a->lm_weight / (float)a->ntargets : 0.0f;
        for (int v = 0; v < V; v++) dz[v] = s * (p[v] - (v == tg ? 1.0f : 0.0f));
    }
    fmq_linear_backward(a->dlnf, g[WTE], NULL, a->dlogits, a->lnf, m->t[WTE], BT, C, V);
    if (K > 0 && a->labels) {
        float *xin = a->dlast, *dx = a->dlast + (size_t)B * C;
        for (int b = 0; b < B; b++) nlab += a->labels[b] >= 0;
        for (int b = 0; b < B; b++) {
            int lb = a->labels[b];
            float s = lb >= 0 ? a->cls_weight / (float)nlab : 0.0f;
            for (int k = 0; k < K; k++)
                a->dcls[(size_t)b * K + k] = s * (a->cls_probs[(size_t)b * K + k] - (k == lb));
            memcpy(xin + (size_t)b * C, a->lnf + ((size_t)b * T + T - 1) * C,
                   (size_t)C * sizeof(float));
        }
        fmq_linear_backward(dx, g[CLSW], g[CLSB], a->dcls, xin, m->t[CLSW], B, C, K);
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++)
                a->dlnf[((size_t)b * T + T - 1) * C + c] += dx[(size_t)b * C + c];
    }
    memset(a->dres, 0, btc * sizeof(float));
    fmq_layernorm_backward(a->dres, g[LNFW], g[LNFB], a->dlnf, L_OFF(a->residual3, L - 1, btc),
                           m->t[LNFW], a->lnf_mean, a->lnf_rstd, BT, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *res = l == 0 ? a->encoded : L_OFF(a->residual3, l - 1, btc);
        /* dres holds d(residual3): the MLP branch, then ln2 turns it into d(residual2) */
        fmq_linear_backward(a->dfch_gelu, g[FCPROJW] + (size_t)l * 4 * C * C, g[FCPROJB] + l * C,
                            a->dres, L_OFF(a->fch_gelu, l, btc * 4),
                            m->t[FCPROJW] + (size_t)l * 4 * C * C, BT, 4 * C, C);
        if (r)
            lora_backward(a->dfch_gelu, LORA_A(m, a->lora_grads, 3, l, 4 * C),
                          LORA_B(m, a->lora_grads, 3, l, C), a->lora_dh, a->dres,
                          L_OFF(a->fch_gelu, l, btc * 4), LORA_H(a, m, 3, l, BT),
                          LORA_A(m, m->lora, 3, l, 4 * C), LORA_B(m, m->lora, 3, l, C), BT, 4 * C,
                          C, r, ls);
        fmq_gelu_backward(a->dfch, L_OFF(a->fch, l, btc * 4), a->dfch_gelu, BT * 4 * C);
        fmq_linear_backward(a->dln, g[FCW] + (size_t)l * 4 * C * C, g[FCB] + l * 4 * C, a->dfch,
                            L_OFF(a->ln2, l, btc), m->t[FCW] + (size_t)l * 4 * C * C, BT, C, 4 * C);
        if (r)
            lora_backward(
                a->dln, LORA_A(m, a->lora_grads, 2, l, C), LORA_B(m, a->lora_grads, 2, l, 4 * C),
                a->lora_dh, a->dfch, L_OFF(a->ln2, l, btc), LORA_H(a, m, 2, l, BT),
                LORA_A(m, m->lora, 2, l, C), LORA_B(m, m->lora, 2, l, 4 * C), BT, C, 4 * C, r, ls);
        fmq_layernorm_backward(a->dres, g[LN2W] + l * C, g[LN2B] + l * C, a->dln,
                               L_OFF(a->residual2, l, btc), m->t[LN2W] + l * C,
                               L_OFF(a->ln2_mean, l, bt), L_OFF(a->ln2_rstd, l, bt), BT, C);
        /* dres holds d(residual2): the attention branch, then ln1 turns it into d(input) */
        fmq_linear_backward(a->datty, g[ATTPROJW] + (size_t)l * C * C, g[ATTPROJB] + l * C, a->dres,
                            L_OFF(a->atty, l, btc), m->t[ATTPROJW] + (size_t)l * C * C, BT, C, C);
        if (r)
            lora_backward(
                a->datty, LORA_A(m, a->lora_grads, 1, l, C), LORA_B(m, a->lora_grads, 1, l, C),
                a->lora_dh, a->dres, L_OFF(a->atty, l, btc), LORA_H(a, m, 1, l, BT),
                LORA_A(m, m->lora, 1, l, C), LORA_B(m, m->lora, 1, l, C), BT, C, C, r, ls);
        fmq_attention_backward(a->dqkv, a->datt, a->dpreatt, a->datty, L_OFF(a->qkv, l, btc * 3),
                               L_OFF(a->att, l, (size_t)B * NH * T * T), B, T, C, NH);
        fmq_linear_backward(a->dln, g[QKVW] + (size_t)l * 3 * C * C, g[QKVB] + l * 3 * C, a->dqkv,
                            L_OFF(a->ln1, l, btc), m->t[QKVW] + (size_t)l * 3 * C * C, BT, C,
                            3 * C);
        if (r)
            lora_backward(
                a->dln, LORA_A(m, a->lora_grads, 0, l, C), LORA_B(m, a->lora_grads, 0, l, 3 * C),
                a->lora_dh, a->dqkv, L_OFF(a->ln1, l, btc), LORA_H(a, m, 0, l, BT),
                LORA_A(m, m->lora, 0, l, C), LORA_B(m, m->lora, 0, l, 3 * C), BT, C, 3 * C, r, ls);
        fmq_layernorm_backward(a->dres, g[LN1W] + l * C, g[LN1B] + l * C, a->dln, res,
                               m->t[LN1W] + l * C, L_OFF(a->ln1_mean, l, bt),
                               L_OFF(a->ln1_rstd, l, bt), BT, C);
    }
    for (int b = 0; b < B; b++) /* encoder */
        for (int t = 0; t < T; t++) {
            const float *d = a->dres + ((size_t)b * T + t) * C;
            float *gw = g[WTE] + (size_t)a->inputs[b * T + t] * C, *gpe = g[WPE] + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                gw[c] += d[c];
                gpe[c] += d[c];
            }
        }
}
