/* Alert thresholds: the fleet rule a global model carries, the sketches it is made from, and a
 * site's calibration state machine (docs: README "Detection at a new site", schemas/wire.md).
 *
 * A learner scores every flow on up to FMQ_NCH channels: supervised (FMQ_CH_SUP, the logit of
 * P(malicious)) and novelty (FMQ_CH_NOV, e.g. GIoT's negative log-likelihood). A flow alerts
 * when any channel's score is above its threshold. Each of the k channels a model has gets
 * budget / k of the false-positive budget, so together they pass at most the budget of normal
 * flows (the union bound; the Bonferroni split).
 *
 * The fleet rule. With every update an agent sends a sketch: the quantiles of its labelled
 * benign validation flows' scores under the global model it trained from. The coordinator turns
 * the round's sketches into, per channel, a fleet threshold (the quantile at the channel's
 * budget of all the sites' benign flows pooled: their sketched distributions mixed, each site
 * weighted by its benign flows but at most 3x the median site, so one site claiming a huge
 * count cannot make the fleet's threshold its own) and a cap (the largest of the sites'
 * quantiles once the top tenth of the sites is set aside: how far the most unusual benign
 * sites of the fleet need their thresholds to go, which a few sites or liars cannot set; the
 * fleet threshold is never above it). A tenth of the sites may lie about their sketches
 * without opening any site's thresholds beyond what the honest sites' largest needs. The next
 * global model carries the rule; after the last training round a calibration round measures the
 * final model itself, so the rule a run ends with is exact.
 *
 * A site's calibration (one per agent), on the scores of its own newest flows, unlabelled:
 *   LEARNING       fewer than min_flows flows or under min_span seconds of traffic (by flow
 *                  time): the fleet rule's caps, what its most unusual benign sites need, so
 *                  a new site is not flooded while it learns and what is above every benign
 *                  site's quantile alerts from the first flow. A model without a fleet rule:
 *                  the static P(malicious) threshold, and no novelty alert.
 *   CALIBRATED     per channel, the order statistic of the window's eligible flows that keeps
 *                  the channel's share of normal flows within budget / k with probability
 *                  `confidence` (0.95; Wilks' tolerance limit, calib.c: the 5th largest of
 *                  2,000 flows at 0.5%, where the plain quantile is the 10th and passes the
 *                  share at about half the sites; 0 = the plain quantile), clamped to
 *                  [floor, cap]: floor is the fleet threshold (a site only loosens it,
 *                  for traffic the fleet finds unusual but the site sends all the time) unless
 *                  `tighten` lets the quantile go below it; cap is the fleet's cap, so an attack
 *                  that is most of a site's traffic from the first minute is not learnt as
 *                  normal beyond what the fleet's most unusual benign site needed. With
 *                  novelty_beyond_cap the novelty threshold in use may pass its cap, only by
 *                  the slow rise of RECALIBRATING and only while the window's median is at
 *                  most the fleet threshold (the site's typical flow is normal for the fleet,
 *                  its tail heavier than any benign site's: a desktop among IoT devices); the
 *                  supervised threshold never passes its cap. Recomputed
 *                  every `every` flows and when a new model arrives (the window is rescored).
 *   RECALIBRATING  the recomputed target is looser than the threshold in use: the threshold
 *                  rises toward it by at most max_step x the window's spread per rise_period
 *                  of traffic (flow time), so a burst of minutes barely moves it while a change
 *                  that lasts hours is followed; CALIBRATED when it arrives. A stricter target
 *                  applies at once (it absorbs nothing). A new model keeps each threshold at
 *                  its place in the site's traffic (the same share of the window above it).
 * Two settings off by default (issue 14's A/B, NOTES-14-union.md): union_levels gives both
 * channels one tail share, the largest whose union on the window is within the budget (the
 * split above is the union bound's worst case); spikes moves a quantile that falls inside a
 * spike of all but equal scores out of it (FMQ_SPIKE_FLEET: below it when the spike is above
 * the fleet threshold, so it alerts; else above it).
 * Eligible for a channel's quantile: a flow that no other channel flags (a flow the supervised
 * score already calls an attack is not normal traffic to calibrate on) and that is not labelled
 * malicious (where a site has labels). "Flags": above the fleet threshold and, with
 * exclude_in_use (the default), above the site's threshold in use too, so that every flow
 * falls in some channel's share of the budget (calib.c, eligible()).
 * What remains possible: traffic the fleet cannot tell from benign (no channel flags it at the
 * fleet rule) raises a site's thresholds up to the cap; README says so. */
#ifndef FMQ_CALIB_H
#define FMQ_CALIB_H

#include <stddef.h>
#include <stdint.h>

