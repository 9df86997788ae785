/* Detection metrics from a confusion matrix (malicious is the positive class). */
#include "fedmq/model.h"

#include <math.h>
#include <stdlib.h>

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

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

float fmq_quantile(float *v, size_t n, double q)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_float);
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    return v[(size_t)(q * (double)(n - 1))];
}

double fmq_recall_at_fpr(const float *score, const float *y, size_t n, double fpr, float *scratch,
                         float *thr_out, struct fmq_confusion *cm)
{
    size_t nb = 0;
    float thr;
    struct fmq_confusion c = {0};
    for (size_t i = 0; i < n; i++)
        if (y[i] == 0) scratch[nb++] = score[i];
    thr = fmq_quantile(scratch, nb, 1.0 - fpr);
    for (size_t i = 0; i < n; i++)
        if (y[i] >= 0) fmq_confusion_add(&c, y[i] > 0.5f, score[i] > thr);
    if (thr_out) *thr_out = thr;
    if (cm) *cm = c;
    return c.tp + c.fn ? (double)c.tp / (double)(c.tp + c.fn) : -1;
}

/* how many of sorted[0..n) are strictly below x */
static size_t count_below(const float *sorted, size_t n, float x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

double fmq_recall_at_fpr_either(const float *a, const float *b, const float *y, size_t n,
                                double fpr, float *scratch)
{
    float *sa = scratch, *sb = scratch + n, *fused = scratch + 2 * n;
    size_t nb = 0;
    for (size_t i = 0; i < n; i++)
        if (y[i] == 0) sa[nb] = a[i], sb[nb++] = b[i];
    if (nb == 0) return fmq_recall_at_fpr(a, y, n, fpr, sa, NULL, NULL); /* no benign: any */
    qsort(sa, nb, sizeof *sa, cmp_float);
    qsort(sb, nb, sizeof *sb, cmp_float);
    for (size_t i = 0; i < n; i++) {
        size_t ra = count_below(sa, nb, a[i]), rb = count_below(sb, nb, b[i]);
        fused[i] = (float)((double)(ra > rb ? ra : rb) / (double)nb);
    }
    return fmq_recall_at_fpr(fused, y, n, fpr, sa, NULL, NULL);
}
