/* GSFS, the Gradient Sensing Federated Strategy (Otoum, Asad, Nayak 2025, sec. III-B), as the
 * paper specifies it, plus three switchable extensions.
 *
 * Agent (fmq_gsfs_trigger): every `eval_every` local mini-batches, with g_l the L2 norm of layer
 * l's gradient and M the validation metric:
 *   mu_l    <- alpha mu_l    + (1 - alpha) g_l
 *   sigma_l <- alpha sigma_l + (1 - alpha) |g_l - mu_l|
 *   upload if g_l > mu_l + beta sigma_l for ANY layer      (gradient-norm trigger)
 *          or |M - M_ref| > delta_perf                      (performance trigger)
 * in that order, literally: the statistics include the current norm before the comparison. The
 * norm trigger is silent for the first `warmup` checks (the EWMA starts at zero, so every early
 * norm would fire). M_ref is reset when a global model arrives and at every upload.
 *
 * Coordinator (fmq_gsfs_pool): keeps the latest update of each agent (a newer one from the same
 * agent supersedes it: both are changes from the same global model, the newer one has more
 * training in it), and aggregates when the pool holds M = ceil(quorum * N) distinct agents, N
 * the agents known online. theta <- theta + sum_k a_k delta_k, a_k proportional to agent k's
 * submission frequency (accepted updates, decayed by (1 - 1/freq_window) per aggregation),
 * normalised; then the pool is cleared.
 *
 * Left open by the paper, chosen here (defaults in fmq_gsfs_params_default, reasons there):
 * stale updates (base version older than current) are kept up to max_staleness versions and
 * weighted by FedBuff's 1/(1 + sqrt(staleness)) (Nguyen et al. 2022) when staleness_weight is on,
 * else dropped; a round also closes at its deadline with fewer than M agents (documented in
 * coordinator.conf.example) so a quiet fleet cannot stall. Informativeness sensing (extension):
 * an update whose norm exceeds outlier_norm x the pool's median is scaled down to that bound, and
 * one whose cosine to the mean of the others is below min_cosine gets weight 0. Example quorum
 * (extension): with quorum_examples > 0 a round also waits until the pooled updates stand for that
 * share of the online agents' training examples, so it cannot close again and again without the
 * sites that hold most of the data. Selection gaming (extension): the reference the cosines
 * are taken against is the mean of the other updates each scaled to at most the pool's median
 * norm (a direction vote, as in FLTrust's normalisation, Cao et al. 2021), so one large update,
 * within the outlier bound or not, cannot turn the reference against the honest ones and have
 * them dropped (with the reference clipped at the 5x bound instead, one sign-flipped update of
 * 4.9x the norm among five honest ones has every honest update dropped: unit_gsfs "reference
 * not turned"), and an agent already used in fair_share x the
 * fleet's mean number of recent aggregations or more sits the next aggregation out, so uploading at
 * every chance (for example by inflating gradient norms to fire the trigger) buys no extra say.
 * Memory (extension, `memory`): the coordinator keeps every agent's latest local model
 * (theta + delta when its update was used) and moves the global model to the example-weighted
 * mean of all of them, not of the pool alone, as MIFA does for devices that come and go (Gu et
 * al. 2021, "Fast federated learning in the presence of arbitrary device unavailability"). A
 * site that trained earlier keeps its say until it sends again, so the model stops swinging
 * with whichever agents happened to fill the pool; a memory unrefreshed for freq_window
 * aggregations is forgotten. */
#ifndef FMQ_GSFS_H
#define FMQ_GSFS_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/model.h"
#include "fedmq/robust.h"
#include "fedmq/wire.h"

struct fmq_gsfs_params {
    /* agent */
    double alpha;      /* EWMA decay of the norm statistics */
    double beta;       /* sigma multiplier of the norm trigger */
    double delta_perf; /* performance trigger threshold on the validation metric */
    int eval_every;    /* mini-batches between trigger checks */
    int warmup;        /* checks before the norm trigger may fire */
    int max_uploads;   /* uploads per global version, 0 = no cap (the paper's) */
    /* coordinator */
    double quorum;          /* M = ceil(quorum * agents online) */
    int freq_window;        /* submission-frequency memory, in aggregations */
    int max_staleness;      /* versions an update may lag and still count */
    int staleness_weight;   /* 1/(1+sqrt(s)) weighting of stale updates */
    int informativeness;    /* norm and cosine sensing */
    double outlier_norm;    /* norm bound, times the pool median */
    double min_cosine;      /* cosine to the others' mean below this: weight 0 */
    int weight_examples;    /* a_k also proportional to the example count n_k (not in the paper) */
    double quorum_examples; /* also require this share of online agents' examples in the pool (0 =
                               off) */
    double fair_share;      /* an agent used in fair_share x the fleet's mean number of recent
                               aggregations or more sits the next one out (0 = off) */
    int memory;             /* aggregate every agent's latest local model (MIFA), not the pool */
    double count_cap; /* with weight_examples: claimed example counts capped at count_cap x the
                         pool's median count, in the weights and the memory (0 = off; the
                         coordinator sets its count_cap, robust.h, so that one liar claiming 2^40
                         examples weighs as five median agents, not as the whole fleet) */
};
void fmq_gsfs_params_default(struct fmq_gsfs_params *p);