#define FMQ_NCH 2
enum fmq_channel { FMQ_CH_SUP = 0, FMQ_CH_NOV = 1 };
#define FMQ_CH_BIT(c) (1 << (c))

/* Quantile levels of a sketch: what a fleet budget of 0.2% to 20% (per channel) needs. */
#define FMQ_SKETCH_LEVELS 5
extern const double fmq_sketch_levels[FMQ_SKETCH_LEVELS]; /* 0.8, 0.9, 0.99, 0.995, 0.999 */

/* One agent's report: quantiles of its benign validation flows' scores, per channel. */
struct fmq_sketch {
    uint32_t n;   /* benign flows behind it; 0 = no sketch */
    int channels; /* FMQ_CH_BIT of the channels in q */
    float q[FMQ_NCH][FMQ_SKETCH_LEVELS];
};

/* The fleet rule a global model carries ("rule" in schemas/wire.md). */
struct fmq_rule {
    int channels; /* FMQ_CH_BIT of the channels with a threshold; 0 = no fleet rule */
    float budget; /* false-positive budget the thresholds are set for, all channels together */
    float thr[FMQ_NCH]; /* fleet default threshold per channel (score units) */
    float cap[FMQ_NCH]; /* the highest a site's calibration may take it */
    uint64_t version;   /* global model version the sketches scored */
    uint32_t sites;     /* sketches behind it */
};

/* The per-channel share of the budget for `channels` (budget / number of channels). */
double fmq_rule_share(double budget, int channels);
/* Linear interpolation of a sketch's quantile at `level` (clamped to the sketched levels). */
float fmq_sketch_at(const struct fmq_sketch *s, int ch, double level);
/* Fills s from n flows' channel scores (n x FMQ_NCH) and labels: the benign (label 0) flows
 * only. scratch holds n floats. Channels without a score (NAN) are left out. */
void fmq_sketch_from(struct fmq_sketch *s, const float *scores, const int8_t *labels, size_t n,
                     int channels, float *scratch);
/* Checks a decoded sketch: finite, non-decreasing per channel. 0 or FMQ_ERANGE. */
int fmq_sketch_check(const struct fmq_sketch *s);

#define FMQ_RULE_MAX_SITES 4096 /* sketches one rule is made of; more are counted, left out */

/* The coordinator's accumulator of one round's sketches (bounded: extra sketches are counted
 * and left out, min_benign filters small sites). */
struct fmq_rule_acc {
    size_t cap, n;
    uint64_t dropped;     /* sketches past cap */
    uint32_t *weight;     /* owned: cap */
    struct fmq_sketch *s; /* owned: cap */
    float *scratch;       /* owned: 2 x cap */
};
int fmq_rule_acc_init(struct fmq_rule_acc *a, size_t cap);
void fmq_rule_acc_free(struct fmq_rule_acc *a);
void fmq_rule_acc_reset(struct fmq_rule_acc *a);
/* Takes a copy of a checked sketch; sketches of fewer than min_benign flows are ignored. */
void fmq_rule_acc_add(struct fmq_rule_acc *a, const struct fmq_sketch *s, uint32_t min_benign);
/* The rule for `budget` from what was added (rule->channels 0 when nothing was). */
void fmq_rule_acc_finish(struct fmq_rule_acc *a, double budget, uint64_t version,
                         struct fmq_rule *rule);

enum fmq_calib_state { FMQ_CALIB_LEARNING = 0, FMQ_CALIB_CALIBRATED, FMQ_CALIB_RECALIBRATING };
const char *fmq_calib_state_name(int state);

/* What a window quantile that falls inside a spike of all but equal scores holding more than a
 * channel's share of the window does (calib.c, out_of_spike). */
enum fmq_spike {
    FMQ_SPIKE_OFF = 0, /* nothing: the quantile as it falls */
    FMQ_SPIKE_FLEET,   /* above the fleet threshold the spike alerts, else none of it does */
    FMQ_SPIKE_BELOW    /* the spike always alerts (a diagnostic) */
};

