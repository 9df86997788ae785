/* Network and device sensing: link estimates and the per-agent plan (see sensing.h). */
#include "fedmq/sensing.h"

#include <math.h>
#include <string.h>

void fmq_link_observe(struct fmq_link_est *e, double sent_ts, double arrival_ts, size_t bytes,
                      double sps)
{
    double delay = arrival_ts - sent_ts, rate;
    if (!(delay > 0)) delay = 0;
    rate = (double)bytes / (delay > 1e-3 ? delay : 1e-3);
    if (e->n == 0) {
        e->delay = delay;
        e->rate = rate;
        e->sps = sps;
    } else {
        e->delay = 0.5 * e->delay + 0.5 * delay;
        e->rate = 0.5 * e->rate + 0.5 * rate;
        if (sps > 0) e->sps = e->sps > 0 ? 0.5 * e->sps + 0.5 * sps : sps;
    }
    e->n++;
}

double fmq_codec_estimate_bytes(int codec, double ratio, size_t dim)
{
    const double envelope = 200; /* ids, timestamps, metrics, keys */
    double k = ceil(ratio * (double)dim);
    switch (codec) {
    case FMQ_CODEC_DENSE_F32:
        return envelope + 4.0 * dim;
    case FMQ_CODEC_DENSE_F16:
        return envelope + 2.0 * dim;
    case FMQ_CODEC_DENSE_I8:
        return envelope + dim + 4.0 * dim / FMQ_CODEC_BLOCK_DEFAULT;
    case FMQ_CODEC_TOPK_F32:
        return envelope + k * 6;
    case FMQ_CODEC_TOPK_F16:
        return envelope + k * 4;
    case FMQ_CODEC_TOPK_I8:
        return envelope + k * 3 + 6;
    case FMQ_CODEC_TOPK_I4: /* Rice indices: at most about a byte each */
        return envelope + k * 1.5 + 4 * ceil(k / FMQ_CODEC_BLOCK_DEFAULT) + 4;
    case FMQ_CODEC_TOPK_SIGN:
        return envelope + k * 1.125 + 4 * ceil(k / FMQ_CODEC_BLOCK_DEFAULT) + 4;
    }
    return envelope + 4.0 * dim;
}

int fmq_sensing_plan(const struct fmq_sensing_params *p, const struct fmq_link_est *e,
                     const struct fmq_client_plan *base, size_t dim, struct fmq_agent_plan *out)
{
    static const struct {
        int codec;
        double ratio;
    } ladder[] = {{FMQ_CODEC_DENSE_F16, 1},
                  {FMQ_CODEC_DENSE_I8, 1},
                  {FMQ_CODEC_TOPK_I8, 0.1},
                  {FMQ_CODEC_TOPK_I8, 0.01},
                  {FMQ_CODEC_TOPK_I8, 0.001}};
    double allowed = p->upload_share * p->deadline, up;
    int tailored = 0;

    out->codec = base->codec;
    out->ratio = base->ratio;
    out->time_budget = 0;
    if (e->n == 0) return 0;
    up = fmq_codec_estimate_bytes(base->codec, base->ratio, dim) / e->rate;
    for (size_t i = 0; up > allowed && i < sizeof ladder / sizeof ladder[0]; i++) {
        double b = fmq_codec_estimate_bytes(ladder[i].codec, ladder[i].ratio, dim);
        if (b >= fmq_codec_estimate_bytes(out->codec, out->ratio, dim)) continue; /* not lighter */
        out->codec = ladder[i].codec;
        out->ratio = (float)ladder[i].ratio;
        up = b / e->rate;
        tailored = 1;
    }
    if (tailored || e->delay + up > allowed) {
        double budget = p->deadline * (1 - p->margin) - up - e->delay;
        out->time_budget = (float)(budget > 0.1 * p->deadline ? budget : 0.1 * p->deadline);
        tailored = 1;
    }
    return tailored;
}
