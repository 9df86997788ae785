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

#endif
