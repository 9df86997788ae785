/* GSFS triggers and pool (see gsfs.h for the equations, the paper reference and the choices
 * made where the paper is silent). */
#include "fedmq/gsfs.h"
#include "fedmq/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fmq_gsfs_params_default(struct fmq_gsfs_params *p)
{
    p->alpha = 0.9;        /* the paper's suggested starting point */
    p->beta = 2.0;         /* two deviations: rare for a steady norm, certain for a spike */
    p->delta_perf = 0.005; /* half an F1 point, the low end of the paper's 0.5-1 point */
    p->eval_every = 20;    /* ~1,300 flows at batch 64: cheap next to the training itself */
    p->warmup = 5;         /* EWMA at alpha 0.9 has ~65% of its weight after 10 checks */
    p->max_uploads = 1;    /* one upload per global version; later triggers refresh it only
                            * if the cap is raised (0 = the paper's unlimited) */
    p->quorum = 0.6;       /* the paper's M = 60% of the clients */
    p->freq_window = 10;
    p->max_staleness = 2;
    p->staleness_weight = 1;
    p->informativeness = 1;
    p->outlier_norm = 5.0;
    p->min_cosine = -0.2; /* opposed to the rest of the fleet: an attack or a broken agent */
    p->fair_share = 1.5;  /* the bound on how much more often than average one may count */
    p->count_cap = 5.0;   /* as robust.h's: a median agent's weight times five at most */
}

void fmq_gsfs_trigger_init(struct fmq_gsfs_trigger *t, int nlayers)
{
    memset(t, 0, sizeof *t);
    t->nlayers = nlayers;
}

void fmq_gsfs_trigger_reference(struct fmq_gsfs_trigger *t, double metric)
{
    t->m_ref = metric;
}

int fmq_gsfs_trigger_check(struct fmq_gsfs_trigger *t, const struct fmq_gsfs_params *p,
                           const double *g, double metric)
{
    int fired = 0;
    for (int l = 0; l < t->nlayers; l++) {
        t->mu[l] = p->alpha * t->mu[l] + (1 - p->alpha) * g[l];
        t->sigma[l] = p->alpha * t->sigma[l] + (1 - p->alpha) * fabs(g[l] - t->mu[l]);
        if (t->checks >= p->warmup && g[l] > t->mu[l] + p->beta * t->sigma[l])
            fired |= FMQ_GSFS_NORM;
    }
    t->checks++;
    if (fabs(metric - t->m_ref) > p->delta_perf) fired |= FMQ_GSFS_PERF;
    return fired;
}

int fmq_gsfs_pool_init(struct fmq_gsfs_pool *g, const struct fmq_gsfs_params *p, size_t dim,
                       int max_agents)
{
    memset(g, 0, sizeof *g);
    if (dim == 0 || max_agents < 1) return FMQ_EINVAL;
    g->p = *p;
    g->dim = dim;
    g->cap = max_agents;
    g->e = calloc((size_t)max_agents, sizeof *g->e);
    g->freq = calloc((size_t)max_agents, sizeof *g->freq);
    g->mean = malloc(dim * sizeof *g->mean);
    g->s_norm = malloc((size_t)max_agents * sizeof *g->s_norm);
    g->s_sorted = malloc((size_t)max_agents * sizeof *g->s_sorted);
    g->s_scale = malloc((size_t)max_agents * sizeof *g->s_scale);
    g->s_idx = malloc((size_t)max_agents * sizeof *g->s_idx);
    g->s_rob = malloc((size_t)max_agents * sizeof *g->s_rob);
    if (!g->e || !g->freq || !g->mean || !g->s_norm || !g->s_sorted || !g->s_scale || !g->s_idx ||
        !g->s_rob) {
        fmq_gsfs_pool_free(g);
        return FMQ_ENOMEM;
    }
    return 0;
}

void fmq_gsfs_pool_free(struct fmq_gsfs_pool *g)
{
    for (int i = 0; g->e && i < g->cap; i++) free(g->e[i].delta);
    for (int i = 0; g->freq && i < g->cap; i++) free(g->freq[i].mem);
    free(g->e);
    free(g->freq);
    free(g->mean);
    free(g->s_norm);
    free(g->s_sorted);
    free(g->s_scale);
    free(g->s_idx);
    free(g->s_rob);
    memset(g, 0, sizeof *g);
}