struct fmq_calib_cfg {
    double budget;          /* false-positive budget, share of normal flows (agents' fp_budget) */
    long min_flows;         /* flows seen before the first local calibration */
    double min_span;        /* seconds of traffic (flow time) before it */
    long window;            /* newest flows the local thresholds come from */
    long every;             /* flows between recomputations */
    double max_step;        /* largest loosening per rise_period, in units of the window's spread
                               (its budget quantile minus its median) */
    double rise_period;     /* seconds of traffic (flow time) max_step is allowed per */
    int tighten;            /* 1: a site's quantile may also go below the fleet threshold */
    int novelty_beyond_cap; /* 1: a novelty threshold in use may rise past the cap, slowly */
    int union_levels;       /* 1: one tail share for all channels, the largest whose union on the
                               window is within the budget (not budget / k); calib.c */
    int spikes;             /* enum fmq_spike: a quantile inside a spike of equal scores */
    double confidence;      /* > 0: a channel's threshold is the window's order statistic that
                               keeps its share of normal flows within its budget with this
                               probability (calib.c, Wilks 1941); 0: the plain quantile */
    int exclude_in_use;     /* 1: another channel's flag (eligibility) needs the threshold in use
                               as well as the fleet's; 0: the fleet's alone (calib.c) */
    long min_eligible;      /* eligible flows a channel's quantile needs; fewer keep the fleet's */
    float static_sup;       /* supervised threshold (logit) when the model carries no fleet rule */
};
void fmq_calib_cfg_default(struct fmq_calib_cfg *c);

/* A P(malicious) threshold as the logit the supervised channel is compared with. */
float fmq_calib_logit(double p);

/* Scores of a flow on every channel and the thresholds that judged it. */
struct fmq_verdict {
    float score[FMQ_NCH]; /* NAN: the model has no such channel */
    float thr[FMQ_NCH];   /* thresholds applied (INFINITY: the channel cannot alert yet) */
    int alert;            /* any channel above its threshold */
    int why;              /* FMQ_CH_BIT of the channels that fired */
    int state;            /* enum fmq_calib_state the thresholds came from */
};

struct fmq_calib {
    struct fmq_calib_cfg cfg;
    int state;
    int channels;          /* FMQ_CH_BIT the model scores */
    struct fmq_rule rule;  /* the fleet rule in use (channels 0: none) */
    float thr[FMQ_NCH];    /* thresholds verdicts apply */
    float target[FMQ_NCH]; /* last local estimate */
    float flag[FMQ_NCH];   /* a flow above flag[o] is not eligible for the other channels */
    /* the window: the newest flows, their slots in the learner's store and scores */
    uint32_t *slot; /* owned: window */
    float *score;   /* owned: window x FMQ_NCH */
    double *ts;     /* owned: window */
    int8_t *lab;    /* owned: window, the flows' labels where the site has them */
    float *scratch; /* owned: window x FMQ_NCH */
    size_t head, n;
    double first_ts;      /* time of the first flow seen (flow time) */
    double last_ts;       /* newest flow time seen */
    uint64_t seen, since; /* flows seen; since the last recomputation */
    uint64_t recomputed;  /* recomputations */
    double recomputed_ts; /* newest flow time at the last one */
    int fixed;            /* thresholds from labels (fmq_calib_fix): no recomputation */
    double rank[FMQ_NCH]; /* share of the window above each threshold before a new model
                             (fmq_calib_remember_ranks), -1 none */
};
int fmq_calib_init(struct fmq_calib *c, const struct fmq_calib_cfg *cfg);
void fmq_calib_free(struct fmq_calib *c);
/* Before a new model: where each threshold sits in the window (the share of eligible flows
 * above it), so that the new model's thresholds keep that place instead of being relearnt from
 * a window an attack may fill. */
void fmq_calib_remember_ranks(struct fmq_calib *c);
/* A new model: its channels and fleet rule (NULL or channels 0 for none). The caller rescores
 * the window's slots into c->score, then calls fmq_calib_recompute(c, 1). */
void fmq_calib_set_model(struct fmq_calib *c, int channels, const struct fmq_rule *rule);
/* Thresholds set from labels (a personalised site): CALIBRATED at thr, kept until the next
 * fmq_calib_set_model; the window still records flows. */
void fmq_calib_fix(struct fmq_calib *c, int channels, const float *thr);
/* Records one scored flow (label: FMQ_LABEL_*, a flow labelled malicious is never normal);
 * returns 1 when the thresholds were recomputed. */
int fmq_calib_push(struct fmq_calib *c, uint32_t slot, double ts, const float *scores, int label);
/* Recomputes the thresholds from the window; now: jump to the target (a new model's scale), else
 * at most max_step toward it. Returns 1 when a threshold changed. */
int fmq_calib_recompute(struct fmq_calib *c, int now);
/* The one alert rule, for agents and the coordinator alike: fills v from scores (FMQ_NCH). */
void fmq_calib_verdict(const struct fmq_calib *c, const float *scores, struct fmq_verdict *v);
/* The fleet rule's own verdict, as a site in LEARNING applies it (the coordinator's view):
 * each channel at its cap. */
void fmq_rule_verdict(const struct fmq_rule *r, int channels, float static_sup, const float *scores,
                      struct fmq_verdict *v);

#endif
