/* Fleet rule, sketches and the site calibration state machine (see calib.h). The window is a
 * ring owned here; quantiles are read from a sorted copy of its eligible scores, so nothing is
 * allocated after init. */
#include "fedmq/calib.h"
#include "fedmq/common.h"
#include "fedmq/flow.h"
#include "fedmq/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const double fmq_sketch_levels[FMQ_SKETCH_LEVELS] = {0.8, 0.9, 0.99, 0.995, 0.999};

static int nbits(int channels)
{
    int k = 0;
    for (int c = 0; c < FMQ_NCH; c++) k += (channels & FMQ_CH_BIT(c)) != 0;
    return k;
}

double fmq_rule_share(double budget, int channels)
{
    int k = nbits(channels);
    return k > 0 ? budget / k : budget;
}

float fmq_sketch_at(const struct fmq_sketch *s, int ch, double level)
{
    const double *L = fmq_sketch_levels;
    const float *q = s->q[ch];
    if (level <= L[0]) return q[0];
    for (int i = 1; i < FMQ_SKETCH_LEVELS; i++)
        if (level <= L[i]) {
            double w = (level - L[i - 1]) / (L[i] - L[i - 1]);
            return (float)((1 - w) * q[i - 1] + w * q[i]);
        }
    return q[FMQ_SKETCH_LEVELS - 1];
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The level-quantile of sorted v[0..n), linearly interpolated (numpy's default). */
static float sorted_quantile(const float *v, size_t n, double level)
{
    double pos = level * (double)(n - 1);
    size_t i = (size_t)pos;
    double w = pos - (double)i;
    if (i + 1 >= n) return v[n - 1];
    return (float)((1 - w) * v[i] + w * v[i + 1]);
}

/* The threshold of a site's window that keeps the share of future normal flows above it within
 * `share` with probability `conf`: the r-th largest of the n sorted scores v, r the largest with
 * P(Binomial(n, share) <= r - 1) <= 1 - conf. For exchangeable scores the share of flows above
 * the r-th largest of n is Beta(r, n - r + 1) distributed, so the chance that it exceeds share
 * is that binomial tail (Wilks, "Determination of sample sizes for setting tolerance limits",
 * Ann. Math. Statist. 12, 1941; the order-statistic form of a one-sided nonparametric tolerance
 * limit). A window too small to give that confidence even at its maximum (n < about
 * log(1 - conf) / log(1 - share)) gets its maximum. conf <= 0: the plain (1 - share) quantile. */
static float confident_quantile(const float *v, size_t n, double share, double conf)
{
    double lp, lcdf, lratio, la;
    size_t r = 1;
    if (conf <= 0 || share <= 0 || share >= 1) return sorted_quantile(v, n, 1.0 - share);
    la = log(1 - conf);
    lratio = log(share) - log1p(-share);
    lp = (double)n * log1p(-share); /* log P(Bin = 0); the cdf in the log domain (n to 10^6) */
    lcdf = lp;
    for (size_t j = 0; j < n; j++) {
        if (j > 0) { /* P(Bin = j) = P(Bin = j - 1) (n - j + 1) / j x share / (1 - share) */
            double hi;
            lp += log((double)(n - j + 1)) - log((double)j) + lratio;
            hi = lp > lcdf ? lp : lcdf;
            lcdf = hi + log(exp(lp - hi) + exp(lcdf - hi));
        }
        if (lcdf > la) break;
        r = j + 1; /* P(Bin <= r - 1) <= 1 - conf */
    }
    return v[n - r];
}

void fmq_sketch_from(struct fmq_sketch *s, const float *scores, const int8_t *labels, size_t n,
                     int channels, float *scratch)
{
    memset(s, 0, sizeof *s);
    for (int c = 0; c < FMQ_NCH; c++) {
        size_t k = 0;
        if (!(channels & FMQ_CH_BIT(c))) continue;
        for (size_t i = 0; i < n; i++) {
            float v = scores[i * FMQ_NCH + (size_t)c];
            if (labels[i] == 0 && isfinite(v)) scratch[k++] = v;
        }
        if (k == 0) continue;
        qsort(scratch, k, sizeof *scratch, cmp_float);
        for (int j = 0; j < FMQ_SKETCH_LEVELS; j++)
            s->q[c][j] = sorted_quantile(scratch, k, fmq_sketch_levels[j]);
        s->channels |= FMQ_CH_BIT(c);
        if (s->n == 0 || k < s->n) s->n = (uint32_t)(k > UINT32_MAX ? UINT32_MAX : k);
    }
}

int fmq_sketch_check(const struct fmq_sketch *s)
{
    if (s->channels & ~(FMQ_CH_BIT(FMQ_NCH) - 1)) return FMQ_ERANGE;
    for (int c = 0; c < FMQ_NCH; c++) {
        if (!(s->channels & FMQ_CH_BIT(c))) continue;
        for (int j = 0; j < FMQ_SKETCH_LEVELS; j++) {
            /* scores are logits or nats: a quantile past 1e6 is no score but a lie or a bug */
            if (!isfinite(s->q[c][j]) || fabsf(s->q[c][j]) > 1e6f) return FMQ_ERANGE;
            if (j && s->q[c][j] < s->q[c][j - 1]) return FMQ_ERANGE;
        }
    }
    return 0;
}

int fmq_rule_acc_init(struct fmq_rule_acc *a, size_t cap)
{
    memset(a, 0, sizeof *a);
    if (cap > FMQ_RULE_MAX_SITES) cap = FMQ_RULE_MAX_SITES;
    a->cap = cap;
    a->weight = malloc((cap ? cap : 1) * sizeof *a->weight);
    a->s = malloc((cap ? cap : 1) * sizeof *a->s);
    a->scratch = malloc(2 * (cap ? cap : 1) * sizeof *a->scratch);
    if (!a->weight || !a->s || !a->scratch) {
        fmq_rule_acc_free(a);
        return FMQ_ENOMEM;
    }
    return 0;
}

void fmq_rule_acc_free(struct fmq_rule_acc *a)
{
    free(a->weight);
    free(a->s);
    free(a->scratch);
    memset(a, 0, sizeof *a);
}

void fmq_rule_acc_reset(struct fmq_rule_acc *a)
{
    a->n = 0;
    a->dropped = 0;
}

void fmq_rule_acc_add(struct fmq_rule_acc *a, const struct fmq_sketch *s, uint32_t min_benign)
{
    if (s->n == 0 || s->n < min_benign || !s->channels || fmq_sketch_check(s) != 0) return;
    if (a->n == a->cap) {
        a->dropped++;
        return;
    }
    a->s[a->n] = *s;
    a->weight[a->n++] = s->n;
}

struct wv {
    float v;
    uint32_t w;
};

static int cmp_wv(const void *x, const void *y)
{
    const struct wv *a = x, *b = y;
    return a->v < b->v ? -1 : a->v > b->v;
}

/* A site's benign CDF at x from its sketch: piecewise linear through the sketched quantiles,
 * extended below the lowest and above the highest with the nearest segment's slope. */
static double site_cdf(const struct fmq_sketch *s, int ch, double x)
{
    const double *L = fmq_sketch_levels;
    const float *q = s->q[ch];
    int last = FMQ_SKETCH_LEVELS - 1;
    double F;
    if (x < q[0]) {
        double d = q[1] - q[0];
        F = d > 0 ? L[0] - (L[1] - L[0]) * (q[0] - x) / d : 0;
    } else if (x >= q[last]) {
        double d = q[last] - q[last - 1];
        F = d > 0 ? L[last] + (L[last] - L[last - 1]) * (x - q[last]) / d : 1;
    } else {
        int j = 0;
        while (j < last && x >= q[j + 1]) j++;
        F = q[j + 1] > q[j] ? L[j] + (L[j + 1] - L[j]) * (x - q[j]) / (q[j + 1] - q[j]) : L[j + 1];
    }
    return F < 0 ? 0 : F > 1 ? 1 : F;
}

static double mix_cdf(const struct fmq_rule_acc *a, const double *w, int ch, double x)
{
    double F = 0, W = 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->s[i].channels & FMQ_CH_BIT(ch)) F += w[i] * site_cdf(&a->s[i], ch, x), W += w[i];
    return W > 0 ? F / W : 1;
}

void fmq_rule_acc_finish(struct fmq_rule_acc *a, double budget, uint64_t version,
                         struct fmq_rule *rule)
{
    struct wv *v = (struct wv *)(void *)a->scratch; /* 2 floats of scratch per sketch */
    double w[FMQ_RULE_MAX_SITES];
    int all = 0;
    memset(rule, 0, sizeof *rule);
    rule->budget = (float)budget;
    rule->version = version;
    for (size_t i = 0; i < a->n; i++) all |= a->s[i].channels;
    { /* the sites' weights: their benign flows, at most 3x the median site's, so that a site
         claiming a huge count cannot make the fleet's threshold its own */
        double med;
        for (size_t i = 0; i < a->n; i++) v[i] = (struct wv){(float)a->weight[i], 0};
        qsort(v, a->n, sizeof *v, cmp_wv);
        med = a->n ? v[a->n / 2].v : 1;
        for (size_t i = 0; i < a->n && i < FMQ_RULE_MAX_SITES; i++)
            w[i] = a->weight[i] < 3 * med ? a->weight[i] : 3 * med;
    }
    for (int c = 0; c < FMQ_NCH; c++) {
        double level = 1.0 - fmq_rule_share(budget, all), lo, hi;
        size_t k = 0, skip;
        if (!(all & FMQ_CH_BIT(c))) continue;
        for (size_t i = 0; i < a->n; i++)
            if (a->s[i].channels & FMQ_CH_BIT(c))
                v[k++] = (struct wv){fmq_sketch_at(&a->s[i], c, level), a->weight[i]};
        if (k == 0) continue;
        qsort(v, k, sizeof *v, cmp_wv);
        /* the fleet threshold: the level-quantile of the pooled benign flows, the sites'
         * sketched distributions mixed by weight (bisection on the mixture's CDF) */
        lo = v[0].v, hi = v[k - 1].v;
        for (size_t i = 0; i < a->n; i++)
            if (a->s[i].channels & FMQ_CH_BIT(c)) {
                if (a->s[i].q[c][0] < lo) lo = a->s[i].q[c][0];
                if (a->s[i].q[c][FMQ_SKETCH_LEVELS - 1] > hi)
                    hi = a->s[i].q[c][FMQ_SKETCH_LEVELS - 1];
            }
        for (int it = 0; it < 60 && hi > lo; it++) {
            double mid = 0.5 * (lo + hi);
            if (mix_cdf(a, w, c, mid) >= level)
                hi = mid;
            else
                lo = mid;
        }
        rule->thr[c] = (float)hi;
        /* the cap: the largest site quantile once the top tenth of the sites is set aside, so
         * that a few sites (or liars) cannot open every new site's threshold */
        skip = k / 10;
        rule->cap[c] = v[k - 1 - skip].v;
        /* a pooled quantile is at most the largest site's; above the cap only when the sites
         * set aside drive it, which is what the cap is for */
        if (rule->thr[c] > rule->cap[c]) rule->thr[c] = rule->cap[c];
        rule->channels |= FMQ_CH_BIT(c);
        if (k > rule->sites) rule->sites = (uint32_t)k;
    }
}

float fmq_calib_logit(double p)
{
    p = p < 1e-9 ? 1e-9 : p > 1 - 1e-9 ? 1 - 1e-9 : p;
    return (float)log(p / (1 - p));
}

const char *fmq_calib_state_name(int state)
{
    switch (state) {
    case FMQ_CALIB_LEARNING:
        return "learning";
    case FMQ_CALIB_CALIBRATED:
        return "calibrated";
    case FMQ_CALIB_RECALIBRATING:
        return "recalibrating";
    default:
        return "?";
    }
}

void fmq_calib_cfg_default(struct fmq_calib_cfg *c)
{
    c->budget = 0.01;
    c->min_flows = 200; /* a 1% quantile needs a few flows above it to mean anything */
    c->min_span = 300;  /* five minutes: one burst of a chatty device is not a site's traffic */
    c->window = 2000;
    c->every = 100;
    c->max_step = 0.25;
    c->rise_period = 3600; /* an hour of traffic to loosen by a quarter of the window's spread */
    c->tighten = 1; /* a quiet site alerts on what is unusual for it, not only for the fleet */
    c->novelty_beyond_cap = 1;
    c->union_levels = 0; /* issue 14's A/B: Bonferroni split unless set */
    c->spikes = FMQ_SPIKE_OFF;
    c->exclude_in_use = 1; /* NOTES-14-calib.md: the A/B behind both defaults */
    c->confidence = 0.95;
    c->min_eligible = 50;
    c->static_sup = 0.0f; /* P(malicious) >= 0.5 */
}

int fmq_calib_init(struct fmq_calib *c, const struct fmq_calib_cfg *cfg)
{
    size_t w;
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    if (cfg->window < 1 || cfg->every < 1 || cfg->min_flows < 0 || !(cfg->budget > 0) ||
        cfg->budget >= 1)
        return FMQ_EINVAL;
    w = (size_t)cfg->window;
    c->slot = malloc(w * sizeof *c->slot);
    c->score = malloc(w * FMQ_NCH * sizeof *c->score);
    c->ts = malloc(w * sizeof *c->ts);
    c->lab = malloc(w);
    c->scratch = malloc(w * FMQ_NCH * sizeof *c->scratch);
    if (!c->slot || !c->score || !c->ts || !c->lab || !c->scratch) {
        fmq_calib_free(c);
        return FMQ_ENOMEM;
    }
    c->first_ts = NAN;
    c->last_ts = NAN;
    c->recomputed_ts = NAN;
    for (int ch = 0; ch < FMQ_NCH; ch++) c->rank[ch] = -1;
    return 0;
}

void fmq_calib_free(struct fmq_calib *c)
{
    free(c->slot);
    free(c->score);
    free(c->ts);
    free(c->lab);
    free(c->scratch);
    c->lab = NULL;
    c->slot = NULL;
    c->score = NULL;
    c->ts = NULL;
    c->scratch = NULL;
}

static void set_flags(struct fmq_calib *c, int now);

/* Thresholds of a site that has not calibrated: the fleet's cap, what its most unusual benign
 * sites need (a new site is not flooded with alerts while it learns, and what scores above
 * every benign site's quantile still alerts from the first flow); without a fleet rule the
 * static supervised threshold and no novelty alert. */
static void fleet_thresholds(const struct fmq_rule *r, int channels, float static_sup, float *thr)
{
    for (int ch = 0; ch < FMQ_NCH; ch++) {
        if (!(channels & FMQ_CH_BIT(ch)))
            thr[ch] = INFINITY;
        else if (r && (r->channels & FMQ_CH_BIT(ch)))
            thr[ch] = r->cap[ch];
        else
            thr[ch] = ch == FMQ_CH_SUP ? static_sup : INFINITY;
    }
}

void fmq_calib_fix(struct fmq_calib *c, int channels, const float *thr)
{
    c->channels = channels;
    for (int ch = 0; ch < FMQ_NCH; ch++)
        c->thr[ch] = c->target[ch] = channels & FMQ_CH_BIT(ch) ? thr[ch] : INFINITY;
    c->state = FMQ_CALIB_CALIBRATED;
    c->fixed = 1;
}

void fmq_calib_set_model(struct fmq_calib *c, int channels, const struct fmq_rule *rule)
{
    c->fixed = 0;
    c->channels = channels;
    if (rule)
        c->rule = *rule;
    else
        memset(&c->rule, 0, sizeof c->rule);
    c->rule.channels &= channels;
    set_flags(c, 1);
    if (c->state == FMQ_CALIB_LEARNING)
        fleet_thresholds(&c->rule, channels, c->cfg.static_sup, c->thr);
}

int fmq_calib_push(struct fmq_calib *c, uint32_t slot, double ts, const float *scores, int label)
{
    size_t w = (size_t)c->cfg.window;
    c->slot[c->head] = slot;
    c->ts[c->head] = ts;
    c->lab[c->head] = (int8_t)label;
    memcpy(c->score + c->head * FMQ_NCH, scores, FMQ_NCH * sizeof *scores);
    c->head = (c->head + 1) % w;
    if (c->n < w) c->n++;
    if (isfinite(ts)) {
        if (!isfinite(c->first_ts)) c->first_ts = ts;
        if (!isfinite(c->last_ts) || ts > c->last_ts) c->last_ts = ts; /* flows come out of order */
    }
    c->seen++;
    if (++c->since < (uint64_t)c->cfg.every) return 0;
    return fmq_calib_recompute(c, 0);
}

/* A flow another channel flags is no normal traffic for channel ch, nor is one labelled
 * malicious. "Flags": above c->flag, the fleet threshold, or with exclude_in_use (after a
 * site's first flows) the larger of it and the threshold in use. Why the second: each channel's
 * quantile then covers exactly the flows the other channel lets through, so the two together
 * pass at most the budget (the union bound over the rule the site applies). With the fleet's
 * threshold alone, a site whose novelty tail is heavier than the fleet's (a desktop: 12% of
 * its flows above the fleet's novelty threshold, its own threshold far above it) leaves those
 * flows out of the supervised quantile, so they fall into no channel's budget, and the
 * supervised threshold, set on the rest, alerted on 9% of its benign flows (NOTES-14). */
static int eligible(const struct fmq_calib *c, size_t i, int ch)
{
    const float *s = c->score + i * FMQ_NCH;
    if (c->lab[i] == FMQ_LABEL_MALICIOUS) return 0;
    for (int o = 0; o < FMQ_NCH; o++)
        if (o != ch && (c->rule.channels & FMQ_CH_BIT(o)) && s[o] > c->flag[o]) return 0;
    return 1;
}

/* c->flag for this recomputation: the fleet's thresholds, or (exclude_in_use, not for a new
 * model, whose window scores the thresholds in use were not set on) the larger of them and
 * the thresholds in use. */
static void set_flags(struct fmq_calib *c, int now)
{
    for (int o = 0; o < FMQ_NCH; o++) {
        float f = c->rule.thr[o];
        if (c->cfg.exclude_in_use && !now && c->thr[o] > f) f = c->thr[o];
        c->flag[o] = f;
    }
}

/* The eligible window scores of channel ch, sorted, into out (window floats); returns how
 * many. */
static size_t eligible_sorted_into(const struct fmq_calib *c, int ch, float *out)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        float v = c->score[i * FMQ_NCH + (size_t)ch];
        if (isfinite(v) && eligible(c, i, ch)) out[k++] = v;
    }
    qsort(out, k, sizeof *out, cmp_float);
    return k;
}