struct fmq_gsfs_trigger {
    int nlayers;
    double mu[FMQ_MLP_MAXHIDDEN + 1];
    double sigma[FMQ_MLP_MAXHIDDEN + 1];
    long checks;  /* norm observations so far */
    double m_ref; /* reference metric */
};
enum { FMQ_GSFS_NONE = 0, FMQ_GSFS_NORM = 1, FMQ_GSFS_PERF = 2 };
void fmq_gsfs_trigger_init(struct fmq_gsfs_trigger *t, int nlayers);
/* New reference (a global model arrived, or an upload was made); the norm statistics persist. */
void fmq_gsfs_trigger_reference(struct fmq_gsfs_trigger *t, double metric);
/* Feeds one check; returns FMQ_GSFS_NORM | FMQ_GSFS_PERF bits of the triggers that fired. */
int fmq_gsfs_trigger_check(struct fmq_gsfs_trigger *t, const struct fmq_gsfs_params *p,
                           const double *layer_norms, double metric);

/* ---- coordinator pool ---- */
struct fmq_gsfs_entry {
    char agent[FMQ_ID_MAX];
    uint64_t base; /* global version the update was computed from */
    uint64_t n_examples;
    float *delta;  /* owned slot, dim values */
    double weight; /* set by fmq_gsfs_aggregate: final normalised a_k */
    int dropped;   /* informativeness gave it weight 0 */
    int deferred;  /* over its fair share: not used this time */
    int clipped;   /* informativeness scaled it down */
    int capped;    /* its claimed example count was above the cap */
    int used;
};

struct fmq_gsfs_freq {
    char agent[FMQ_ID_MAX];
    double f;       /* decayed submission count */
    double picks;   /* decayed count of aggregations that used it */
    float *mem;     /* memory: owned, dim values, the agent's latest local model (NULL: none) */
    uint64_t mem_n; /* its example count */
    int mem_age;    /* aggregations since it was refreshed */
};

/* Pools with fewer weighted entries than this aggregate by GSFS's sensing alone: a robust rule
 * needs a majority to find (Krum's n >= 2f + 3 at one Byzantine entry, Blanchard et al. 2017),
 * and over three or four sites of a non-IID fleet krum-filter kept one site's update and
 * collapsed the model (F1 0 on 2 of 20 fedmq-sim seeds at gsfs_quorum 0.3, NOTES-15.md). */
#define FMQ_GSFS_ROBUST_MIN 5

struct fmq_gsfs_pool {
    struct fmq_gsfs_params p;
    size_t dim;
    int cap;                    /* max entries (distinct agents) */
    struct fmq_gsfs_entry *e;   /* owned, cap */
    struct fmq_gsfs_freq *freq; /* owned, cap */
    int nfreq;
    double *mean;       /* owned scratch, dim */
    const float *theta; /* memory: borrowed current global parameters, set before aggregating */
    /* borrowed, may be NULL: the coordinator's robust rule (robust.h), applied to the entries
     * GSFS's own weights keep, so a pool is as well defended as a synchronous round; an entry
     * the rule leaves out counts as dropped (and refreshes no memory) */
    struct fmq_robust *robust;
    int last_robust;                     /* 1: the last aggregation went through it */
    double *s_norm, *s_sorted, *s_scale; /* owned scratch, cap each */
    int *s_idx, *s_rob;                  /* owned scratch, cap each */
    uint64_t superseded;                 /* updates replaced by a newer one from the same agent */
    int last_used, last_dropped, last_clipped, last_deferred, last_capped; /* of the last
                                                                              aggregation */
};
int fmq_gsfs_pool_init(struct fmq_gsfs_pool *g, const struct fmq_gsfs_params *p, size_t dim,
                       int max_agents);
void fmq_gsfs_pool_free(struct fmq_gsfs_pool *g);
/* Adds an accepted update (copied). FMQ_ESTALE if base is outside [current - max_staleness,
 * current]; FMQ_EFULL if the pool is full. */
int fmq_gsfs_pool_add(struct fmq_gsfs_pool *g, const char *agent, uint64_t base, uint64_t current,
                      uint64_t n_examples, const float *delta);
int fmq_gsfs_pool_distinct(const struct fmq_gsfs_pool *g);
/* Training examples behind the updates in the pool. */
uint64_t fmq_gsfs_pool_examples(const struct fmq_gsfs_pool *g);
int fmq_gsfs_quorum(const struct fmq_gsfs_params *p, int agents_online);
/* Computes the weights (frequency x staleness x informativeness, normalised), writes the
 * aggregate change to out (dim: their weighted mean, or the robust rule's aggregate of the
 * entries with those weights when g->robust names one), decays the frequencies and clears the pool.
 * Entries stay readable (weight, dropped, clipped) until the next add. Returns the entries used, or
 * FMQ_EINVAL when the pool is empty or every entry was dropped. */
int fmq_gsfs_aggregate(struct fmq_gsfs_pool *g, uint64_t current, double *out);

#endif
