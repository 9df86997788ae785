/* Flow featurizer: one fixed-length vector per flow (schemas/features.md lists every index):
 * log-scaled counts and durations, one-hot proto/service/conn_state, history flags, port classes,
 * locality, and per-device context over the originator's last `window` flows (gap, distinct
 * destinations and ports, repeat ratios, unanswered share, rate). The featurizer keeps that
 * context, so flows must be fed in time order per device. Normalisation statistics are computed
 * with fmq_moments (mergeable across agents) and travel inside the model. */
#ifndef FMQ_FEATURIZE_H
#define FMQ_FEATURIZE_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/flow.h"

#define FMQ_FEAT_VERSION 1
#define FMQ_FEAT_DIM 80
#define FMQ_FEAT_MAXWIN 64

struct fmq_feat_dev; /* per-device context, private to featurize.c */

struct fmq_featurizer {
    struct fmq_feat_dev *devs; /* owned, max_devices slots */
    int32_t *buckets;          /* owned, hash heads */
    size_t max_devices;        /* bound on tracked devices; the least recently seen is evicted */
    size_t nbuckets;           /* power of two */
    size_t n;                  /* devices tracked */
    int window;                /* flows of context per device, <= FMQ_FEAT_MAXWIN */
    uint64_t seq;              /* flows seen, for LRU eviction */
};

int fmq_feat_init(struct fmq_featurizer *fz, size_t max_devices, int window);
void fmq_feat_free(struct fmq_featurizer *fz);
void fmq_feat_reset(struct fmq_featurizer *fz); /* forget every device's context */

/* Writes FMQ_FEAT_DIM raw (unnormalised) features of f into x and then adds f to its device's
 * context. No allocation. */
void fmq_feat_extract(struct fmq_featurizer *fz, const struct fmq_flow *f, float *x);
const char *fmq_feat_name(int i);
/* 1 when feature i only takes the values 0 and 1 (one-hots, flags), 0 for counts and shares. */
int fmq_feat_is_binary(int i);
/* The interval feature i always lies in, whatever the input (schemas/features.md, "range"):
 * one-hot flags and shares [0, 1], log-scaled counts [0, log1p(2^52)] (counts above 2^52 are
 * refused by the flow parser), log-scaled seconds [0, log1p(DBL_MAX)], window counts and rates
 * [0, log1p(FMQ_FEAT_MAXWIN)]. */
void fmq_feat_range(int i, double *lo, double *hi);

/* Streaming mean/variance (Welford), mergeable across agents (Chan et al. 1979). */
struct fmq_moments {
    double n;                  /* samples */
    double mean[FMQ_FEAT_DIM]; /* running mean */
    double m2[FMQ_FEAT_DIM];   /* sum of squared deviations */
};
void fmq_moments_clear(struct fmq_moments *m);
void fmq_moments_add(struct fmq_moments *m, const float *x);
void fmq_moments_merge(struct fmq_moments *into, const struct fmq_moments *other);
/* mean and std (population) as floats; std is floored at FMQ_FEAT_STD_FLOOR so a feature that
 * never varied in training cannot blow up at inference. */
#define FMQ_FEAT_STD_FLOOR 0.05f
void fmq_moments_finish(const struct fmq_moments *m, float *mean, float *std);
/* Whether moments could have come from the featurizer: n >= 1, every mean inside its feature's
 * range (fmq_feat_range) and every variance m2 / n at most (hi - mean)(mean - lo) (the
 * Bhatia-Davis inequality: no sample in [lo, hi] with that mean varies more; it implies
 * Popoviciu's (hi - lo)^2 / 4, and a merge of moments that meet it meets it too). 0, or
 * FMQ_ERANGE with the feature in err. */