static size_t eligible_sorted(struct fmq_calib *c, int ch)
{
    return eligible_sorted_into(c, ch, c->scratch);
}

/* Exact union calibration (calib_union): one tail share a for every channel, the largest in
 * [budget / k, budget] at which the share of the window's flows (those not labelled malicious)
 * above any channel's (1 - a) quantile is at most the budget. Flows that both channels flag
 * count once, so the budget is used rather than the union bound's worst case; a is never below
 * the Bonferroni share. This is the min-P combination of the channels' empirical p-values
 * (Westfall & Young, "Resampling-Based Multiple Testing", Wiley 1993, the min-P adjustment: the
 * smallest per-test p-value compared with its own null quantile), the window as the null sample.
 * The levels are chosen on the window's own quantiles, before the fleet's floor and cap clamp
 * them. Returns the share; the Bonferroni share when a channel has too few eligible flows or
 * no fleet rule (the static supervised threshold). Each channel's sorted eligible scores go to
 * its own part of scratch (window floats each). */
static double union_share(struct fmq_calib *c, double share)
{
    size_t k[FMQ_NCH], m = 0;
    const float *v[FMQ_NCH];
    double lo = share, hi = c->cfg.budget;
    int chans = 0;
    for (int ch = 0; ch < FMQ_NCH; ch++) {
        if (!(c->channels & FMQ_CH_BIT(ch))) continue;
        if (!(c->rule.channels & FMQ_CH_BIT(ch))) return share;
        v[ch] = c->scratch + (size_t)ch * (size_t)c->cfg.window;
        k[ch] = eligible_sorted_into(c, ch, c->scratch + (size_t)ch * (size_t)c->cfg.window);
        if (k[ch] < (size_t)c->cfg.min_eligible) return share;
        chans |= FMQ_CH_BIT(ch);
    }
    if (nbits(chans) < 2) return share;
    for (size_t i = 0; i < c->n; i++) m += c->lab[i] != FMQ_LABEL_MALICIOUS;
    if (m == 0) return share;
    /* the union's rate is non-decreasing in a: bisection (30 steps: a to 1e-11 of the budget) */
    for (int it = 0; it < 30; it++) {
        double a = it == 0 ? hi : 0.5 * (lo + hi);
        float t[FMQ_NCH];
        size_t above = 0;
        for (int ch = 0; ch < FMQ_NCH; ch++)
            t[ch] = chans & FMQ_CH_BIT(ch) ? sorted_quantile(v[ch], k[ch], 1.0 - a) : INFINITY;
        for (size_t i = 0; i < c->n; i++) {
            const float *s = c->score + i * FMQ_NCH;
            if (c->lab[i] == FMQ_LABEL_MALICIOUS) continue;
            for (int ch = 0; ch < FMQ_NCH; ch++)
                if ((chans & FMQ_CH_BIT(ch)) && s[ch] > t[ch]) {
                    above++;
                    break;
                }
        }
        if ((double)above <= c->cfg.budget * (double)m) {
            if (it == 0) return hi; /* the channels' tails coincide: each may have it all */
            lo = a;
        } else
            hi = a;
    }
    return lo;
}

