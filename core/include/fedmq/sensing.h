/* Network and device sensing (our extension; the paper's abstract promises adaptation to
 * "real-time network conditions" and device capability without a method). The coordinator
 * observes, per agent, the delay of each update (arrival time minus the agent's send timestamp,
 * so it includes queueing at the broker), the effective uplink rate (update bytes / delay) and
 * the training speed the agent reports (examples/s), as exponentially weighted averages.
 * From these it plans, per agent, the lightest-needed codec on a ladder
 *   configured codec -> dense-f16 -> dense-i8 -> topk-i8 10% -> 1% -> 0.1%
 * so that the expected upload time stays within upload_share of the round deadline, and a
 * training-time budget (deadline minus expected upload and delay, minus a safety margin) so a
 * slow link sends fewer bytes and a slow device trains less, instead of stalling the round.
 * Clock skew between agent and coordinator shows up as delay; negative delays count as 0. */
#ifndef FMQ_SENSING_H
#define FMQ_SENSING_H

#include <stddef.h>

#include "fedmq/wire.h"

struct fmq_link_est {
    int n;        /* observations */
    double delay; /* seconds, EWMA */
    double rate;  /* bytes/s, EWMA */
    double sps;   /* training examples/s, EWMA (0 = not reported) */
};
/* Folds one accepted update in (weight 0.5: links change, estimates must follow). */
void fmq_link_observe(struct fmq_link_est *e, double sent_ts, double arrival_ts, size_t bytes,
                      double sps);

struct fmq_sensing_params {
    double deadline;     /* round deadline, seconds */
    double upload_share; /* expected upload time allowed, as a share of the deadline (0.25) */
    double margin;       /* training budget safety margin, share of the deadline (0.2) */
};

/* Bytes an update of dim parameters takes with codec at ratio (envelope included, estimate). */
double fmq_codec_estimate_bytes(int codec, double ratio, size_t dim);

/* Plans codec, ratio and training-time budget for an agent with estimate e. Returns 1 when the
 * plan differs from the base (the agent must be told), 0 when the base plan fits. */
int fmq_sensing_plan(const struct fmq_sensing_params *p, const struct fmq_link_est *e,
                     const struct fmq_client_plan *base, size_t dim, struct fmq_agent_plan *out);

#endif
