/* The model a coordinator trains and how it is judged: an MLP or logistic model over flow
 * features, or a GIoT transformer over flow tokens (optionally a frozen base loaded from a
 * saved global model plus LoRA adapters, so agents train and send only the adapters).
 *
 * Evaluation goes through the same learner an agent scores with (learner.h): every test file's
 * flows are ingested in time order into one evaluation learner, each file a context of its own
 * (so its devices' earlier flows are warm, as on an agent that saw them), and the labelled rows
 * after test_from are scored with each new global model. Unlabelled rows are context, never
 * counted. eval_max thins the scored rows evenly per file. Three views of the same scores:
 *   - deployed: the verdict of fmq_rule_verdict with the fleet rule the published model carries,
 *     what an agent at a new site alerts on before it has calibrated (calib.h);
 *   - the configured decision threshold (MLP: P(malicious) >= threshold; GIoT: its NLL above the
 *     threshold that lets 1% of the benign test flows through, or the head at >= threshold),
 *     comparable round to round and with earlier runs;
 *   - recall at 1% false-positive rate of each score, a ranking diagnostic. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord.h"
#include "fedmq/connlog.h"

static void base_name(char *dst, size_t cap, const char *path)
{
    const char *b = strrchr(path, '/');
    size_t j = 0;
    for (b = b ? b + 1 : path; *b && j + 1 < cap; b++)
        if (*b != '"' && *b != '\\' && (unsigned char)*b >= 0x20) dst[j++] = *b;
    dst[j] = 0;
}

/* Keeps every stride-th test row of each file (eval_max). */
static void thin(struct coord *c)
{
    size_t stride = (c->ntest + (size_t)c->cfg.eval_max - 1) / (size_t)c->cfg.eval_max, w = 0;
    for (int f = 0; f < c->cfg.ntest; f++) {
        size_t a0 = c->test_start[f], a1 = c->test_start[f + 1];
        c->test_start[f] = w;
        for (size_t r = a0; r < a1; r += stride, w++) {
            c->yt[w] = c->yt[r];
            c->tslot[w] = c->tslot[r];
        }
    }
    c->test_start[c->cfg.ntest] = w;
    fmq_log(FMQ_LOG_INFO, "test set thinned to %zu of %zu flows (every %zu-th, eval_max)", w,
            c->ntest, stride);
    c->ntest = w;
}

/* Reads the test files once (flows, labels) to size the evaluation learner. */
static int count_test(struct coord *c, size_t *total)
{
    *total = 0;
    for (int i = 0; i < c->cfg.ntest; i++) {
        struct fmq_flow *v;
        size_t n;
        long bad = 0;
        int rc = fmq_connlog_read_all(c->cfg.test[i], &v, &n, &bad);
        if (rc != 0) return rc;
        free(v);
        *total += n;
    }
    return 0;
}

/* Every test file into the evaluation learner, in time order, each its own context; the
 * labelled rows after test_from become test rows. */
