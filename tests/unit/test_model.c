/* Model tests: finite-difference gradient checks for every backward (linear, ReLU, BCE, whole
 * MLP and logistic regression), optimizer steps against hand-computed values, determinism under
 * a seed, and training that learns a separable problem with class weighting. */
#include <math.h>
#include <string.h>

#include "fedmq/model.h"
#include "test_util.h"

static void fill(float *v, size_t n, uint64_t seed)
{
    struct fmq_rng r;
    fmq_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) v[i] = (float)(2 * fmq_rng_uniform(&r) - 1);
}

/* loss = sum(out * probe): dL/dout = probe, so backward(probe) must match finite differences. */
static void test_linear_grad(void)
{
    enum { B = 3, C = 5, OC = 4 };
    float x[B * C], w[OC * C], b[OC], out[B * OC], probe[B * OC];
    float dx[B * C], dw[OC * C] = {0}, db[OC] = {0};
    const double h = 1e-3;
    fill(x, B * C, 1);
    fill(w, OC * C, 2);
    fill(b, OC, 3);
    fill(probe, B * OC, 4);
    fmq_linear_backward(dx, dw, db, probe, x, w, B, C, OC);
    for (int which = 0; which < 3; which++) {
        float *p = which == 0 ? x : which == 1 ? w : b;
        float *g = which == 0 ? dx : which == 1 ? dw : db;
        int n = which == 0 ? B * C : which == 1 ? OC * C : OC;
        for (int i = 0; i < n; i++) {
            double lp = 0, lm = 0;
            float keep = p[i];
            p[i] = keep + (float)h;
            fmq_linear_forward(out, x, w, b, B, C, OC);
            for (int k = 0; k < B * OC; k++) lp += out[k] * probe[k];
            p[i] = keep - (float)h;
            fmq_linear_forward(out, x, w, b, B, C, OC);
            for (int k = 0; k < B * OC; k++) lm += out[k] * probe[k];
            p[i] = keep;
            CU_ASSERT_DOUBLE_EQUAL(g[i], (lp - lm) / (2 * h), 2e-3);
        }
    }
}

static void test_relu_grad(void)
{
    float x[6] = {-1.0f, -0.2f, 0.3f, 2.0f, -3.0f, 0.7f}, y[6], d[6], probe[6] = {1, 2, 3, 4, 5, 6};
    fmq_relu_forward(y, x, 6);
    fmq_relu_backward(d, y, probe, 6);
    for (int i = 0; i < 6; i++) {
        float yp, ym, xp = x[i] + 1e-3f, xm = x[i] - 1e-3f;
        fmq_relu_forward(&yp, &xp, 1);
        fmq_relu_forward(&ym, &xm, 1);
        CU_ASSERT_DOUBLE_EQUAL(d[i], probe[i] * (yp - ym) / 2e-3, 1e-2);
    }
}

static void test_bce_grad(void)
{
    float z[4] = {-3.0f, -0.1f, 0.5f, 4.0f}, y[4] = {0, 1, 0, 1}, w[4] = {1, 2, 0.5f, 3}, dz[4];
    fmq_bce_backward(dz, z, y, w, 4);
    for (int i = 0; i < 4; i++) {
        float keep = z[i];
        double lp, lm;
        z[i] = keep + 1e-3f;
        lp = fmq_bce_forward(z, y, w, 4);
        z[i] = keep - 1e-3f;
        lm = fmq_bce_forward(z, y, w, 4);
        z[i] = keep;
        CU_ASSERT_DOUBLE_EQUAL(dz[i], (lp - lm) / 2e-3, 1e-3);
    }
    /* stable at extreme logits */
    z[0] = 500.0f;
    CU_ASSERT(isfinite(fmq_bce_forward(z, y, w, 4)));
}

