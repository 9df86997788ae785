/* GIoT training, scoring and explanations (see giot.h). */
#include "fedmq/giot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* open-addressing map from originator address hash to the last flow index, rebuilt per call */
static uint64_t hash_addr(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

int fmq_giot_data_build(struct fmq_giot_data *d, const struct fmq_flow *flows, size_t n)
{
    size_t cap = 16;
    uint64_t *keys;
    int32_t *last;

    memset(d, 0, sizeof *d);
    while (cap < 2 * n + 16) cap <<= 1;
    d->tok = malloc((n ? n : 1) * FMQ_TOK_PER_FLOW * sizeof *d->tok);
    d->prev = malloc((n ? n : 1) * sizeof *d->prev);
    d->label = malloc(n ? n : 1);
    keys = calloc(cap, sizeof *keys);
    last = malloc(cap * sizeof *last);
    if (!d->tok || !d->prev || !d->label || !keys || !last) {
        free(keys);
        free(last);
        fmq_giot_data_free(d);
        return FMQ_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t h = hash_addr(flows[i].orig_h);
        size_t s = (size_t)h & (cap - 1);
        while (keys[s] && keys[s] != h) s = (s + 1) & (cap - 1); /* 64-bit hash as the key */
        d->prev[i] = keys[s] ? last[s] : -1;
        fmq_tok_flow(&flows[i], d->prev[i] >= 0 ? flows[d->prev[i]].ts : NAN,
                     d->tok + i * FMQ_TOK_PER_FLOW);
        d->label[i] = (int8_t)flows[i].label;
        keys[s] = h;
        last[s] = (int32_t)i;
    }
    d->n = n;
    free(keys);
    free(last);
    return 0;
}

void fmq_giot_data_free(struct fmq_giot_data *d)
{
    free(d->tok);
    free(d->prev);
    free(d->label);
    memset(d, 0, sizeof *d);
}

void fmq_giot_window(const struct fmq_giot_data *d, size_t i, int K, int *inputs, int *targets)
{
    int T = 1 + FMQ_TOK_PER_FLOW * K, chain[64], nk = 0, pos;
    int32_t j = (int32_t)i;
    while (j >= 0 && nk < K) {
        int32_t p;
        chain[nk++] = j;
        p = d->prev[j];
        if (p >= 0 && d->gen && d->gen[p] != d->prev_gen[j]) p = -1; /* overwritten since */
        j = p;
    }
    pos = T - 1 - FMQ_TOK_PER_FLOW * nk; /* where BOS goes */
    for (int t = 0; t < pos; t++) inputs[t] = FMQ_TOK_PAD;
    inputs[pos] = FMQ_TOK_BOS;
    for (int c = nk - 1, t = pos + 1; c >= 0; c--)
        for (int f = 0; f < FMQ_TOK_PER_FLOW; f++)
            inputs[t++] = d->tok[(size_t)chain[c] * FMQ_TOK_PER_FLOW + f];
    for (int t = 0; t < T; t++) targets[t] = t >= pos && t + 1 < T ? inputs[t + 1] : -1;
}

int fmq_giot_trainer_init(struct fmq_giot_trainer *t, const struct fmq_gpt *m, int B, int K,
                          float lr, float weight_decay, uint64_t seed)
{
    int rc;
    memset(t, 0, sizeof *t);
    t->B = B, t->K = K, t->T = 1 + FMQ_TOK_PER_FLOW * K;
    if (K < 1 || K > 64 || t->T > m->cfg.max_seq) return FMQ_EINVAL;
    if ((rc = fmq_gpt_acts_init(&t->acts, m, B, t->T)) ||
        (rc = fmq_optim_init(&t->opt, FMQ_OPT_ADAMW, m->lora_rank ? m->lora_n : m->nparams, lr)))
        goto fail;
    t->opt.weight_decay = weight_decay;
    t->acts.lm_tail = FMQ_TOK_PER_FLOW + 1; /* scoring, explaining, predicting read no further */
    t->lm_weight = 1.0f;
    t->labels = malloc((size_t)B * sizeof(int));
    t->inputs = malloc((size_t)B * t->T * sizeof(int));
    t->targets = malloc((size_t)B * t->T * sizeof(int));
    if (!t->inputs || !t->targets || !t->labels) {
        rc = FMQ_ENOMEM;
        goto fail;
    }
    fmq_rng_seed(&t->rng, seed, 0x74726169ULL);
    return 0;
fail:
    fmq_giot_trainer_free(t);
    return rc;
}

void fmq_giot_trainer_free(struct fmq_giot_trainer *t)
{
    fmq_gpt_acts_free(&t->acts);
    fmq_optim_free(&t->opt);
    free(t->inputs);
    free(t->targets);
    free(t->labels);
    free(t->minor);
    t->inputs = t->targets = t->labels = NULL;
    t->minor = NULL;
    t->minor_cap = 0;
}

/* The pool's rarer labelled class into t->minor (the pool's order); returns how many, 0 when
 * either class is absent (nothing to balance) or on allocation failure (*oom set). *share is
 * that class's share of the pool's labelled flows. */
static size_t list_minority(struct fmq_giot_trainer *t, const struct fmq_giot_data *d,
                            const uint32_t *idx, size_t pool, double *share, int *oom)
{
    size_t nmal = 0, nben = 0, nmin, k = 0;
    int8_t want;
    for (size_t j = 0; j < pool; j++) {
        int8_t l = d->label[idx ? idx[j] : j];
        nmal += l == FMQ_LABEL_MALICIOUS;
        nben += l == FMQ_LABEL_BENIGN;
    }
    if (!nmal || !nben) return 0;
    nmin = nmal <= nben ? nmal : nben;
    want = nmal <= nben ? FMQ_LABEL_MALICIOUS : FMQ_LABEL_BENIGN;
    *share = (double)nmin / (double)(nmal + nben);
    if (t->minor_cap < nmin) {
        uint32_t *p = realloc(t->minor, nmin * sizeof *p);
        if (!p) {
            *oom = 1;
            return 0;
        }
        t->minor = p, t->minor_cap = nmin;
    }
    for (size_t j = 0; j < pool; j++) {
        uint32_t i = idx ? idx[j] : (uint32_t)j;
        if (d->label[i] == want) t->minor[k++] = i;
    }
    return k;
}

float fmq_giot_train(struct fmq_giot_trainer *t, struct fmq_gpt *m, const struct fmq_giot_data *d,
                     const uint32_t *idx, size_t nidx, long steps)
{
    float loss = 0;
    size_t pool = idx ? nidx : d->n, nminor = 0;
    int head = t->cls_weight > 0 && m->cfg.classes >= 2, nbal = 0, oom = 0;
    if (pool == 0) return 0;
    if (head && t->cls_balance > 0) {
        double p = 0, want = t->cls_balance;
        nminor = list_minority(t, d, idx, pool, &p, &oom);
        if (oom) return NAN;
        /* n extra windows of the rarer class and B - n uniform ones hold n + (B - n) p of it:
         * the fewest n with that at least cls_balance x B; none when the pool has enough */
        if (nminor && p < want) nbal = (int)ceil((double)t->B * (want - p) / (1 - p) - 1e-9);
        if (nbal >= t->B) nbal = t->B - 1; /* the language model keeps one window at least */
    }
    for (long s = 0; s < steps; s++) {
        for (int b = 0; b < t->B; b++) {
            int bal = b >= t->B - nbal;
            uint32_t k = fmq_rng_below(&t->rng, (uint32_t)(bal ? nminor : pool));
            uint32_t i = bal ? t->minor[k] : idx ? idx[k] : k;
            fmq_giot_window(d, i, t->K, t->inputs + (size_t)b * t->T,
                            t->targets + (size_t)b * t->T);
            if (bal) /* the head's example only: the language model learns the natural mix */
                for (int u = 0; u < t->T; u++) t->targets[(size_t)b * t->T + u] = -1;
            t->labels[b] = d->label[i] == FMQ_LABEL_MALICIOUS ? 1
                           : d->label[i] == FMQ_LABEL_BENIGN  ? 0
                                                              : -1;
        }
        loss = fmq_gpt_forward(m, &t->acts, t->inputs, t->targets, head ? t->labels : NULL, t->T,
                               t->lm_weight, t->cls_weight);
        memset(t->acts.grads, 0, m->nparams * sizeof(float));
        if (m->lora_rank) memset(t->acts.lora_grads, 0, m->lora_n * sizeof(float));
        fmq_gpt_backward(m, &t->acts);
        if (m->lora_rank) /* adapter mode: the base stays frozen, only the adapters learn */
            fmq_optim_step(&t->opt, m->lora, t->acts.lora_grads);
        else
            fmq_optim_step(&t->opt, m->params, t->acts.grads);
    }
    return loss;
}

/* NLL of the last sentence of window b (positions T-11 .. T-2 predict T-10 .. T-1) */
static float window_nll(const struct fmq_giot_trainer *t, const struct fmq_gpt *m, int b)
{
    int V = m->cfg.vocab, T = t->T;
    double nll = 0;
    for (int f = 0; f < FMQ_TOK_PER_FLOW; f++) {
        int pos = T - 1 - FMQ_TOK_PER_FLOW + f, tok = t->inputs[b * T + pos + 1];
        nll -= log(t->acts.probs[((size_t)b * T + pos) * V + tok] + 1e-30);
    }
    return (float)nll;
}

void fmq_giot_score(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                    const struct fmq_giot_data *d, const uint32_t *idx, size_t n, float *out)
{
    fmq_giot_score_both(t, m, d, idx, n, out, NULL, 1);
}

void fmq_giot_score_both(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                         const struct fmq_giot_data *d, const uint32_t *idx, size_t n, float *nll,
                         float *head, size_t stride)
{
    int K = m->cfg.classes;
    for (size_t s = 0; s < n; s += (size_t)t->B) {
        int nb = (int)(n - s < (size_t)t->B ? n - s : (size_t)t->B);
        for (int b = 0; b < t->B; b++) /* a short last batch repeats its last window */
            fmq_giot_window(d, idx[s + (size_t)(b < nb ? b : nb - 1)], t->K,
                            t->inputs + (size_t)b * t->T, t->targets + (size_t)b * t->T);
        fmq_gpt_forward(m, &t->acts, t->inputs, NULL, NULL, t->T, 1.0f, 0.0f);
        for (int b = 0; b < nb; b++) {
            size_t o = (s + (size_t)b) * stride;
            nll[o] = window_nll(t, m, b);
            if (head) {
                /* malicious against benign before the softmax: ranks without saturating */
                const float *z = t->acts.cls_logits + (size_t)b * K;
                head[o] = K >= 2 ? z[1] - z[0] : NAN;
            }
        }
    }
}

void fmq_giot_classify(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                       const struct fmq_giot_data *d, const uint32_t *idx, size_t n, float *out)
{
    int K = m->cfg.classes;
    for (size_t s = 0; s < n; s += (size_t)t->B) {
        int nb = (int)(n - s < (size_t)t->B ? n - s : (size_t)t->B);
        for (int b = 0; b < t->B; b++)
            fmq_giot_window(d, idx[s + (size_t)(b < nb ? b : nb - 1)], t->K,
                            t->inputs + (size_t)b * t->T, t->targets + (size_t)b * t->T);
        fmq_gpt_forward(m, &t->acts, t->inputs, NULL, NULL, t->T, 1.0f, 0.0f);
        for (int b = 0; b < nb; b++)
            out[s + (size_t)b] = K >= 2 ? t->acts.cls_probs[(size_t)b * K + 1] : 0.0f;
    }
}

float fmq_giot_explain(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                       const struct fmq_giot_data *d, size_t i, int worst, char *text, size_t cap)
{
    uint32_t one = (uint32_t)i;
    float nll;
    fmq_giot_score(t, m, d, &one, 1, &nll);
    fmq_giot_explain_last(t, m, worst, text, cap);
    return nll;
}

void fmq_giot_explain_last(const struct fmq_giot_trainer *t, const struct fmq_gpt *m, int worst,
                           char *text, size_t cap)
{
    int V = m->cfg.vocab, T = t->T, order[FMQ_TOK_PER_FLOW];
    float pobs[FMQ_TOK_PER_FLOW], pbest[FMQ_TOK_PER_FLOW];
    int best[FMQ_TOK_PER_FLOW];
    size_t n = 0;

    for (int f = 0; f < FMQ_TOK_PER_FLOW; f++) {
        int pos = T - 1 - FMQ_TOK_PER_FLOW + f, tok = t->inputs[pos + 1];
        const float *p = t->acts.probs + (size_t)pos * V;
        int base = fmq_tok_field_base(f), cnt = fmq_tok_field_count(f);
        pobs[f] = p[tok];
        best[f] = base;
        for (int v = base; v < base + cnt; v++) /* the most likely value of this field */
            if (p[v] > p[best[f]]) best[f] = v;
        pbest[f] = p[best[f]];
        order[f] = f;
    }
    for (int a = 0; a < FMQ_TOK_PER_FLOW; a++) /* least likely first */
        for (int b = a + 1; b < FMQ_TOK_PER_FLOW; b++)
            if (pobs[order[b]] < pobs[order[a]]) {
                int tmp = order[a];
                order[a] = order[b];
                order[b] = tmp;
            }
    text[0] = 0;
    for (int k = 0; k < worst && k < FMQ_TOK_PER_FLOW && n + 1 < cap; k++) {
        int f = order[k], pos = T - 1 - FMQ_TOK_PER_FLOW + f;
        char obs[64], exp[64];
        fmq_tok_describe(t->inputs[pos + 1], obs, sizeof obs);
        fmq_tok_describe(best[f], exp, sizeof exp);
        if (best[f] == t->inputs[pos + 1])
            n += (size_t)snprintf(text + n, cap - n, "%s%s p=%.2g", k ? "; " : "", obs, pobs[f]);
        else
            n += (size_t)snprintf(text + n, cap - n, "%s%s p=%.2g, expected %s p=%.2g",
                                  k ? "; " : "", obs, pobs[f], exp, pbest[f]);
    }
}

int fmq_giot_stream_init(struct fmq_giot_stream *s, size_t cap, size_t max_devices)
{
    memset(s, 0, sizeof *s);
    if (cap < 1 || max_devices < 1) return FMQ_EINVAL;
    s->cap = cap;
    s->max_devices = max_devices;
    s->tcap = 16;
    while (s->tcap < 2 * max_devices) s->tcap <<= 1;
    s->d.tok = malloc(cap * FMQ_TOK_PER_FLOW * sizeof *s->d.tok);
    s->d.prev = malloc(cap * sizeof *s->d.prev);
    s->d.label = malloc(cap);
    s->gen = calloc(cap, sizeof *s->gen);
    s->prev_gen = calloc(cap, sizeof *s->prev_gen);
    s->ts = malloc(cap * sizeof *s->ts);
    s->keys = calloc(s->tcap, sizeof *s->keys);
    s->last = malloc(s->tcap * sizeof *s->last);
    s->last_gen = malloc(s->tcap * sizeof *s->last_gen);
    if (!s->d.tok || !s->d.prev || !s->d.label || !s->gen || !s->prev_gen || !s->ts || !s->keys ||
        !s->last || !s->last_gen) {
        fmq_giot_stream_free(s);
        return FMQ_ENOMEM;
    }
    s->d.gen = s->gen;
    s->d.prev_gen = s->prev_gen;
    s->next_gen = 1;
    return 0;
}

void fmq_giot_stream_free(struct fmq_giot_stream *s)
{
    free(s->d.tok);
    free(s->d.prev);
    free(s->d.label);
    free(s->gen);
    free(s->prev_gen);
    free(s->ts);
    free(s->keys);
    free(s->last);
    free(s->last_gen);
    memset(s, 0, sizeof *s);
}

void fmq_giot_stream_forget_devices(struct fmq_giot_stream *s)
{
    memset(s->keys, 0, s->tcap * sizeof *s->keys);
    s->ndev = 0;
}

size_t fmq_giot_stream_push(struct fmq_giot_stream *s, const struct fmq_flow *f)
{
    uint64_t h = hash_addr(f->orig_h);
    size_t slot = s->head, k = (size_t)h & (s->tcap - 1);
    int32_t p = -1;

    while (s->keys[k] && s->keys[k] != h) k = (k + 1) & (s->tcap - 1);
    if (!s->keys[k] && s->ndev == s->max_devices) { /* full: start over */
        memset(s->keys, 0, s->tcap * sizeof *s->keys);
        s->ndev = 0;
        s->resets++;
        k = (size_t)h & (s->tcap - 1);
    }
    if (s->keys[k]) {
        p = s->last[k];
        if (s->gen[p] != s->last_gen[k]) p = -1; /* that slot now holds a newer flow */
    } else {
        s->keys[k] = h;
        s->ndev++;
    }
    s->d.prev[slot] = p;
    s->prev_gen[slot] = p >= 0 ? s->gen[p] : 0;
    fmq_tok_flow(f, p >= 0 ? s->ts[p] : NAN, s->d.tok + slot * FMQ_TOK_PER_FLOW);
    s->d.label[slot] = (int8_t)f->label;
    s->ts[slot] = f->ts;
    s->gen[slot] = s->next_gen++;
    if (s->next_gen == 0) s->next_gen = 1; /* 0 marks "never written" */
    s->last[k] = (int32_t)slot;
    s->last_gen[k] = s->gen[slot];
    s->head = (slot + 1) % s->cap;
    if (s->d.n < s->cap) s->d.n++;
    return slot;
}

int fmq_giot_predict_next(struct fmq_giot_trainer *t, const struct fmq_gpt *m,
                          const struct fmq_giot_data *d, size_t i, char *text, size_t cap)
{
    int T = t->T, V = m->cfg.vocab, *in = t->inputs;
    double p = 1;
    size_t n = 0;

    fmq_giot_window(d, i, t->K, in, t->targets);
    /* drop the oldest flow: a full window keeps its BOS, a padded one shifts left */
    if (in[0] == FMQ_TOK_BOS)
        memmove(in + 1, in + 1 + FMQ_TOK_PER_FLOW, (size_t)(T - 1 - FMQ_TOK_PER_FLOW) * sizeof *in);
    else
        memmove(in, in + FMQ_TOK_PER_FLOW, (size_t)(T - FMQ_TOK_PER_FLOW) * sizeof *in);
    for (int f = 0; f < FMQ_TOK_PER_FLOW; f++) in[T - FMQ_TOK_PER_FLOW + f] = FMQ_TOK_PAD;
    for (int b = 1; b < t->B; b++) memcpy(in + (size_t)b * T, in, (size_t)T * sizeof *in);
    for (int f = 0; f < FMQ_TOK_PER_FLOW; f++) { /* greedy, one field at a time */
        int pos = T - 1 - FMQ_TOK_PER_FLOW + f, base = fmq_tok_field_base(f), best = base;
        const float *pr;
        fmq_gpt_forward(m, &t->acts, in, NULL, NULL, T, 1.0f, 0.0f);
        pr = t->acts.probs + (size_t)pos * V;
        for (int v = base; v < base + fmq_tok_field_count(f); v++)
            if (pr[v] > pr[best]) best = v;
        p *= pr[best];
        for (int b = 0; b < t->B; b++) in[(size_t)b * T + pos + 1] = best;
    }
    if (cap) text[0] = 0;
    for (int f = 0; f < FMQ_TOK_PER_FLOW && n + 1 < cap; f++) {
        char w[64];
        fmq_tok_describe(in[T - FMQ_TOK_PER_FLOW + f], w, sizeof w);
        n += (size_t)snprintf(text + n, cap - n, "%s%s", f ? ", " : "", w);
    }
    if (n + 1 < cap) snprintf(text + n, cap - n, " (p=%.2g)", p);
    return 0;
}