static struct fmq_gsfs_freq *freq_entry(struct fmq_gsfs_pool *g, const char *agent)
{
    for (int i = 0; i < g->nfreq; i++)
        if (strcmp(g->freq[i].agent, agent) == 0) return &g->freq[i];
    if (g->nfreq == g->cap) return NULL;
    snprintf(g->freq[g->nfreq].agent, FMQ_ID_MAX, "%s", agent);
    g->freq[g->nfreq].f = 0;
    g->freq[g->nfreq].picks = 0;
    return &g->freq[g->nfreq++];
}

static double *freq_of(struct fmq_gsfs_pool *g, const char *agent)
{
    struct fmq_gsfs_freq *e = freq_entry(g, agent);
    return e ? &e->f : NULL;
}

int fmq_gsfs_pool_add(struct fmq_gsfs_pool *g, const char *agent, uint64_t base, uint64_t current,
                      uint64_t n_examples, const float *delta)
{
    struct fmq_gsfs_entry *slot = NULL;
    double *f;

    if (base > current || current - base > (uint64_t)g->p.max_staleness) return FMQ_ESTALE;
    for (int i = 0; i < g->cap; i++)
        if (g->e[i].used && strcmp(g->e[i].agent, agent) == 0) {
            slot = &g->e[i];
            g->superseded++;
            break;
        }
    for (int i = 0; !slot && i < g->cap; i++)
        if (!g->e[i].used) slot = &g->e[i];
    if (!slot || !(f = freq_of(g, agent))) return FMQ_EFULL;
    if (!slot->delta && !(slot->delta = malloc(g->dim * sizeof(float)))) return FMQ_ENOMEM;
    snprintf(slot->agent, sizeof slot->agent, "%s", agent);
    memcpy(slot->delta, delta, g->dim * sizeof(float));
    slot->base = base;
    slot->n_examples = n_examples;
    slot->weight = 0;
    slot->dropped = slot->clipped = slot->deferred = slot->capped = 0;
    slot->used = 1;
    *f += 1.0;
    return 0;
}

int fmq_gsfs_pool_distinct(const struct fmq_gsfs_pool *g)
{
    int n = 0;
    for (int i = 0; i < g->cap; i++) n += g->e[i].used;
    return n;
}

uint64_t fmq_gsfs_pool_examples(const struct fmq_gsfs_pool *g)
{
    uint64_t n = 0;
    for (int i = 0; i < g->cap; i++)
        if (g->e[i].used) n += g->e[i].n_examples;
    return n;
}

int fmq_gsfs_quorum(const struct fmq_gsfs_params *p, int agents_online)
{
    int m = (int)ceil(p->quorum * agents_online - 1e-9);
    return m < 1 ? 1 : m;
}