static void model_grad_check(const struct fmq_model_config *cfg)
{
    struct fmq_model m;
    struct fmq_mlp_ws ws;
    enum { B = 4 };
    float x[B * 6], y[B] = {0, 1, 1, 0}, w[B] = {1, 3, 3, 1};
    int checked = 0;
    CU_ASSERT_FATAL(fmq_model_init(&m, cfg) == 0);
    fmq_model_init_params(&m, 7);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] += 0.01f * (float)(i % 5); /* biases off 0 */
    CU_ASSERT_FATAL(fmq_mlp_ws_init(&ws, &m, B) == 0);
    fill(x, B * 6, 9);
    memset(ws.grads, 0, m.nparams * sizeof(float));
    fmq_mlp_forward(&m, &ws, x, B);
    fmq_mlp_backward(&m, &ws, y, w, B);
    for (size_t i = 0; i < m.nparams; i++) {
        float keep = m.params[i];
        double lp, lm, fd;
        m.params[i] = keep + 1e-3f;
        fmq_mlp_forward(&m, &ws, x, B);
        lp = fmq_bce_forward(ws.acts + ws.act_off[m.nlayers], y, w, B);
        m.params[i] = keep - 1e-3f;
        fmq_mlp_forward(&m, &ws, x, B);
        lm = fmq_bce_forward(ws.acts + ws.act_off[m.nlayers], y, w, B);
        m.params[i] = keep;
        fd = (lp - lm) / 2e-3;
        CU_ASSERT_DOUBLE_EQUAL(ws.grads[i], fd, 2e-3 + 1e-2 * fabs(fd));
        checked++;
    }
    CU_ASSERT_EQUAL((size_t)checked, fmq_model_param_count(cfg));
    fmq_mlp_ws_free(&ws);
    fmq_model_free(&m);
}

static void test_mlp_grad(void)
{
    struct fmq_model_config c = {FMQ_MODEL_MLP, 6, 2, {5, 3}, 1, 8};
    model_grad_check(&c);
}

static void test_logreg_grad(void)
{
    struct fmq_model_config c = {FMQ_MODEL_LOGREG, 6, 0, {0}, 1, 8};
    model_grad_check(&c);
}

/* The model check agents and the coordinator share: finite, bounded, a real normalisation. */
static void test_model_check(void)
{
    struct fmq_model_config c = {FMQ_MODEL_MLP, 80, 1, {8}, 1, 16};
    struct fmq_model m;
    char err[200];
    CU_ASSERT_FATAL(fmq_model_init(&m, &c) == 0);
    fmq_model_init_params(&m, 1);
    CU_ASSERT(fmq_model_check(&m, err, sizeof err) == 0); /* no normalisation yet: 0 and 1 */
    m.params[7] = 3e38f;
    CU_ASSERT_EQUAL(fmq_model_check(&m, err, sizeof err), FMQ_ERANGE);
    CU_ASSERT(strstr(err, "parameter 7") != NULL);
    m.params[7] = NAN;
    CU_ASSERT_EQUAL(fmq_params_check(m.params, m.nparams, err, sizeof err), FMQ_ERANGE);
    m.params[7] = 0.5f;
    m.has_norm = 1;
    for (int i = 0; i < 80; i++) m.norm_mean[i] = 0.2f, m.norm_std[i] = 0.3f;
    CU_ASSERT(fmq_model_check(&m, err, sizeof err) == 0);
    m.norm_std[3] = INFINITY; /* the 1e300 statistics of issue 15, once a float */
    CU_ASSERT_EQUAL(fmq_model_check(&m, err, sizeof err), FMQ_ERANGE);
    m.norm_std[3] = 0.3f;
    m.norm_mean[10] = 5; /* proto_tcp is a flag */
    CU_ASSERT_EQUAL(fmq_model_check(&m, err, sizeof err), FMQ_ERANGE);
    fmq_model_free(&m);
}