static int load_test(struct coord *c)
{
    struct fmq_learner_cfg lc;
    size_t total = 0, cap = 0;
    int rc;

    if (c->cfg.ntest == 0) return 0;
    if ((rc = count_test(c, &total)) != 0) return rc;
    fmq_learner_cfg_default(&lc);
    lc.buffer = 1;       /* the coordinator trains nothing */
    lc.recent = total;   /* every test flow stays scorable */
    lc.val_max = 1;
    lc.calib.window = 16; /* no calibration: verdicts use the fleet rule itself */
    lc.giot_batch = 16;
    lc.max_devices = 4096;
    lc.calib.static_sup = fmq_calib_logit(c->cfg.threshold);
    if ((rc = fmq_learner_init(&c->ev, c->kind, &lc)) != 0) return rc;
    for (int i = 0; i < c->cfg.ntest && rc == 0; i++) {
        struct fmq_flow *v;
        size_t n, from;
        long bad = 0;
        if ((rc = fmq_connlog_read_all(c->cfg.test[i], &v, &n, &bad)) != 0) break;
        from = (size_t)floor((double)n * c->cfg.test_from);
        if (c->ntest + n > cap) {
            size_t nc = (c->ntest + n) * 2;
            float *ny = realloc(c->yt, nc * sizeof *ny);
            uint32_t *ns = ny ? realloc(c->tslot, nc * sizeof *ns) : NULL;
            if (ny) c->yt = ny;
            if (ns) c->tslot = ns;
            if (!ny || !ns) {
                free(v);
                rc = FMQ_ENOMEM;
                break;
            }
            cap = nc;
        }
        c->ev.ops->new_context(&c->ev);
        c->test_start[i] = c->ntest;
        base_name(c->test_name[i], sizeof c->test_name[i], c->cfg.test[i]);
        for (size_t k = 0; k < n; k++) {
            uint32_t slot = fmq_learner_ingest(&c->ev, &v[k]);
            if (k < from || v[k].label == FMQ_LABEL_UNKNOWN) continue; /* context only */
            c->tslot[c->ntest] = slot;
            c->yt[c->ntest++] = v[k].label == FMQ_LABEL_MALICIOUS;
        }
        fmq_log(FMQ_LOG_INFO, "test set: %s: %zu of %zu flows (after %.0f%%), %ld bad lines",
                c->cfg.test[i], n - from, n, c->cfg.test_from * 100, bad);
        free(v);
    }
    c->test_start[c->cfg.ntest] = c->ntest;
    if (rc == 0 && c->cfg.eval_max > 0 && c->ntest > (size_t)c->cfg.eval_max) thin(c);
    if (rc == 0 && c->ntest &&
        (!(c->tscore = malloc(c->ntest * FMQ_NCH * sizeof(float))) ||
         !(c->tscratch = malloc(3 * c->ntest * sizeof(float))) ||
         !(c->tch = malloc(2 * c->ntest * sizeof(float)))))
        rc = FMQ_ENOMEM;
    return rc;
}

/* init_model: the params (and config) of a saved global GIoT model become the starting point,
 * the frozen base in adapter mode. */
static int load_giot(struct coord *c)
{
    struct fmq_global g = {0};
    char err[256];
    uint8_t *buf = NULL;
    long len;
    int rc = FMQ_EIO;
    FILE *f = fopen(c->cfg.init_model, "rb");

    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 &&
        len <= (long)FMQ_WIRE_MAX_PAYLOAD && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len)) && fread(buf, 1, (size_t)len, f) == (size_t)len) {
        g.gpt = &c->gpt;
        rc = fmq_wire_decode_global(&c->dec, buf, (size_t)len, &g, err, sizeof err);
        if (rc == 0 && g.kind != FMQ_MODEL_GIOT) rc = FMQ_EINVAL, strcpy(err, "not a GIoT model");
        if (rc == 0) {
            c->cfg.giot_context = g.giot_context;
            fmq_log(FMQ_LOG_INFO, "%s: GIoT base v%llu of run %s (%zu parameters, context %d)",
                    c->cfg.init_model, (unsigned long long)g.version, g.run, c->gpt.nparams,
                    g.giot_context);
        } else
            fmq_log(FMQ_LOG_ERROR, "%s: %s", c->cfg.init_model, err);
    } else
        fmq_log(FMQ_LOG_ERROR, "%s: cannot read the saved model", c->cfg.init_model);
    if (f) fclose(f);
    free(buf);
    return rc;
}

