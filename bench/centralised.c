/* bench/centralised: the centralised reference for the demo's setting. Trains one model on the
 * first 70% (time order) of every capture pooled, tests on the last 30%, and prints per-capture
 * confusion, so federated results have an anchor measured on the same split and features.
 * Usage: fmq_bench_centralised [--epochs N] [--hidden 32,16 | --logreg] [--seed N] FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedmq/connlog.h"
#include "fedmq/featurize.h"
#include "fedmq/model.h"

#define MAXF 32

int main(int argc, char **argv)
{
    struct fmq_model_config cfg = {FMQ_MODEL_MLP, FMQ_FEAT_DIM, 2, {32, 16}, FMQ_FEAT_VERSION, 16};
    struct fmq_train_opts o;
    const char *files[MAXF];
    int nf = 0;
    float *Xtr = NULL, *ytr = NULL, *Xte = NULL, *yte = NULL;
    size_t ntr = 0, nte = 0, fstart[MAXF + 1];
    struct fmq_model m;
    struct fmq_trainer t;
    struct fmq_moments mo;
    struct fmq_confusion all = {0};
    struct fmq_scores s;
    float loss;
    double t0;

    fmq_train_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            o.epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            o.seed = (uint64_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--logreg"))
            cfg.kind = FMQ_MODEL_LOGREG, cfg.n_hidden = 0;
        else if (nf < MAXF)
            files[nf++] = argv[i];
    }
    fmq_moments_clear(&mo);
    for (int f = 0; f < nf; f++) {
        struct fmq_flow *v;
        struct fmq_featurizer fz;
        size_t n, cut;
        if (fmq_connlog_read_all(files[f], &v, &n, NULL) != 0) return 1;
        cut = (size_t)((double)n * 0.7);
        Xtr = realloc(Xtr, (ntr + cut) * FMQ_FEAT_DIM * sizeof(float));
        ytr = realloc(ytr, (ntr + cut) * sizeof(float));
        Xte = realloc(Xte, (nte + n - cut) * FMQ_FEAT_DIM * sizeof(float));
        yte = realloc(yte, (nte + n - cut) * sizeof(float));
        fmq_feat_init(&fz, 4096, cfg.window);
        fstart[f] = nte;
        for (size_t k = 0; k < n; k++) {
            float *x = k < cut ? Xtr + ntr * FMQ_FEAT_DIM : Xte + nte * FMQ_FEAT_DIM;
            fmq_feat_extract(&fz, &v[k], x);
            if (k < cut) {
                fmq_moments_add(&mo, x);
                ytr[ntr++] = v[k].label == FMQ_LABEL_MALICIOUS;
            } else
                yte[nte++] = v[k].label == FMQ_LABEL_MALICIOUS;
        }
        fmq_feat_free(&fz);
        free(v);
    }
    fstart[nf] = nte;
    fmq_model_init(&m, &cfg);
    fmq_model_init_params(&m, 1);
    fmq_moments_finish(&mo, m.norm_mean, m.norm_std);
    m.has_norm = 1;
    fmq_trainer_init(&t, &m, &o, ntr);
    t0 = fmq_mono();
    fmq_train(&t, &m, &o, Xtr, ytr, NULL, ntr, &loss);
    printf("centralised %s, %d epochs, %zu train flows: loss %.5f, %.2f s\n",
           cfg.kind == FMQ_MODEL_MLP ? "mlp" : "logreg", o.epochs, ntr, loss, fmq_mono() - t0);
    printf("%-50s %6s %6s %6s %6s\n", "capture (test = last 30%)", "tp", "fp", "tn", "fn");
    for (int f = 0; f < nf; f++) {
        struct fmq_confusion c = {0};
        fmq_model_evaluate(&m, &t.ws, Xte + fstart[f] * FMQ_FEAT_DIM, yte + fstart[f],
                           fstart[f + 1] - fstart[f], 0.5f, &c);
        const char *b = strrchr(files[f], '/');
        printf("%-50s %6llu %6llu %6llu %6llu\n", b ? b + 1 : files[f], (unsigned long long)c.tp,
               (unsigned long long)c.fp, (unsigned long long)c.tn, (unsigned long long)c.fn);
        all.tp += c.tp, all.fp += c.fp, all.tn += c.tn, all.fn += c.fn;
    }
    fmq_scores_from(&all, &s);
    printf("all: F1 %.4f accuracy %.4f precision %.4f recall %.4f\n", s.f1, s.accuracy, s.precision,
           s.recall);
    return 0;
}