/* A spike (calib_spikes): the window's sorted eligible scores v[0..k) that are all but equal to
 * the quantile q, more than `share` of them; the threshold is moved out of it. Scores of one
 * repeated flow differ in the last digits (features such as durations jitter), so "identical" is
 * within tol = 1e-4 x (1 + |q|). Above the fleet threshold the spike is not normal for the fleet
 * and alerts (the threshold goes just below it); otherwise, or with no fleet rule, the threshold
 * sits at its top (none of it alerts: what a quantile inside it gave before, made explicit).
 * FMQ_SPIKE_BELOW always alerts on it (a diagnostic). */
static float out_of_spike(const struct fmq_calib *c, int ch, const float *v, size_t k, float q,
                          double share)
{
    float tol = 1e-4f * (1 + fabsf(q));
    size_t a = 0, b = k;
    if (c->cfg.spikes == FMQ_SPIKE_OFF || k == 0) return q;
    while (a < k && v[a] < q - tol) a++; /* first in the spike */
    while (b > a && v[b - 1] > q + tol) b--;
    if ((double)(b - a) <= share * (double)k) return q;
    if (c->cfg.spikes == FMQ_SPIKE_BELOW ||
        ((c->rule.channels & FMQ_CH_BIT(ch)) && v[a] > c->rule.thr[ch]))
        return v[a] - tol;
    return v[b - 1];
}