static int init_giot(struct coord *c)
{
    int rc;
    if (c->cfg.init_model[0]) {
        if ((rc = load_giot(c)) != 0) return rc;
        if (c->gpt.lora_rank) { /* a saved adapter model: merge nothing, start adapters anew */
            free(c->gpt.lora);
            c->gpt.lora = NULL;
            c->gpt.lora_rank = 0;
            c->gpt.lora_n = 0;
        }
    } else {
        struct fmq_gpt_config gc = c->cfg.giot;
        gc.vocab = fmq_tok_vocab_size();
        gc.max_seq = 1 + FMQ_TOK_PER_FLOW * c->cfg.giot_context;
        gc.classes = c->cfg.giot_head ? 2 : 0;
        if ((rc = fmq_gpt_init(&c->gpt, &gc)) != 0) return rc;
        fmq_gpt_init_params(&c->gpt, c->cfg.seed);
    }
    if (c->cfg.lora_rank &&
        (rc = fmq_gpt_lora_init(&c->gpt, c->cfg.lora_rank, c->cfg.lora_alpha, c->cfg.seed)) != 0)
        return rc;
    return 0;
}

int coord_model_init(struct coord *c)
{
    int rc;
    c->kind = c->cfg.model.kind;
    if (c->kind == FMQ_MODEL_GIOT) {
        if ((rc = init_giot(c)) != 0) {
            fmq_log(FMQ_LOG_ERROR, "invalid GIoT configuration or base model: %s",
                    fmq_strerror(rc));
            return rc;
        }
        c->trainable = fmq_gpt_trainable(&c->gpt, &c->dim);
    } else {
        if ((rc = fmq_model_init(&c->model, &c->cfg.model)) != 0) {
            fmq_log(FMQ_LOG_ERROR, "invalid model configuration: %s", fmq_strerror(rc));
            return rc;
        }
        fmq_model_init_params(&c->model, c->cfg.seed);
        c->trainable = c->model.params;
        c->dim = c->model.nparams;
    }
    return load_test(c);
}

void coord_model_free(struct coord *c)
{
    fmq_model_free(&c->model);
    fmq_gpt_free(&c->gpt);
    fmq_learner_free(&c->ev);
    free(c->tslot);
    free(c->tscore);
    free(c->tscratch);
    free(c->tch);
    free(c->yt);
}

const char *coord_model_name(const struct coord *c)
{
    if (c->kind == FMQ_MODEL_GIOT) return c->gpt.lora_rank ? "giot-lora" : "giot";
    return c->kind == FMQ_MODEL_MLP ? "mlp" : "logreg";
}

size_t coord_model_params(const struct coord *c)
{
    return c->kind == FMQ_MODEL_GIOT ? c->gpt.nparams + c->gpt.lora_n : c->model.nparams;
}

void coord_model_to_global(struct coord *c, struct fmq_global *g)
{
    g->kind = c->kind;
    if (c->kind == FMQ_MODEL_GIOT) {
        g->gpt = &c->gpt;
        g->giot_context = c->cfg.giot_context;
        g->client.lr = (float)c->cfg.giot_lr;
    } else
        g->model = &c->model;
}

/* FNV-1a 64 over the trainable parameters (and the MLP's input normalisation): equal models,
 * equal hash. */
static uint64_t model_hash(const struct coord *c)
{
    const uint8_t *p = (const uint8_t *)c->trainable;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; p && i < c->dim * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ULL;
    if (c->kind != FMQ_MODEL_GIOT && c->model.has_norm)
        for (int k = 0; k < 2; k++) {
            p = (const uint8_t *)(k ? c->model.norm_std : c->model.norm_mean);
            for (size_t i = 0; i < (size_t)c->model.cfg.in_dim * sizeof(float); i++)
                h = (h ^ p[i]) * 1099511628211ULL;
        }
    return h;
}

