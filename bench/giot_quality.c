/* bench/giot_quality: GIoT (unsupervised: next-token training, NLL score) against the MLP
 * (supervised) on the demo's split: the first 70% of each capture (time order) to train, the
 * last 30% to test. Prints detection recall at 1% false-positive rate for both scores (threshold
 * = the 99th percentile of the benign test flows' scores), per capture, and GIoT's training
 * tokens/s and scoring flows/s on one thread.
 * With --holdout NAME the capture whose file name contains NAME contributes nothing to
 * training and all its flows are tested (one fold of leave-one-capture-out).
 * Usage: fmq_bench_giot_quality [--steps N] [--channels C] [--layers L] [--heads H]
 *                               [--context K] [--batch B] [--holdout NAME] FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedmq/connlog.h"
#include "fedmq/featurize.h"
#include "fedmq/giot.h"

#define MAXF 16

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* recall at the threshold that lets through 1% of benign scores */
static double recall_at_1pct(const float *score, const int8_t *y, size_t n, float *thr_out)
{
    float *ben = malloc(n * sizeof *ben);
    size_t nb = 0, tp = 0, np = 0;
    float thr;
    for (size_t i = 0; i < n; i++)
        if (y[i] == 0) ben[nb++] = score[i];
    qsort(ben, nb, sizeof *ben, cmp_float);
    thr = nb ? ben[(size_t)(0.99 * (double)(nb - 1))] : 0;
    for (size_t i = 0; i < n; i++)
        if (y[i] == 1) {
            np++;
            tp += score[i] > thr;
        }
    free(ben);
    if (thr_out) *thr_out = thr;
    return np ? (double)tp / (double)np : -1;
}

