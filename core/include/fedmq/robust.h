/* Byzantine-robust aggregation of one round's updates (synchronous strategies). Every update is
 * kept for the round (no allocation after the first round of this size), then one rule turns
 * them into the aggregate change the server optimizer applies:
 *   clip          each update scaled down to at most clip_mult x the median update norm, then
 *                 the weighted mean (norm bounding, as in Sun et al. 2019, "Can you really
 *                 backdoor federated learning?")
 *   median        coordinate-wise median (Yin et al. 2018, "Byzantine-robust distributed
 *                 learning: towards optimal statistical rates")
 *   trimmed-mean  coordinate-wise mean after dropping the trim share of the largest and of the
 *                 smallest values (Yin et al. 2018)
 *   multi-krum    the m updates with the smallest Krum score (sum of squared distances to the
 *                 n - f - 2 nearest others), averaged by weight (Blanchard et al. 2017, "Machine
 *                 learning with adversaries: Byzantine tolerant gradient descent"; m = n - f)
 *   krum-filter   multi-krum's choice as a reference only: the weighted mean of every update
 *                 that points the same way as the reference (positive cosine) and lies within
 *                 krum_tau x the median distance to it. An honest update from a skewed site
 *                 stays (multi-krum always drops f x n updates, which costs accuracy on a
 *                 non-IID fleet), while flipped, scaled or far-off updates go (Blanchard et al.
 *                 2017 for the reference; the cosine test as in FLTrust, Cao et al. 2021, with
 *                 the reference taken from the updates instead of a server dataset). An
 *                 update holding more than `majority` of the round's weight (examples) is kept
 *                 whatever its direction: it is the weighted median by itself, so it is the
 *                 honest majority by data even when the other sites outnumber it. The
 *                 weights are the agents' own example counts: README, Security, on that risk.
 *   geomedian     the weighted geometric median, smoothed Weiszfeld (RFA: Pillutla, Kakade
 *                 and Harchaoui 2022, "Robust aggregation for federated learning"); breaks
 *                 down at half the weight, not half the agents
 *   geomed-filter the weighted mean of the updates within krum_tau x the median distance of
 *                 the geometric median and with cosine to it above krum_cos
 * A non-finite update is refused at add.
 *
 * Example counts are the agents' own word. Before any rule weighs them, every weight is capped
 * at count_cap x the median weight of the round (count_cap 5 by default; 0 = off): the median
 * moves only when more than half the updates lie, so one agent claiming 2^40 examples weighs at
 * most five typical sites. It reaches krum-filter's majority exemption only in a fleet whose
 * other sites together hold fewer than five median sites' worth of examples (the demo's largest
 * honest site holds 7.2 x the median and 64% of the examples, 55% after the cap: it keeps the
 * exemption). Several liars together still weigh count_cap x median each (README, Security).
 * last_capped counts the capped weights.
 *
 * The krum family compares every pair of updates (n x n distances). Beyond
 * FMQ_ROBUST_PAIRWISE_MAX updates in a round it never falls back to a plain mean: multi-krum
 * and krum-filter degrade to geomed-filter (the same distance and cosine filter around the
 * weighted geometric median, O(n x dim) per iteration, the same breakdown at half the weight),
 * and last_rule says which rule produced the aggregate. */
#ifndef FMQ_ROBUST_H
#define FMQ_ROBUST_H

#include <stddef.h>

#define FMQ_ROBUST_PAIRWISE_MAX 1024

enum fmq_robust_rule {
    FMQ_ROBUST_NONE = 0,
    FMQ_ROBUST_CLIP,
    FMQ_ROBUST_MEDIAN,
    FMQ_ROBUST_TRIMMED,
    FMQ_ROBUST_KRUM,
    FMQ_ROBUST_KRUM_FILTER,
    FMQ_ROBUST_GEOMEDIAN,
    FMQ_ROBUST_GEOMED_FILTER
};
int fmq_robust_parse(const char *s, int *rule);
const char *fmq_robust_name(int rule);

struct fmq_robust {
    int rule;
    double clip_mult; /* clip: bound = clip_mult x median norm */
    double trim;      /* trimmed-mean: share cut at each end, [0, 0.5) */
    double f;         /* multi-krum, krum-filter: assumed Byzantine share of the updates */
    double krum_tau;  /* krum-filter: drop distances above krum_tau x the median distance */
    double krum_cos;  /* krum-filter: drop cosines to the reference at or below this */
    double majority;  /* krum-filter: keep any update above this share of the weight; 1 = off */
    double count_cap; /* weights capped at count_cap x the round's median weight; 0 = off */
    size_t dim, n, cap;
    float *u;         /* owned: cap x dim updates */
    double *w;        /* owned: cap weights as claimed */
    double *we;       /* owned: cap weights after the count cap */
    float *col;       /* owned: cap scratch (one coordinate across updates) */
    double *d2;       /* owned: pairwise squared distances, at most FMQ_ROBUST_PAIRWISE_MAX^2 */
    double *s1, *s2;  /* owned: cap scratch each (scores, distances, norms) */
    int *use;         /* owned: cap flags; after aggregate: the updates that shaped it */
    int last_rule;    /* the rule that produced the last aggregate (rule, or its degradation) */
    int last_used;    /* updates that shaped the last aggregate */
    int last_clipped; /* clip: updates scaled down; filters: updates dropped */
    int last_capped;  /* weights cut by the count cap */
};
int fmq_robust_init(struct fmq_robust *r, int rule, size_t dim);
void fmq_robust_free(struct fmq_robust *r);
void fmq_robust_reset(struct fmq_robust *r);
int fmq_robust_add(struct fmq_robust *r, const float *delta, double weight);
/* out (dim) = the rule's aggregate; FMQ_EINVAL when nothing was added. Afterwards use[k] says
 * whether update k shaped it and we[k] is the weight it had. */
int fmq_robust_aggregate(struct fmq_robust *r, double *out);
/* The count cap for these claimed weights: mult x their median (HUGE_VAL when mult is 0). */
double fmq_robust_count_cap(const double *w, size_t n, double mult, double *scratch);

#endif
