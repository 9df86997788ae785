/* Logistic regression and MLP over one contiguous parameter vector. A logistic regression is
 * the MLP with no hidden layer, so both share every kernel. Parameter layout, layer l:
 * W_l (dims[l+1], dims[l]) then b_l (dims[l+1]); the update vector is exactly this array. */
#include "fedmq/model.h"
#include "fedmq/featurize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fmq_model_config_check(const struct fmq_model_config *c)
{
    if (c->kind != FMQ_MODEL_LOGREG && c->kind != FMQ_MODEL_MLP) return FMQ_EINVAL;
    if (c->in_dim < 1 || c->in_dim > 4096) return FMQ_EINVAL;
    if (c->kind == FMQ_MODEL_LOGREG && c->n_hidden != 0) return FMQ_EINVAL;
    if (c->kind == FMQ_MODEL_MLP && (c->n_hidden < 1 || c->n_hidden > FMQ_MLP_MAXHIDDEN))
        return FMQ_EINVAL;
    for (int i = 0; i < c->n_hidden; i++)
        if (c->hidden[i] < 1 || c->hidden[i] > 4096) return FMQ_EINVAL;
    if (fmq_model_param_count(c) > FMQ_MODEL_MAXPARAMS) return FMQ_ETOOBIG;
    return 0;
}

size_t fmq_model_param_count(const struct fmq_model_config *c)
{
    size_t n = 0;
    int prev = c->in_dim;
    for (int i = 0; i <= c->n_hidden; i++) {
        int out = i < c->n_hidden ? c->hidden[i] : 1;
        n += (size_t)prev * out + out;
        prev = out;
    }
    return n;
}

int fmq_model_init(struct fmq_model *m, const struct fmq_model_config *cfg)
{
    size_t off = 0;
    int rc;

    memset(m, 0, sizeof *m);
    if ((rc = fmq_model_config_check(cfg)) != 0) return rc;
    m->cfg = *cfg;
    m->nlayers = cfg->n_hidden + 1;
    m->dims[0] = cfg->in_dim;
    for (int l = 0; l < m->nlayers; l++) {
        m->dims[l + 1] = l < cfg->n_hidden ? cfg->hidden[l] : 1;
        m->w_off[l] = off;
        off += (size_t)m->dims[l] * m->dims[l + 1];
        m->b_off[l] = off;
        off += (size_t)m->dims[l + 1];
    }
    m->nparams = off;
    m->params = calloc(off, sizeof *m->params);
    m->norm_mean = calloc((size_t)cfg->in_dim, sizeof *m->norm_mean);
    m->norm_std = malloc((size_t)cfg->in_dim * sizeof *m->norm_std);
    m->prof_mean = calloc((size_t)cfg->in_dim, sizeof *m->prof_mean);
    m->prof_std = malloc((size_t)cfg->in_dim * sizeof *m->prof_std);
    if (!m->params || !m->norm_mean || !m->norm_std || !m->prof_mean || !m->prof_std) {
        fmq_model_free(m);
        return FMQ_ENOMEM;
    }
    for (int i = 0; i < cfg->in_dim; i++) m->norm_std[i] = m->prof_std[i] = 1.0f;
    return 0;
}

void fmq_model_free(struct fmq_model *m)
{
    free(m->params);
    free(m->norm_mean);
    free(m->norm_std);
    free(m->prof_mean);
    free(m->prof_std);
    m->params = m->norm_mean = m->norm_std = m->prof_mean = m->prof_std = NULL;
}

int fmq_model_copy(struct fmq_model *dst, const struct fmq_model *src)
{
    int rc = fmq_model_init(dst, &src->cfg);
    if (rc) return rc;
    memcpy(dst->params, src->params, src->nparams * sizeof *src->params);
    memcpy(dst->norm_mean, src->norm_mean, (size_t)src->cfg.in_dim * sizeof(float));
    memcpy(dst->norm_std, src->norm_std, (size_t)src->cfg.in_dim * sizeof(float));
    dst->has_norm = src->has_norm;
    memcpy(dst->prof_mean, src->prof_mean, (size_t)src->cfg.in_dim * sizeof(float));
    memcpy(dst->prof_std, src->prof_std, (size_t)src->cfg.in_dim * sizeof(float));
    dst->has_prof = src->has_prof;
    return 0;
}

void fmq_model_init_params(struct fmq_model *m, uint64_t seed)
{
    struct fmq_rng r;
    fmq_rng_seed(&r, seed, 0x6d6f64656cULL);
    memset(m->params, 0, m->nparams * sizeof *m->params);
    for (int l = 0; l < m->nlayers; l++) {
        int fan_in = m->dims[l], last = l == m->nlayers - 1;
        /* He et al. 2015 for ReLU layers; a small range for the logit keeps initial scores
         * near 0.5 instead of saturated. */
        float a = last ? 1.0f / sqrtf((float)fan_in) : sqrtf(6.0f / (float)fan_in);
        float *w = m->params + m->w_off[l];
        for (size_t i = 0; i < (size_t)m->dims[l] * m->dims[l + 1]; i++)
            w[i] = (float)((2.0 * fmq_rng_uniform(&r) - 1.0) * a);
    }
}

int fmq_params_check(const float *p, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(p[i]) <= FMQ_MODEL_PARAM_MAX)) { /* NaN fails too */
            snprintf(err, errlen, "parameter %zu of %zu is %g, beyond +-%g", i, n, (double)p[i],
                     (double)FMQ_MODEL_PARAM_MAX);
            return FMQ_ERANGE;
        }
    return 0;
}

