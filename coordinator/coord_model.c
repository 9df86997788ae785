/* The model a coordinator trains and how it is judged: an MLP or logistic model over flow
 * features, or a GIoT transformer over flow tokens (optionally a frozen base loaded from a
 * saved global model plus LoRA adapters, so agents train and send only the adapters). The test
 * set is every labelled flow after test_from of each test file, read with the earlier flows as
 * context (feature windows or token windows); eval_max thins it evenly per file. Evaluation
 * scores every test flow: the MLP's P(malicious) is cut at the configured threshold, GIoT's
 * negative log-likelihood at the threshold that lets 1% of the benign test flows through; both
 * report recall at 1% false-positive rate. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord.h"
#include "fedmq/connlog.h"

static int grow(struct coord *c, size_t need, size_t *cap)
{
    float *ny, *nx = NULL;
    uint32_t *ni = NULL;
    if (need <= *cap) return 0;
    *cap = need * 2;
    if (!(ny = realloc(c->yt, *cap * sizeof(float)))) return FMQ_ENOMEM;
    c->yt = ny;
    if (c->kind == FMQ_MODEL_GIOT) {
        if (!(ni = realloc(c->tidx, *cap * sizeof(uint32_t)))) return FMQ_ENOMEM;
        c->tidx = ni;
    } else {
        if (!(nx = realloc(c->Xt, *cap * FMQ_FEAT_DIM * sizeof(float)))) return FMQ_ENOMEM;
        c->Xt = nx;
    }
    return 0;
}

/* Appends one file's token data to c->td (links shifted by the flows already there, so each
 * file's devices stay apart). */
static int append_tokens(struct coord *c, const struct fmq_giot_data *d)
{
    struct fmq_giot_data *t = &c->td;
    size_t n = t->n + d->n;
    uint16_t *tok = realloc(t->tok, (n ? n : 1) * FMQ_TOK_PER_FLOW * sizeof *tok);
    int32_t *prev;
    int8_t *lab;
    if (tok) t->tok = tok;
    prev = realloc(t->prev, (n ? n : 1) * sizeof *prev);
    if (prev) t->prev = prev;
    lab = realloc(t->label, n ? n : 1);
    if (lab) t->label = lab;
    if (!tok || !prev || !lab) return FMQ_ENOMEM;
    memcpy(t->tok + t->n * FMQ_TOK_PER_FLOW, d->tok, d->n * FMQ_TOK_PER_FLOW * sizeof *tok);
    memcpy(t->label + t->n, d->label, d->n);
    for (size_t i = 0; i < d->n; i++)
        t->prev[t->n + i] = d->prev[i] < 0 ? -1 : d->prev[i] + (int32_t)t->n;
    t->n = n;
    return 0;
}

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
            if (c->kind == FMQ_MODEL_GIOT)
                c->tidx[w] = c->tidx[r];
            else
                memmove(c->Xt + w * FMQ_FEAT_DIM, c->Xt + r * FMQ_FEAT_DIM,
                        FMQ_FEAT_DIM * sizeof(float));
        }
    }
    c->test_start[c->cfg.ntest] = w;
    fmq_log(FMQ_LOG_INFO, "test set thinned to %zu of %zu flows (every %zu-th, eval_max)", w,
            c->ntest, stride);
    c->ntest = w;
}

/* Reads each test file in time order so device context is warm, as on an agent that saw the
 * earlier flows, and keeps the labelled rows after test_from. */
static int load_test(struct coord *c)
{
    struct fmq_featurizer fz;
    size_t cap = 0;
    int rc, giot = c->kind == FMQ_MODEL_GIOT;

    if ((rc = fmq_feat_init(&fz, 4096, giot ? 1 : c->cfg.model.window)) != 0) return rc;
    for (int i = 0; i < c->cfg.ntest && rc == 0; i++) {
        struct fmq_giot_data d = {0};
        struct fmq_flow *v;
        size_t n, from, base = c->td.n;
        long bad = 0;
        if ((rc = fmq_connlog_read_all(c->cfg.test[i], &v, &n, &bad)) != 0) break;
        from = (size_t)floor((double)n * c->cfg.test_from);
        if ((rc = grow(c, c->ntest + (n - from), &cap)) != 0 ||
            (giot && ((rc = fmq_giot_data_build(&d, v, n)) || (rc = append_tokens(c, &d))))) {
            fmq_giot_data_free(&d);
            free(v);
            break;
        }
        fmq_giot_data_free(&d);
        fmq_feat_reset(&fz);
        c->test_start[i] = c->ntest;
        base_name(c->test_name[i], sizeof c->test_name[i], c->cfg.test[i]);
        for (size_t k = 0; k < n; k++) {
            float x[FMQ_FEAT_DIM];
            if (!giot) fmq_feat_extract(&fz, &v[k], x);
            if (k < from || v[k].label == FMQ_LABEL_UNKNOWN) continue;
            if (giot)
                c->tidx[c->ntest] = (uint32_t)(base + k);
            else
                memcpy(c->Xt + c->ntest * FMQ_FEAT_DIM, x, sizeof x);
            c->yt[c->ntest++] = v[k].label == FMQ_LABEL_MALICIOUS;
        }
        fmq_log(FMQ_LOG_INFO, "test set: %s: %zu of %zu flows (after %.0f%%), %ld bad lines",
                c->cfg.test[i], n - from, n, c->cfg.test_from * 100, bad);
        free(v);
    }
    c->test_start[c->cfg.ntest] = c->ntest;
    fmq_feat_free(&fz);
    if (rc == 0 && c->cfg.eval_max > 0 && c->ntest > (size_t)c->cfg.eval_max) thin(c);
    if (rc == 0 && c->ntest &&
        (!(c->tscore = malloc(c->ntest * sizeof(float))) ||
         !(c->tscratch = malloc(3 * c->ntest * sizeof(float))) ||
         !(c->thead = malloc(c->ntest * sizeof(float)))))
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
    return fmq_giot_trainer_init(&c->etr, &c->gpt, 16, c->cfg.giot_context, 1e-3f, 0, 0);
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
        if ((rc = fmq_mlp_ws_init(&c->ws, &c->model, 1)) != 0) return rc;
        c->trainable = c->model.params;
        c->dim = c->model.nparams;
    }
    return load_test(c);
}

