/* Detection metrics from a confusion matrix (malicious is the positive class). */
#include "fedmq/model.h"

#include <math.h>

void fmq_confusion_add(struct fmq_confusion *c, int truth, int predicted)
{
    if (truth)
        predicted ? c->tp++ : c->fn++;
    else
        predicted ? c->fp++ : c->tn++;
}

void fmq_scores_from(const struct fmq_confusion *c, struct fmq_scores *s)
{
    double tp = (double)c->tp, fp = (double)c->fp, tn = (double)c->tn, fn = (double)c->fn;
    double n = tp + fp + tn + fn;
    s->accuracy = n > 0 ? (tp + tn) / n : 0;
    s->precision = tp + fp > 0 ? tp / (tp + fp) : 0;
    s->recall = tp + fn > 0 ? tp / (tp + fn) : 0;
    s->f1 = 2 * tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0;
}

void fmq_model_evaluate(const struct fmq_model *m, struct fmq_mlp_ws *ws, const float *X,
                        const float *y, size_t n, float threshold, struct fmq_confusion *c)
{
    for (size_t i = 0; i < n; i++) {
        float p = fmq_model_score(m, ws, X + i * (size_t)m->cfg.in_dim);
        fmq_confusion_add(c, y[i] > 0.5f, p >= threshold);
    }
}

void fmq_model_layer_norms(const struct fmq_model *m, const float *g, double *out)
{
    for (int l = 0; l < m->nlayers; l++) {
        size_t a = m->w_off[l], b = m->b_off[l] + (size_t)m->dims[l + 1];
        double s = 0;
        for (size_t i = a; i < b; i++) s += (double)g[i] * g[i];
        out[l] = sqrt(s);
    }
}