void coord_evaluate(struct coord *c, const struct fmq_rule *rule, struct coord_eval *e)
{
    struct fmq_global g;
    double t0 = fmq_mono();
    float *sup = c->tch, *nov = c->tch + c->ntest, thr = 0, pthr;
    int channels, prim;
    char err[200];
    size_t n = c->ntest;

    memset(e, 0, sizeof *e);
    e->model_hash = model_hash(c);
    e->recall_at_fpr = e->head_recall_at_fpr = e->either_recall_at_fpr = -1;
    e->recall_ch[0] = e->recall_ch[1] = -1;
    if (!n) return;
    memset(&g, 0, sizeof g);
    coord_model_to_global(c, &g);
    if (fmq_learner_adopt(&c->ev, &g, rule, err, sizeof err) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot evaluate the global model: %s", err);
        return;
    }
    channels = c->ev.ops->channels(&c->ev);
    prim = c->ev.ops->primary;
    c->ev.ops->score(&c->ev, c->tslot, n, c->tscore);
    for (size_t i = 0; i < n; i++) {
        sup[i] = c->tscore[i * FMQ_NCH + FMQ_CH_SUP];
        nov[i] = c->tscore[i * FMQ_NCH + FMQ_CH_NOV];
    }
    e->recall_at_fpr = fmq_recall_at_fpr(prim == FMQ_CH_NOV ? nov : sup, c->yt, n, 0.01,
                                         c->tscratch, &thr, NULL);
    for (int ch = 0; ch < FMQ_NCH; ch++)
        e->recall_ch[ch] = channels & FMQ_CH_BIT(ch)
                               ? fmq_recall_at_fpr(ch == FMQ_CH_NOV ? nov : sup, c->yt, n, 0.01,
                                                   c->tscratch, NULL, NULL)
                               : -1;
    if (channels == (FMQ_CH_BIT(FMQ_CH_SUP) | FMQ_CH_BIT(FMQ_CH_NOV)))
        e->either_recall_at_fpr = fmq_recall_at_fpr_either(nov, sup, c->yt, n, 0.01, c->tscratch);
    if (prim == FMQ_CH_NOV) e->head_recall_at_fpr = e->recall_ch[FMQ_CH_SUP]; /* GIoT's head */
    /* the configured threshold: the MLP's static one, GIoT's NLL at 1% of the benign test
     * flows (or its head at the static one) */
    pthr = c->ev.cal.cfg.static_sup;
    if (prim == FMQ_CH_SUP) thr = pthr;
    e->threshold = prim == FMQ_CH_SUP ? (float)c->cfg.threshold : thr;
    for (int f = 0; f < c->cfg.ntest; f++)
        for (size_t i = c->test_start[f]; i < c->test_start[f + 1]; i++) {
            struct fmq_verdict v;
            int truth = c->yt[i] > 0.5f;
            int cut = prim == FMQ_CH_NOV ? nov[i] > thr ||
                                               ((channels & FMQ_CH_BIT(FMQ_CH_SUP)) && sup[i] >= pthr)
                                         : sup[i] >= pthr;
            fmq_confusion_add(&e->cm, truth, cut);
            fmq_confusion_add(&e->per_file[f], truth, cut);
            fmq_rule_verdict(rule, channels, pthr, c->tscore + i * FMQ_NCH, &v);
            fmq_confusion_add(&e->dep, truth, v.alert);
            fmq_confusion_add(&e->dep_file[f], truth, v.alert);
        }
    e->eval_s = fmq_mono() - t0;
}

int coord_model_save(struct coord *c, const uint8_t *buf, size_t len)
{
    char tmp[300];
    int fd, rc = 0;
    if (!c->cfg.model_out[0]) return 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", c->cfg.model_out);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) return FMQ_EIO;
    for (size_t off = 0; off < len && rc == 0;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w <= 0) rc = FMQ_EIO;
        off += w > 0 ? (size_t)w : 0;
    }
    if (fsync(fd) != 0) rc = FMQ_EIO;
    if (close(fd) != 0) rc = FMQ_EIO;
    if (rc == 0 && rename(tmp, c->cfg.model_out) != 0) rc = FMQ_EIO;
    if (rc != 0) fmq_log(FMQ_LOG_ERROR, "%s: cannot save the global model", c->cfg.model_out);
    return rc;
}

/* fpr, recall, precision, f1 and alerts per 1,000 benign flows of a confusion matrix, as JSON
 * members; a rate with nothing to count is null, not 0. */