void fmq_calib_remember_ranks(struct fmq_calib *c)
{
    for (int ch = 0; ch < FMQ_NCH; ch++) {
        size_t k, above = 0;
        c->rank[ch] = -1;
        if (c->state == FMQ_CALIB_LEARNING || !isfinite(c->thr[ch])) continue;
        if ((k = eligible_sorted(c, ch)) < (size_t)c->cfg.min_eligible) continue;
        while (above < k && c->scratch[k - 1 - above] > c->thr[ch]) above++;
        c->rank[ch] = (double)above / (double)k;
    }
}

int fmq_calib_recompute(struct fmq_calib *c, int now)
{
    int changed = 0, moving = 0, at_once;
    double span = isfinite(c->first_ts) ? c->last_ts - c->first_ts : 0;
    double dt =
        isfinite(c->last_ts) && isfinite(c->recomputed_ts) ? c->last_ts - c->recomputed_ts : 0;
    double share = fmq_rule_share(c->cfg.budget, c->channels);
    c->since = 0;
    if (c->fixed) return 0; /* set from labels */
    if (c->state == FMQ_CALIB_LEARNING &&
        (c->seen < (uint64_t)c->cfg.min_flows || span < c->cfg.min_span)) {
        float thr[FMQ_NCH];
        fleet_thresholds(&c->rule, c->channels, c->cfg.static_sup, thr);
        changed = memcmp(thr, c->thr, sizeof thr) != 0;
        memcpy(c->thr, thr, sizeof thr);
        return changed;
    }
    c->recomputed++;
    c->recomputed_ts = c->last_ts;
    set_flags(c, now);
    if (dt < 0) dt = 0;
    if (c->cfg.union_levels) share = union_share(c, share);
    for (int ch = 0; ch < FMQ_NCH; ch++) {
        int with_rule = (c->rule.channels & FMQ_CH_BIT(ch)) != 0;
        float fleet = with_rule ? c->rule.thr[ch] : INFINITY, target, lo, hi, spread = 0;
        float median = INFINITY;
        size_t k;
        if (!(c->channels & FMQ_CH_BIT(ch))) {
            c->thr[ch] = c->target[ch] = INFINITY;
            continue;
        }
        if (ch == FMQ_CH_SUP && !with_rule) {
            /* no fleet rule for the supervised score: its static threshold, as configured */
            c->thr[ch] = c->target[ch] = c->cfg.static_sup;
            continue;
        }
        k = eligible_sorted(c, ch);
        if (k < (size_t)c->cfg.min_eligible) /* almost everything is flagged: keep the fleet's */
            target = with_rule ? fleet : c->thr[ch];
        else {
            target = confident_quantile(c->scratch, k, share, c->cfg.confidence);
            median = sorted_quantile(c->scratch, k, 0.5);
            target = out_of_spike(c, ch, c->scratch, k, target, share);
            spread = target - median;
            if (now && c->rank[ch] >= 0) /* a new model: the threshold keeps its place */
                target = sorted_quantile(c->scratch, k, 1.0 - c->rank[ch]);
        }
        at_once = now || !isfinite(c->thr[ch]) || c->state == FMQ_CALIB_LEARNING;
        if (with_rule) {
            lo = c->cfg.tighten ? -INFINITY : fleet;
            hi = c->rule.cap[ch];
            /* novelty_beyond_cap: the novelty threshold passes the cap only by the slow rise
             * below, from a threshold in use, and only while the site's typical (median) flow
             * is one the fleet finds normal: a site whose tail is heavier than every benign
             * site of the fleet (a desktop among IoT devices) is followed within hours, while a
             * site whose traffic is mostly unusual (a flood from its first minute) keeps the
             * cap. A new model keeps a threshold that had risen past the cap at its place. The
             * supervised channel never passes its cap: what the fleet's labels call an attack
             * is not learnt as normal */
            if (ch == FMQ_CH_NOV && c->cfg.novelty_beyond_cap &&
                ((!at_once && median <= fleet) || (now && c->rank[ch] >= 0)))
                hi = INFINITY;
            target = target < lo ? lo : target > hi ? hi : target;
        }
        c->target[ch] = target;
        if (at_once || target <= c->thr[ch]) {
            /* a new model (at the same place in the site's traffic), the first calibration, or
             * a stricter threshold (never a way to absorb an attack): at once */
            changed |= c->thr[ch] != target;
            c->thr[ch] = target;
        } else {
            /* looser: at most max_step x the window's spread per rise_period of traffic, so a
             * burst of a few minutes barely moves it while a change that lasts hours is
             * followed */
            double allow = c->cfg.max_step * (spread > 0 ? spread : 0) * dt / c->cfg.rise_period;
            float d = target - c->thr[ch];
            if (d <= allow)
                c->thr[ch] = target;
            else {
                c->thr[ch] += (float)allow;
                /* still short by more than a tenth of the spread: a move, not noise */
                moving |= target - c->thr[ch] > 0.1f * spread;
            }
            changed = 1;
        }
    }
    for (int ch = 0; ch < FMQ_NCH; ch++) c->rank[ch] = -1;
    c->state = moving ? FMQ_CALIB_RECALIBRATING : FMQ_CALIB_CALIBRATED;
    return changed;
}

static void judge(const float *thr, int channels, const float *scores, struct fmq_verdict *v)
{
    v->alert = 0;
    v->why = 0;
    for (int ch = 0; ch < FMQ_NCH; ch++) {
        v->score[ch] = channels & FMQ_CH_BIT(ch) ? scores[ch] : NAN;
        v->thr[ch] = thr[ch];
        if ((channels & FMQ_CH_BIT(ch)) && scores[ch] > thr[ch]) v->why |= FMQ_CH_BIT(ch);
    }
    v->alert = v->why != 0;
}

void fmq_calib_verdict(const struct fmq_calib *c, const float *scores, struct fmq_verdict *v)
{
    judge(c->thr, c->channels, scores, v);
    v->state = c->state;
}

void fmq_rule_verdict(const struct fmq_rule *r, int channels, float static_sup, const float *scores,
                      struct fmq_verdict *v)
{
    float thr[FMQ_NCH];
    fleet_thresholds(r, channels, static_sup, thr);
    judge(thr, channels, scores, v);
    v->state = FMQ_CALIB_LEARNING;
}