static void test_config_checks(void)
{
    struct fmq_model_config c = {FMQ_MODEL_MLP, 6, 0, {0}, 1, 8};
    CU_ASSERT_EQUAL(fmq_model_config_check(&c), FMQ_EINVAL); /* mlp needs a hidden layer */
    c.kind = 9;
    CU_ASSERT_EQUAL(fmq_model_config_check(&c), FMQ_EINVAL);
    c = (struct fmq_model_config){FMQ_MODEL_MLP, 4096, 2, {4096, 4096}, 1, 8};
    CU_ASSERT_EQUAL(fmq_model_config_check(&c), FMQ_ETOOBIG);
    c = (struct fmq_model_config){FMQ_MODEL_MLP, 80, 2, {32, 16}, 1, 8};
    CU_ASSERT_EQUAL(fmq_model_param_count(&c), 80 * 32 + 32 + 32 * 16 + 16 + 16 + 1);
}

static void test_sgd_adam_steps(void)
{
    struct fmq_optim o;
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -1.0f};
    /* SGD momentum 0.9, lr 0.1: m1 = g, p -= 0.1 g; m2 = 0.9 g + g = 1.9 g */
    CU_ASSERT_FATAL(fmq_optim_init(&o, FMQ_OPT_SGD, 2, 0.1f) == 0);
    fmq_optim_step(&o, p, g);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.95, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -1.9, 1e-6);
    fmq_optim_step(&o, p, g);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.95 - 0.1 * 1.9 * 0.5, 1e-6);
    fmq_optim_free(&o);
    /* Adam's first step moves each parameter by lr * sign(g) (bias-corrected) */
    p[0] = 1.0f, p[1] = -2.0f;
    CU_ASSERT_FATAL(fmq_optim_init(&o, FMQ_OPT_ADAM, 2, 0.01f) == 0);
    fmq_optim_step(&o, p, g);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.99, 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -1.99, 1e-5);
    /* second step with the same gradient: m_hat = g, v_hat = g^2, again lr * sign(g) */
    fmq_optim_step(&o, p, g);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.98, 1e-5);
    fmq_optim_free(&o);
    CU_ASSERT_EQUAL(fmq_optim_init(&o, FMQ_OPT_ADAM, 2, 0.0f), FMQ_EINVAL);
    /* AdamW: the decay is decoupled from the moments: p -= lr (1 + wd p) on the first step,
     * while Adam's L2 would be normalised away (sign(g + wd p)) */
    p[0] = 1.0f, p[1] = -2.0f;
    CU_ASSERT_FATAL(fmq_optim_init(&o, FMQ_OPT_ADAMW, 2, 0.01f) == 0);
    o.weight_decay = 0.1f;
    fmq_optim_step(&o, p, g);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 1.0 - 0.01 * (1.0 + 0.1 * 1.0), 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -2.0 - 0.01 * (-1.0 + 0.1 * -2.0), 1e-5);
    fmq_optim_free(&o);
}

/* Two gaussian blobs, 1 in 10 positive. */
static void blobs(float *X, float *y, int n, int d, uint64_t seed)
{
    struct fmq_rng r;
    fmq_rng_seed(&r, seed, 3);
    for (int i = 0; i < n; i++) {
        y[i] = i % 10 == 0;
        for (int k = 0; k < d; k++)
            X[i * d + k] = (float)(fmq_rng_normal(&r) + (y[i] > 0 ? 1.5 : -0.5) * (k < 3));
    }
}