int main(int argc, char **argv)
{
    const char *files[MAXF];
    int nf = 0, C = 32, L = 2, NH = 4, K = 4, B = 16;
    long steps = 1500;
    const char *holdout = NULL;
    struct fmq_flow *all = NULL;
    size_t n = 0, fstart[MAXF + 1], cut[MAXF];
    uint32_t *tr = NULL, *te = NULL;
    size_t ntr = 0, nte = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atol(argv[++i]);
        else if (!strcmp(argv[i], "--channels") && i + 1 < argc)
            C = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            L = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc)
            NH = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--context") && i + 1 < argc)
            K = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--holdout") && i + 1 < argc)
            holdout = argv[++i];
        else if (nf < MAXF)
            files[nf++] = argv[i];
    }
    for (int f = 0; f < nf; f++) { /* concatenate, keeping each capture's devices apart */
        struct fmq_flow *v;
        size_t m;
        if (fmq_connlog_read_all(files[f], &v, &m, NULL) != 0) return 1;
        all = realloc(all, (n + m) * sizeof *all);
        for (size_t k = 0; k < m; k++) {
            char key[48];
            snprintf(key, sizeof key, "%02d/%.40s", f % 100, v[k].orig_h); /* f < MAXF */
            all[n + k] = v[k];
            strcpy(all[n + k].orig_h, key);
        }
        fstart[f] = n;
        cut[f] = holdout && strstr(files[f], holdout) ? n : n + (size_t)(0.7 * (double)m);
        n += m;
        free(v);
    }
    fstart[nf] = n;
    tr = malloc(n * sizeof *tr);
    te = malloc(n * sizeof *te);
    for (int f = 0; f < nf; f++)
        for (size_t k = fstart[f]; k < fstart[f + 1]; k++) {
            if (k < cut[f])
                tr[ntr++] = (uint32_t)k;
            else
                te[nte++] = (uint32_t)k;
        }

    /* ---- GIoT, unsupervised ---- */
    struct fmq_giot_data d;
    struct fmq_gpt_config gc = {fmq_tok_vocab_size(), 1 + FMQ_TOK_PER_FLOW * K, L, NH, C, 0};
    struct fmq_gpt g;
    struct fmq_giot_trainer t;
    float *gs = malloc(nte * sizeof *gs), loss = 0;
    int8_t *yte = malloc(nte);
    double t0, train_s, score_s;
    if (fmq_giot_data_build(&d, all, n) || fmq_gpt_init(&g, &gc)) return 1;
    fmq_gpt_init_params(&g, 1);
    if (fmq_giot_trainer_init(&t, &g, B, K, 3e-3f, 0.01f, 7)) return 1;
    t0 = fmq_mono();
    for (long s = 0; s < steps; s += 100) {
        loss = fmq_giot_train(&t, &g, &d, tr, ntr, steps - s < 100 ? steps - s : 100);
        fprintf(stderr, "\rgiot: step %ld/%ld loss %.4f", s + 100 < steps ? s + 100 : steps, steps,
                loss);
    }
    train_s = fmq_mono() - t0;
    fprintf(stderr, "\n");
    t0 = fmq_mono();
    fmq_giot_score(&t, &g, &d, te, nte, gs);
    score_s = fmq_mono() - t0;
    for (size_t i = 0; i < nte; i++) yte[i] = d.label[te[i]];
    printf(
        "GIoT: %zu parameters (C %d, L %d, heads %d, context %d flows = %d tokens), %ld steps of "
        "%d windows, final loss %.4f\n",
        g.nparams, C, L, NH, K, t.T, steps, B, loss);
    printf("  training %.0f tokens/s, scoring %.0f flows/s (one thread)\n",
           (double)steps * B * t.T / train_s, (double)nte / score_s);

    /* ---- GIoT with the supervised head: next-token + classification loss (objective c) ---- */
    struct fmq_gpt_config hc = gc;
    struct fmq_gpt h;
    struct fmq_giot_trainer ht;
    float *hs = malloc(nte * sizeof *hs);
    hc.classes = 2;
    if (fmq_gpt_init(&h, &hc)) return 1;
    fmq_gpt_init_params(&h, 1);
    if (fmq_giot_trainer_init(&ht, &h, B, K, 3e-3f, 0.01f, 7)) return 1;
    ht.cls_weight = 1.0f;
    ht.cls_balance = 0.5f; /* as the agents do by default */
    for (long s = 0; s < steps; s += 100) {
        loss = fmq_giot_train(&ht, &h, &d, tr, ntr, steps - s < 100 ? steps - s : 100);
        fprintf(stderr, "\rgiot+head: step %ld/%ld loss %.4f", s + 100 < steps ? s + 100 : steps,
                steps, loss);
    }
    fprintf(stderr, "\n");
    fmq_giot_classify(&ht, &h, &d, te, nte, hs);

    /* ---- MLP, supervised (the foundation's model) ---- */
    struct fmq_model_config mc = {FMQ_MODEL_MLP, FMQ_FEAT_DIM, 2, {32, 16}, FMQ_FEAT_VERSION, 16};
    struct fmq_model m;
    struct fmq_trainer mt;
    struct fmq_train_opts o;
    struct fmq_moments mo;
    struct fmq_featurizer fz;
    float *X = malloc(n * FMQ_FEAT_DIM * sizeof(float)), *y = malloc(n * sizeof(float));
    float *ms = malloc(nte * sizeof *ms);
    fmq_feat_init(&fz, 1 << 16, 16);
    fmq_moments_clear(&mo);
    for (size_t k = 0; k < n; k++) {
        fmq_feat_extract(&fz, &all[k], X + k * FMQ_FEAT_DIM);
        y[k] = all[k].label == FMQ_LABEL_MALICIOUS;
    }
    for (size_t k = 0; k < ntr; k++) fmq_moments_add(&mo, X + (size_t)tr[k] * FMQ_FEAT_DIM);
    fmq_model_init(&m, &mc);
    fmq_model_init_params(&m, 1);
    fmq_moments_finish(&mo, m.norm_mean, m.norm_std);
    m.has_norm = 1;
    fmq_train_opts_default(&o);
    fmq_trainer_init(&mt, &m, &o, n);
    fmq_train(&mt, &m, &o, X, y, tr, ntr, &loss);
    for (size_t i = 0; i < nte; i++)
        ms[i] = fmq_model_score(&m, &mt.ws, X + (size_t)te[i] * FMQ_FEAT_DIM);

    /* ---- report ---- */
    {
        float gthr, mthr, hthr;
        double gr = recall_at_1pct(gs, yte, nte, &gthr), mr = recall_at_1pct(ms, yte, nte, &mthr);
        double hr = recall_at_1pct(hs, yte, nte, &hthr);
        printf("\nrecall at 1%% false-positive rate on the pooled test set (%zu flows):\n", nte);
        printf("  GIoT NLL (unsupervised)  %.4f   (threshold %.2f nats)\n", gr, gthr);
        printf("  GIoT head (supervised)   %.4f   (threshold %.4f)\n", hr, hthr);
        printf("  MLP (supervised)         %.4f   (threshold %.4f)\n", mr, mthr);
        printf("\n%-48s %7s %7s %11s %11s %11s %11s %11s\n", "capture (test part)", "benign",
               "malic.", "GIoT recall", "GIoT FPR", "MLP recall", "MLP FPR", "head recall");
        for (int f = 0; f < nf; f++) {
            size_t nb = 0, np = 0, gtp = 0, gfp = 0, mtp = 0, mfp = 0, htp = 0;
            const char *base = strrchr(files[f], '/');
            for (size_t i = 0; i < nte; i++) {
                if (te[i] < cut[f] || te[i] >= fstart[f + 1]) continue;
                if (yte[i] == 1)
                    np++, gtp += gs[i] > gthr, mtp += ms[i] > mthr, htp += hs[i] > hthr;
                else
                    nb++, gfp += gs[i] > gthr, mfp += ms[i] > mthr;
            }
            printf("%-48.48s %7zu %7zu", base ? base + 1 : files[f], nb, np);
            if (np)
                printf(" %11.4f", (double)gtp / np);
            else
                printf(" %11s", "-");
            printf(" %11.4f", nb ? (double)gfp / nb : 0);
            if (np)
                printf(" %11.4f", (double)mtp / np);
            else
                printf(" %11s", "-");
            printf(" %11.4f", nb ? (double)mfp / nb : 0);
            if (np)
                printf(" %11.4f\n", (double)htp / np);
            else
                printf(" %11s\n", "-");
        }
    }
    return 0;
}