int fmq_moments_check(const struct fmq_moments *m, char *err, size_t errlen);
/* The statistics round, robustly (the normalisation every agent then uses must not follow one
 * liar). The n agents' moments in[] (each already checked with fmq_moments_check):
 *   1. counts capped at count_cap x the median count (0 = no cap), as the training rounds cap
 *      example counts (robust.h); a capped agent keeps its means and variances;
 *   2. when filter is set, each agent becomes a vector of its 80 means and 80 stds, each
 *      feature scaled by the median over agents of their stds (floored at FMQ_FEAT_STD_FLOOR);
 *      an agent whose vector lies further than tau x the median distance from the
 *      coordinate-wise median vector (Yin et al. 2018's robust centre; the distance filter of
 *      krum-filter, robust.h) is left out, unless it holds more than `majority` of the capped
 *      counts (the honest site with most of the data, as in krum-filter);
 *   3. the kept agents' moments are merged exactly (Chan et al. 1979).
 * Nothing is left out when every agent is within the bound, so an honest fleet gets the exact
 * merge. kept[k] (n ints, may be NULL) says who was merged; returns the number merged, or
 * FMQ_EINVAL (n 0) / FMQ_ENOMEM. */
struct fmq_moments_rule {
    double count_cap; /* x the median count; 0 = off */
    int filter;       /* 1: the distance filter of step 2 */
    double tau;       /* distance bound, x the median distance */
    double majority;  /* share of the capped counts that is kept whatever its distance */
};
int fmq_moments_robust_merge(const struct fmq_moments *in, size_t n,
                             const struct fmq_moments_rule *rule, struct fmq_moments *out,
                             int *kept, int *capped);
/* The statistics round under secure aggregation (secagg.h), where the coordinator sees only a
 * sum: one site's moments as FMQ_MOMENTS_UNIT values in [0, 1] that add up across sites. Per
 * feature, with z = (x - lo) / w over its range (fmq_feat_range), w = hi - lo but at most 64 (the
 * log-seconds features' range is 709 while real values stay below 20: a narrower span keeps
 * their spread within 32-bit fixed point; a mean beyond it is clamped): the mean of z, then its
 * second moment E[z^2]. Every site counts once (the equal-weight mixture of the sites'
 * distributions): weighting by counts would put each site's count in the clear and let one
 * liar's count outweigh the fleet. An honest site's values are in [0, 1]; a lying one can add
 * anything to the masked sum, so out-of-range sums are clamped (a mean stays inside its range,
 * a variance within Bhatia-Davis) and counted: the normalisation stays usable, at a cost in
 * quality a liar can choose (broker-config/README.md). */
#define FMQ_MOMENTS_UNIT (2 * FMQ_FEAT_DIM)
void fmq_moments_to_unit(const struct fmq_moments *m, float *out);
/* From the sum of k sites' unit vectors: the mixture's moments (n = k), each mean clamped to its
 * range and each variance to the Bhatia-Davis bound, so fmq_moments_check holds. Returns how many
 * sums were outside what k sites in [0, 1] can make (beyond rounding), or FMQ_ERANGE when
 * k < 1. */
int fmq_moments_from_unit(const double *sum, int k, struct fmq_moments *out);
/* What one site masks in a secure statistics round: its moments' unit vector, 1 when it has
 * benign rows (0 else), and their unit vector (zeros without). _from_secure takes the sum over
 * k sites and gives both mixtures; benign->n is 0 when no site had benign rows. Returns the
 * number of out-of-range sums clamped, or FMQ_ERANGE (k < 1). */
#define FMQ_STATS_SECURE_DIM (2 * FMQ_MOMENTS_UNIT + 1)
void fmq_stats_to_secure(const struct fmq_moments *all, const struct fmq_moments *benign,
                         float *out);
int fmq_stats_from_secure(const double *sum, int k, struct fmq_moments *all,
                          struct fmq_moments *benign);
/* Whether a normalisation (in_dim FMQ_FEAT_DIM means and stds, as fmq_moments_finish makes
 * them) could come from such moments: every mean inside its range, every std in
 * [FMQ_FEAT_STD_FLOOR, max(FMQ_FEAT_STD_FLOOR, (hi - lo) / 2)]. 0, or FMQ_ERANGE with err. */
int fmq_norm_check(const float *mean, const float *std, char *err, size_t errlen);

#endif