int fmq_model_check(const struct fmq_model *m, char *err, size_t errlen)
{
    int rc = fmq_params_check(m->params, m->nparams, err, errlen);
    if (rc == 0 && m->has_norm && m->cfg.in_dim == FMQ_FEAT_DIM &&
        m->cfg.feat_version == FMQ_FEAT_VERSION)
        rc = fmq_norm_check(m->norm_mean, m->norm_std, err, errlen);
    return rc;
}

void fmq_model_normalize(const struct fmq_model *m, const float *x, float *out, int n)
{
    int d = m->cfg.in_dim;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) {
            float v = (x[(size_t)i * d + k] - m->norm_mean[k]) / m->norm_std[k];
            out[(size_t)i * d + k] = v > 10.0f ? 10.0f : v < -10.0f ? -10.0f : v;
        }
}

int fmq_mlp_ws_init(struct fmq_mlp_ws *ws, const struct fmq_model *m, int max_batch)
{
    size_t total = 0;
    memset(ws, 0, sizeof *ws);
    if (max_batch < 1) return FMQ_EINVAL;
    ws->max_batch = max_batch;
    /* acts: layer inputs, then for each hidden layer pre-activation and post-ReLU share one slot
     * (ReLU is applied in place; backward uses the post value), then logits. */
    for (int l = 0; l <= m->nlayers; l++) {
        ws->act_off[l] = total;
        total += (size_t)max_batch * m->dims[l];
    }
    ws->acts = malloc(total * sizeof(float));
    ws->dacts = malloc(total * sizeof(float));
    ws->grads = calloc(m->nparams, sizeof(float));
    if (!ws->acts || !ws->dacts || !ws->grads) {
        fmq_mlp_ws_free(ws);
        return FMQ_ENOMEM;
    }
    return 0;
}

void fmq_mlp_ws_free(struct fmq_mlp_ws *ws)
{
    free(ws->acts);
    free(ws->dacts);
    free(ws->grads);
    ws->acts = ws->dacts = ws->grads = NULL;
}

const float *fmq_mlp_forward(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *x,
                             int B)
{
    memcpy(ws->acts, x, (size_t)B * m->dims[0] * sizeof(float));
    for (int l = 0; l < m->nlayers; l++) {
        float *in = ws->acts + ws->act_off[l], *out = ws->acts + ws->act_off[l + 1];
        fmq_linear_forward(out, in, m->params + m->w_off[l], m->params + m->b_off[l], B, m->dims[l],
                           m->dims[l + 1]);
        if (l < m->nlayers - 1) fmq_relu_forward(out, out, B * m->dims[l + 1]);
    }
    return ws->acts + ws->act_off[m->nlayers];
}

float fmq_mlp_backward(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *y,
                       const float *w, int B)
{
    const float *z = ws->acts + ws->act_off[m->nlayers];
    float loss = fmq_bce_forward(z, y, w, B);

    fmq_bce_backward(ws->dacts + ws->act_off[m->nlayers], z, y, w, B);
    for (int l = m->nlayers - 1; l >= 0; l--) {
        float *dout = ws->dacts + ws->act_off[l + 1];
        float *din = l > 0 ? ws->dacts + ws->act_off[l] : NULL;
        if (l < m->nlayers - 1) /* through the ReLU applied to this layer's output */
            fmq_relu_backward(dout, ws->acts + ws->act_off[l + 1], dout, B * m->dims[l + 1]);
        fmq_linear_backward(din, ws->grads + m->w_off[l], ws->grads + m->b_off[l], dout,
                            ws->acts + ws->act_off[l], m->params + m->w_off[l], B, m->dims[l],
                            m->dims[l + 1]);
    }
    return loss;
}

void fmq_mlp_input_grad(const struct fmq_model *m, struct fmq_mlp_ws *ws, float *dx)
{
    /* dacts of each layer hold d logit / d (that layer's input); start with 1 at the logit */
    ws->dacts[ws->act_off[m->nlayers]] = 1.0f;
    for (int l = m->nlayers - 1; l >= 0; l--) {
        const float *w = m->params + m->w_off[l];
        float *dout = ws->dacts + ws->act_off[l + 1], *din = ws->dacts + ws->act_off[l];
        int C = m->dims[l], OC = m->dims[l + 1];
        if (l < m->nlayers - 1) fmq_relu_backward(dout, ws->acts + ws->act_off[l + 1], dout, OC);
        for (int k = 0; k < C; k++) din[k] = 0.0f;
        for (int j = 0; j < OC; j++)
            for (int k = 0; k < C; k++) din[k] += dout[j] * w[(size_t)j * C + k];
    }
    for (int k = 0; k < m->dims[0]; k++) dx[k] = ws->dacts[k];
}

float fmq_model_logit(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *raw)
{
    float x[4096];
    fmq_model_normalize(m, raw, x, 1);
    return fmq_mlp_forward(m, ws, x, 1)[0];
}

float fmq_model_novelty(const struct fmq_model *m, const float *raw, float *contrib)
{
    double nll = 0;
    for (int j = 0; j < m->cfg.in_dim; j++) {
        double v;
        if (j < FMQ_FEAT_DIM && fmq_feat_is_binary(j)) {
            double p = m->prof_mean[j];
            p = p < 1e-3 ? 1e-3 : p > 1 - 1e-3 ? 1 - 1e-3 : p;
            v = raw[j] > 0.5f ? -log(p) : -log1p(-p);
        } else {
            double z = (raw[j] - m->prof_mean[j]) / m->prof_std[j];
            v = 0.5 * z * z;
        }
        if (v > FMQ_NOVELTY_MAX) v = FMQ_NOVELTY_MAX; /* a feature says "rare", no more */
        if (contrib) contrib[j] = (float)v;
        nll += v;
    }
    return (float)nll;
}

float fmq_model_score(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *raw)
{
    return fmq_sigmoid(fmq_model_logit(m, ws, raw));
}