static double norm(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* mult x the lower median of v[0..k) (sorted in place, k > 0), at least 1: the cap on claimed
 * example counts (examples_cap, memory_blend). */
static double lower_median_cap(double *v, size_t k, double mult)
{
    double c;
    qsort(v, k, sizeof *v, cmp_double);
    c = v[(k - 1) / 2] * mult;
    return c > 1 ? c : 1;
}

/* Memory: the used entries refresh their agents' local models (theta + delta), and out becomes
 * the example-weighted mean of every remembered local model minus theta. A memory is allocated
 * once per agent, on its first use; if that fails, this aggregation keeps the pool's result. */
static void memory_blend(struct fmq_gsfs_pool *g, const int *idx, int n, double cap, double *out)
{
    double tw = 0;
    for (int j = 0; j < n; j++) {
        struct fmq_gsfs_freq *fr = freq_entry(g, g->e[idx[j]].agent);
        if (g->e[idx[j]].weight > 0 && fr && !fr->mem &&
            !(fr->mem = malloc(g->dim * sizeof *fr->mem)))
            return;
    }
    for (int i = 0; i < g->nfreq; i++) g->freq[i].mem_age++;
    for (int j = 0; j < n; j++) {
        const struct fmq_gsfs_entry *e = &g->e[idx[j]];
        struct fmq_gsfs_freq *fr = freq_entry(g, e->agent);
        if (!(e->weight > 0) || !fr) continue;
        for (size_t i = 0; i < g->dim; i++) fr->mem[i] = g->theta[i] + e->delta[i];
        fr->mem_n = e->n_examples > 0 ? e->n_examples : 1;
        if ((double)fr->mem_n > cap) fr->mem_n = (uint64_t)cap; /* cap >= 1: the median's x5 */
        fr->mem_age = 0;
    }
    if (g->p.count_cap > 0) {     /* and against every remembered count: a pool of one liar set
                                   * its own cap above; in the memory it is one vote of many */
        double med, *v = g->mean; /* dim doubles of scratch, out of use here */
        size_t k = 0;
        for (int i = 0; i < g->nfreq && k < g->dim; i++)
            if (g->freq[i].mem_n > 0 && g->freq[i].mem_age <= g->p.freq_window)
                v[k++] = (double)g->freq[i].mem_n;
        if (k > 0) {
            med = lower_median_cap(v, k, g->p.count_cap);
            for (int i = 0; i < g->nfreq; i++)
                if ((double)g->freq[i].mem_n > med) g->freq[i].mem_n = (uint64_t)med;
        }
    }
    for (int i = 0; i < g->nfreq; i++)
        if (g->freq[i].mem_n > 0 && g->freq[i].mem_age <= g->p.freq_window)
            tw += (double)g->freq[i].mem_n;
    if (!(tw > 0)) return;
    memset(out, 0, g->dim * sizeof *out);
    for (int i = 0; i < g->nfreq; i++) {
        const struct fmq_gsfs_freq *fr = &g->freq[i];
        double w;
        if (fr->mem_n == 0 || fr->mem_age > g->p.freq_window) continue;
        w = (double)fr->mem_n / tw;
        for (size_t k = 0; k < g->dim; k++) out[k] += w * ((double)fr->mem[k] - g->theta[k]);
    }
}

/* count_cap x the lower median claimed count of the pool (at least 1), or HUGE_VAL when off.
 * A liar's count is one vote in the median, so it cannot raise its own cap past the honest
 * majority's (the rule of fmq_robust_count_cap, robust.c); the lower median because a GSFS pool
 * is often two or three updates, and in a pool of two the mean of the middle pair would be half
 * the liar's claim. */
static double examples_cap(const struct fmq_gsfs_pool *g, const int *idx, int n, double *scratch)
{
    if (!(g->p.count_cap > 0) || n == 0) return HUGE_VAL;
    for (int j = 0; j < n; j++) scratch[j] = (double)g->e[idx[j]].n_examples;
    return lower_median_cap(scratch, (size_t)n, g->p.count_cap);
}

/* The coordinator's robust rule over the entries GSFS's weights keep (weight > 0), each with
 * its GSFS weight (already capped: the rule's own count cap is off for the call, so that a
 * weight is not cut twice). An entry the rule leaves out is dropped. Returns 1 when out is the
 * rule's aggregate; 0 when the rule is `none` or fewer than FMQ_GSFS_ROBUST_MIN entries have
 * weight (GSFS's weighted mean then, and the rule's metrics say `none`); or FMQ_E*. */
static int robust_rule(struct fmq_gsfs_pool *g, const int *idx, int n, double *out)
{
    struct fmq_robust *r = g->robust;
    double count_cap = r->count_cap;
    int k = 0, rc = 0;
    for (int j = 0; j < n; j++) k += g->e[idx[j]].weight > 0;
    if (r->rule == FMQ_ROBUST_NONE || k < FMQ_GSFS_ROBUST_MIN) { /* too few for a majority */
        r->last_rule = FMQ_ROBUST_NONE;
        r->last_used = k;
        r->last_clipped = r->last_capped = 0;
        return 0;
    }
    fmq_robust_reset(r);
    k = 0;
    for (int j = 0; j < n && rc == 0; j++)
        if (g->e[idx[j]].weight > 0) {
            g->s_rob[k++] = j;
            rc = fmq_robust_add(r, g->e[idx[j]].delta, g->e[idx[j]].weight);
        }
    if (rc != 0) return rc;
    r->count_cap = 0;
    rc = fmq_robust_aggregate(r, out);
    r->count_cap = count_cap;
    if (rc < 0) return rc;
    for (int m = 0; m < k; m++)
        if (!r->use[m]) {
            struct fmq_gsfs_entry *e = &g->e[idx[g->s_rob[m]]];
            e->dropped = 1;
            e->weight = 0;
        }
    return 1;
}

int fmq_gsfs_aggregate(struct fmq_gsfs_pool *g, uint64_t current, double *out)
{
    double *norms = g->s_norm, *sorted = g->s_sorted, *scale = g->s_scale;
    double total = 0, median = 0, mean_picks = 0, cap;
    int *idx = g->s_idx, n = 0, used = 0, robust;

    for (int i = 0; i < g->cap; i++)
        if (g->e[i].used) idx[n++] = i;
    if (n == 0) return FMQ_EINVAL;
    cap = examples_cap(g, idx, n, sorted);
    for (int j = 0; j < n; j++) {
        struct fmq_gsfs_entry *e = &g->e[idx[j]];
        double *f = freq_of(g, e->agent), s = (double)(current - e->base);
        double count = (double)e->n_examples;
        e->capped = g->p.weight_examples && count > cap;
        if (count > cap) count = cap;
        e->weight = (f ? *f : 1.0) * (g->p.weight_examples ? count : 1.0);
        if (s > 0) e->weight *= g->p.staleness_weight ? 1.0 / (1.0 + sqrt(s)) : 0.0;
        norms[j] = sorted[j] = norm(e->delta, g->dim);
        scale[j] = 1.0;
    }
    for (int i = 0; i < g->nfreq; i++) mean_picks += g->freq[i].picks;
    mean_picks /= g->nfreq > 0 ? g->nfreq : 1;
    for (int j = 0; g->p.fair_share > 0 && j < n; j++) {
        struct fmq_gsfs_entry *e = &g->e[idx[j]];
        struct fmq_gsfs_freq *fr = freq_entry(g, e->agent);
        if (fr && mean_picks > 0 && fr->picks >= g->p.fair_share * mean_picks) {
            e->deferred = 1;
            e->weight = 0;
        }
    }
    if (g->p.informativeness && n >= 3) {
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
        median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        memset(g->mean, 0, g->dim * sizeof *g->mean);
        for (int j = 0; j < n; j++) { /* the reference: a vote of directions at the median's
                                          scale, so no update weighs more than a median one */
            const float *d = g->e[idx[j]].delta;
            scale[j] = median > 0 && norms[j] > median ? median / norms[j] : 1.0;
            for (size_t i = 0; i < g->dim; i++) g->mean[i] += scale[j] * d[i];
        }
        for (int j = 0; j < n; j++) {
            struct fmq_gsfs_entry *e = &g->e[idx[j]];
            double dot = 0, on = 0, bound = g->p.outlier_norm * median;
            /* cosine to the mean of the others (leave one out, so an outlier cannot pull the
             * reference toward itself) */
            for (size_t i = 0; i < g->dim; i++) {
                double o = (g->mean[i] - scale[j] * e->delta[i]) / (n - 1);
                dot += o * e->delta[i];
                on += o * o;
            }
            if (e->deferred) continue;
            if (norms[j] > 0 && on > 0 && dot / (norms[j] * sqrt(on)) < g->p.min_cosine) {
                e->dropped = 1;
                e->weight = 0;
            } else if (median > 0 && norms[j] > bound) {
                e->clipped = 1;
                e->weight *= bound / norms[j];
            }
        }
    }
    robust = g->robust ? robust_rule(g, idx, n, out) : 0; /* 1: out is the rule's aggregate */
    g->last_robust = robust == 1;
    for (int j = 0; j < n; j++) total += g->e[idx[j]].weight;
    if (!(total > 0) || robust < 0) {
        for (int j = 0; j < n; j++) g->e[idx[j]].used = 0;
        return robust < 0 ? robust : FMQ_EINVAL;
    }
    if (!robust) memset(out, 0, g->dim * sizeof *out);
    for (int j = 0; j < n; j++) {
        struct fmq_gsfs_entry *e = &g->e[idx[j]];
        e->weight /= total;
        if (e->weight > 0) used++;
        for (size_t i = 0; !robust && i < g->dim; i++) out[i] += e->weight * e->delta[i];
        e->used = 0;
    }
    for (int j = 0; j < n; j++)
        if (g->e[idx[j]].weight > 0) {
            struct fmq_gsfs_freq *fr = freq_entry(g, g->e[idx[j]].agent);
            if (fr) fr->picks += 1.0;
        }
    for (int i = 0; i < g->nfreq; i++) {
        g->freq[i].f *= 1.0 - 1.0 / g->p.freq_window;
        g->freq[i].picks *= 1.0 - 1.0 / g->p.freq_window;
    }
    if (g->p.memory && g->theta) memory_blend(g, idx, n, cap, out);
    g->last_used = used;
    g->last_dropped = g->last_clipped = g->last_deferred = g->last_capped = 0;
    for (int j = 0; j < n; j++) {
        g->last_capped += g->e[idx[j]].capped;
        g->last_deferred += g->e[idx[j]].deferred;
        g->last_dropped += g->e[idx[j]].dropped;
        g->last_clipped += g->e[idx[j]].clipped;
    }
    return used;
}