static void test_train_learns_and_is_deterministic(void)
{
    enum { N = 2000, D = 6 };
    static float X[N * D], y[N];
    struct fmq_model_config c = {FMQ_MODEL_MLP, D, 1, {8}, 1, 8};
    struct fmq_model a, b;
    struct fmq_trainer t;
    struct fmq_train_opts o;
    struct fmq_confusion cm = {0};
    struct fmq_scores s;
    float loss;
    blobs(X, y, N, D, 11);
    fmq_train_opts_default(&o);
    o.epochs = 5;
    o.lr = 0.01f;
    CU_ASSERT_FATAL(fmq_model_init(&a, &c) == 0 && fmq_model_init(&b, &c) == 0);
    fmq_model_init_params(&a, 5);
    fmq_model_init_params(&b, 5);
    CU_ASSERT_FATAL(fmq_trainer_init(&t, &a, &o, N) == 0);
    CU_ASSERT_FATAL(fmq_train(&t, &a, &o, X, y, NULL, N, &loss) == 0);
    CU_ASSERT_FATAL(fmq_train(&t, &b, &o, X, y, NULL, N, &loss) == 0);
    CU_ASSERT(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0);
    fmq_model_evaluate(&a, &t.ws, X, y, N, 0.5f, &cm);
    fmq_scores_from(&cm, &s);
    CU_ASSERT(s.recall > 0.9);
    CU_ASSERT(s.f1 > 0.7);
    /* another seed gives another model */
    o.seed = 99;
    fmq_model_init_params(&b, 5);
    CU_ASSERT_FATAL(fmq_train(&t, &b, &o, X, y, NULL, N, &loss) == 0);
    CU_ASSERT(memcmp(a.params, b.params, a.nparams * sizeof(float)) != 0);
    CU_ASSERT_EQUAL(fmq_train(&t, &b, &o, X, y, NULL, N + 1, &loss), FMQ_EINVAL);
    fmq_trainer_free(&t);
    fmq_model_free(&a);
    fmq_model_free(&b);
}

/* d logit / d input against finite differences of the forward pass */
static void test_input_grad(void)
{
    struct fmq_model_config c = {FMQ_MODEL_MLP, 6, 2, {5, 3}, 1, 8};
    struct fmq_model m;
    struct fmq_mlp_ws ws;
    float x[6], dx[6];
    CU_ASSERT_FATAL(fmq_model_init(&m, &c) == 0);
    fmq_model_init_params(&m, 3);
    CU_ASSERT_FATAL(fmq_mlp_ws_init(&ws, &m, 1) == 0);
    fill(x, 6, 21);
    fmq_mlp_forward(&m, &ws, x, 1);
    fmq_mlp_input_grad(&m, &ws, dx);
    for (int k = 0; k < 6; k++) {
        float keep = x[k];
        double zp, zm;
        x[k] = keep + 1e-3f;
        zp = fmq_mlp_forward(&m, &ws, x, 1)[0];
        x[k] = keep - 1e-3f;
        zm = fmq_mlp_forward(&m, &ws, x, 1)[0];
        x[k] = keep;
        CU_ASSERT_DOUBLE_EQUAL(dx[k], (zp - zm) / 2e-3, 2e-3);
    }
    fmq_mlp_ws_free(&ws);
    fmq_model_free(&m);
}

/* training over an index subset equals training over those rows copied out */
static void test_train_index_subset(void)
{
    enum { N = 400, D = 6 };
    static float X[N * D], y[N], Xs[N / 2 * D], ys[N / 2];
    uint32_t idx[N / 2];
    struct fmq_model_config c = {FMQ_MODEL_LOGREG, D, 0, {0}, 1, 8};
    struct fmq_model a, b;
    struct fmq_trainer t;
    struct fmq_train_opts o;
    float loss;
    blobs(X, y, N, D, 4);
    for (int i = 0; i < N / 2; i++) {
        idx[i] = (uint32_t)(2 * i + 1);
        memcpy(Xs + i * D, X + idx[i] * D, D * sizeof(float));
        ys[i] = y[idx[i]];
    }
    fmq_train_opts_default(&o);
    CU_ASSERT_FATAL(fmq_model_init(&a, &c) == 0 && fmq_model_init(&b, &c) == 0);
    CU_ASSERT_FATAL(fmq_trainer_init(&t, &a, &o, N) == 0);
    CU_ASSERT(fmq_train(&t, &a, &o, X, y, idx, N / 2, &loss) == 0);
    CU_ASSERT(fmq_train(&t, &b, &o, Xs, ys, NULL, N / 2, &loss) == 0);
    /* the same rows in the same shuffled order: identical parameters */
    CU_ASSERT(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0);
    fmq_trainer_free(&t);
    fmq_model_free(&a);
    fmq_model_free(&b);
}