static size_t rates_json(char *buf, size_t cap, const struct fmq_confusion *m)
{
    double ben = (double)(m->fp + m->tn), mal = (double)(m->tp + m->fn), al = (double)(m->tp + m->fp);
    char f[4][24];
    if (ben > 0) snprintf(f[0], sizeof f[0], "%.6f", m->fp / ben); else strcpy(f[0], "null");
    if (mal > 0) snprintf(f[1], sizeof f[1], "%.6f", m->tp / mal); else strcpy(f[1], "null");
    if (al > 0) snprintf(f[2], sizeof f[2], "%.6f", m->tp / al); else strcpy(f[2], "null");
    if (mal > 0) snprintf(f[3], sizeof f[3], "%.6f", 2.0 * m->tp / (2.0 * m->tp + m->fp + m->fn));
    else strcpy(f[3], "null");
    return (size_t)snprintf(buf, cap,
                            "\"fpr\":%s,\"recall\":%s,\"precision\":%s,\"f1\":%s,"
                            "\"alerts_per_1k_benign\":%s%s%.3f,\"tp\":%llu,\"fp\":%llu,"
                            "\"tn\":%llu,\"fn\":%llu",
                            f[0], f[1], f[2], f[3], "", "", ben > 0 ? 1000.0 * m->fp / ben : 0.0,
                            (unsigned long long)m->tp, (unsigned long long)m->fp,
                            (unsigned long long)m->tn, (unsigned long long)m->fn);
}

void coord_eval_json(const struct coord *c, const struct coord_eval *e, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "\"per_test_file\":[");
    int st[3] = {0, 0, 0};
    for (int f = 0; f < c->cfg.ntest && n + 600 < cap; f++) {
        const struct fmq_confusion *fc = &e->per_file[f];
        n += (size_t)snprintf(buf + n, cap - n,
                              "%s{\"file\":\"%s\",\"tp\":%llu,\"fp\":%llu,\"tn\":%llu,"
                              "\"fn\":%llu,\"deployed\":{",
                              f ? "," : "", c->test_name[f], (unsigned long long)fc->tp,
                              (unsigned long long)fc->fp, (unsigned long long)fc->tn,
                              (unsigned long long)fc->fn);
        n += rates_json(buf + n, cap - n, &e->dep_file[f]);
        n += (size_t)snprintf(buf + n, cap - n, "}}");
    }
    if (n + 400 < cap) {
        n += (size_t)snprintf(buf + n, cap - n,
                              "],\"supervised_recall_at_1pct_fpr\":%.6f,"
                              "\"novelty_recall_at_1pct_fpr\":%.6f,\"deployed\":{",
                              e->recall_ch[FMQ_CH_SUP], e->recall_ch[FMQ_CH_NOV]);
        n += rates_json(buf + n, cap - n, &e->dep);
    }
    if (n + 300 < cap) {
        const struct fmq_rule *r = &c->rule;
        n += (size_t)snprintf(buf + n, cap - n, "},\"rule\":{\"budget\":%.6g,\"version\":%llu,"
                              "\"sites\":%u", c->cfg.fp_budget, (unsigned long long)r->version,
                              r->sites);
        for (int ch = 0; ch < FMQ_NCH; ch++)
            if (r->channels & FMQ_CH_BIT(ch))
                n += (size_t)snprintf(buf + n, cap - n, ",\"%s\":{\"threshold\":%.6g,\"cap\":%.6g}",
                                      ch == FMQ_CH_SUP ? "supervised" : "novelty", r->thr[ch],
                                      r->cap[ch]);
    }
    for (int i = 0; i < c->nagents; i++)
        if (c->agents[i].calib >= 0 && c->agents[i].calib < 3) st[c->agents[i].calib]++;
    if (n + 120 < cap)
        snprintf(buf + n, cap - n,
                 "},\"calibration\":{\"learning\":%d,\"calibrated\":%d,\"recalibrating\":%d}",
                 st[0], st[1], st[2]);
}