void coord_model_free(struct coord *c)
{
    fmq_model_free(&c->model);
    fmq_mlp_ws_free(&c->ws);
    fmq_gpt_free(&c->gpt);
    fmq_giot_trainer_free(&c->etr);
    free(c->td.tok);
    free(c->td.prev);
    free(c->td.label);
    free(c->tidx);
    free(c->tscore);
    free(c->tscratch);
    free(c->thead);
    free(c->Xt);
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
    if (c->kind == FMQ_MODEL_GIOT) {
        g->gpt = &c->gpt;
        g->giot_context = c->cfg.giot_context;
        g->client.lr = (float)c->cfg.giot_lr;
    } else
        g->model = &c->model;
}

/* The agents' alert rule: the MLP flags P(malicious) >= threshold; GIoT flags an NLL above the
 * 1%-FPR threshold, or, with a supervised head, a head probability >= threshold. */
static void confusion(const struct coord *c, size_t a0, size_t a1, float thr,
                      struct fmq_confusion *cm)
{
    int giot = c->kind == FMQ_MODEL_GIOT, head = giot && c->gpt.cfg.classes >= 2;
    float pthr = (float)c->cfg.threshold;
    for (size_t i = a0; i < a1; i++)
        fmq_confusion_add(cm, c->yt[i] > 0.5f,
                          giot ? c->tscore[i] > thr || (head && c->thead[i] >= pthr)
                               : c->tscore[i] >= thr);
}

void coord_evaluate(struct coord *c, struct coord_eval *e)
{
    const uint8_t *p = (const uint8_t *)c->trainable;
    double t0 = fmq_mono();
    float thr;
    memset(e, 0, sizeof *e);
    e->model_hash = 1469598103934665603ULL; /* FNV-1a 64 */
    for (size_t i = 0; p && i < c->dim * sizeof(float); i++)
        e->model_hash = (e->model_hash ^ p[i]) * 1099511628211ULL;
    if (c->kind != FMQ_MODEL_GIOT && c->model.has_norm) /* the MLP's input normalisation too */
        for (int k = 0; k < 2; k++) {
            p = (const uint8_t *)(k ? c->model.norm_std : c->model.norm_mean);
            for (size_t i = 0; i < (size_t)c->model.cfg.in_dim * sizeof(float); i++)
                e->model_hash = (e->model_hash ^ p[i]) * 1099511628211ULL;
        }
    e->recall_at_fpr = e->head_recall_at_fpr = e->either_recall_at_fpr = -1;
    if (!c->ntest) return;
    if (c->kind == FMQ_MODEL_GIOT && c->gpt.cfg.classes >= 2) { /* the supervised head first */
        fmq_giot_classify(&c->etr, &c->gpt, &c->td, c->tidx, c->ntest, c->thead);
        e->head_recall_at_fpr =
            fmq_recall_at_fpr(c->thead, c->yt, c->ntest, 0.01, c->tscratch, NULL, NULL);
    }
    if (c->kind == FMQ_MODEL_GIOT)
        fmq_giot_score(&c->etr, &c->gpt, &c->td, c->tidx, c->ntest, c->tscore);
    else
        for (size_t i = 0; i < c->ntest; i++)
            c->tscore[i] = fmq_model_logit(&c->model, &c->ws, c->Xt + i * FMQ_FEAT_DIM);
    e->recall_at_fpr = fmq_recall_at_fpr(c->tscore, c->yt, c->ntest, 0.01, c->tscratch, &thr, NULL);
    if (e->head_recall_at_fpr >= 0) /* as agents alert: unlikely, or the head says attack */
        e->either_recall_at_fpr =
            fmq_recall_at_fpr_either(c->tscore, c->thead, c->yt, c->ntest, 0.01, c->tscratch);
    e->threshold = c->kind == FMQ_MODEL_GIOT ? thr : (float)c->cfg.threshold;
    if (c->kind != FMQ_MODEL_GIOT) { /* MLP scores are logits: P >= p is logit >= log(p/(1-p)) */
        double pt = c->cfg.threshold <= 0   ? 1e-9
                    : c->cfg.threshold >= 1 ? 1 - 1e-9
                                            : c->cfg.threshold;
        thr = (float)log(pt / (1 - pt));
    } else
        thr = e->threshold;
    confusion(c, 0, c->ntest, thr, &e->cm);
    for (int f = 0; f < c->cfg.ntest; f++)
        confusion(c, c->test_start[f], c->test_start[f + 1], thr, &e->per_file[f]);
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