static void test_scores(void)
{
    struct fmq_confusion c = {0};
    struct fmq_scores s;
    /* tp 3, fp 1, tn 4, fn 2 */
    for (int i = 0; i < 3; i++) fmq_confusion_add(&c, 1, 1);
    fmq_confusion_add(&c, 0, 1);
    for (int i = 0; i < 4; i++) fmq_confusion_add(&c, 0, 0);
    for (int i = 0; i < 2; i++) fmq_confusion_add(&c, 1, 0);
    fmq_scores_from(&c, &s);
    CU_ASSERT_DOUBLE_EQUAL(s.accuracy, 0.7, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(s.precision, 0.75, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(s.recall, 0.6, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(s.f1, 6.0 / 9.0, 1e-12);
}

/* Recall at 1% FPR of one score and of "a or b": a finds one half of the attacks, b the other */
static void test_recall_at_fpr_either(void)
{
    enum { NB = 1000, NA = 20, N = NB + NA };
    static float a[N], b[N], y[N], scratch[3 * N];
    struct fmq_rng r;
    fmq_rng_seed(&r, 11, 0);
    for (int i = 0; i < N; i++) {
        a[i] = (float)fmq_rng_uniform(&r);
        b[i] = (float)fmq_rng_uniform(&r);
        y[i] = i >= NB;
    }
    for (int i = NB; i < N; i++) *(i % 2 ? &a[i] : &b[i]) = 2.0f + (float)i; /* above any benign */
    for (int i = NB; i < N; i++) *(i % 2 ? &b[i] : &a[i]) = 0.5f;            /* a median value */
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr(a, y, N, 0.01, scratch, NULL, NULL), 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr(b, y, N, 0.01, scratch, NULL, NULL), 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr_either(a, b, y, N, 0.01, scratch), 1.0, 1e-12);
    /* the same score twice is that score */
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr_either(a, a, y, N, 0.01, scratch), 0.5, 1e-12);
    /* the two together stay within the budget: benign a and b are two orderings of 0..999, the
     * attacks sit above 993 benign a values. a alone at 1% flags them (7 benign above); a or b
     * must hold each score to about 0.5%, or the two would pass about 2% of the benign flows */
    for (int i = 0; i < NB; i++) a[i] = (float)i, b[i] = (float)((i * 7919) % NB);
    for (int i = NB; i < N; i++) a[i] = 992.5f, b[i] = 0.5f;
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr(a, y, N, 0.01, scratch, NULL, NULL), 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr_either(a, b, y, N, 0.01, scratch), 0.0, 1e-12);
    for (int i = NB; i < N; i++) a[i] = 996.5f; /* above 996: within the shared budget */
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr_either(a, b, y, N, 0.01, scratch), 1.0, 1e-12);
    for (int i = NB; i < N; i++) y[i] = -1; /* no attacks: undefined */
    CU_ASSERT_DOUBLE_EQUAL(fmq_recall_at_fpr_either(a, b, y, N, 0.01, scratch), -1.0, 1e-12);
}

int init_model_tests(void)
{
    static const struct fmq_test t[] = {
        {"linear gradient", test_linear_grad},
        {"relu gradient", test_relu_grad},
        {"bce gradient", test_bce_grad},
        {"mlp gradient", test_mlp_grad},
        {"logreg gradient", test_logreg_grad},
        {"config checks", test_config_checks},
        {"model check (finite, bounded, normalisation)", test_model_check},
        {"sgd and adam steps", test_sgd_adam_steps},
        {"train learns, deterministic", test_train_learns_and_is_deterministic},
        {"scores", test_scores},
        {"recall at fpr, either of two scores", test_recall_at_fpr_either},
        {"input gradient", test_input_grad},
        {"train on index subset", test_train_index_subset},
        {NULL, NULL}};
    return fmq_add_suite("model", t);
}
