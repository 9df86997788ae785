/* GIoT transformer: logits, loss and every gradient against PyTorch (schemas/vectors/
 * giot_ref.bin, made by tests/unit/gen_giot_ref.py), and finite-difference gradient checks of
 * each layer (layernorm, GELU, causal attention) and of the whole model, parameter by parameter. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fedmq/fastmath.h"
#include "fedmq/giot.h"
#include "fedmq/gpt.h"
#include "fedmq/tokenize.h"
#include "test_util.h"

static void fill(float *x, size_t n, uint64_t seed, double scale)
{
    struct fmq_rng r;
    fmq_rng_seed(&r, seed, 4);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * fmq_rng_normal(&r));
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- reference against PyTorch ---- */

static int rd(FILE *f, void *p, size_t n)
{
    return fread(p, 1, n, f) == n;
}

static void test_pytorch_reference(void)
{
    FILE *f = fopen(VEC_DIR "giot_ref.bin", "rb");
    char magic[8];
    int cfgv[7], inputs[64], targets[64], labels[8];
    float w[2], loss_ref;
    struct fmq_gpt_config c;
    struct fmq_gpt m;
    struct fmq_gpt_acts a;
    static float logits[4096], cls[64], grads[65536];
    double maxrel = 0, maxabs = 0;
    float loss;

    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(rd(f, magic, 8) && memcmp(magic, "GIOTREF1", 8) == 0);
    CU_ASSERT_FATAL(rd(f, cfgv, sizeof cfgv) && rd(f, w, sizeof w));
    c = (struct fmq_gpt_config){cfgv[0], cfgv[1], cfgv[2], cfgv[3], cfgv[4], cfgv[5]};
    int B = cfgv[6], T = c.max_seq, V = c.vocab, K = c.classes;
    CU_ASSERT_FATAL(B * T <= 64 && B * T * V <= 4096);
    CU_ASSERT_FATAL(fmq_gpt_init(&m, &c) == 0);
    CU_ASSERT_FATAL(m.nparams <= 65536);
    CU_ASSERT_FATAL(rd(f, inputs, sizeof(int) * B * T) && rd(f, targets, sizeof(int) * B * T) &&
                    rd(f, labels, sizeof(int) * B));
    CU_ASSERT_FATAL(rd(f, m.params, m.nparams * sizeof(float)));
    CU_ASSERT_FATAL(rd(f, logits, sizeof(float) * B * T * V) && rd(f, cls, sizeof(float) * B * K) &&
                    rd(f, &loss_ref, sizeof loss_ref) && rd(f, grads, m.nparams * sizeof(float)));
    fclose(f);
    CU_ASSERT_FATAL(fmq_gpt_acts_init(&a, &m, B, T) == 0);
    loss = fmq_gpt_forward(&m, &a, inputs, targets, labels, T, w[0], w[1]);
    CU_ASSERT_DOUBLE_EQUAL(loss, loss_ref, 1e-5);
    for (int i = 0; i < B * T * V; i++) CU_ASSERT_DOUBLE_EQUAL(a.logits[i], logits[i], 1e-5);
    for (int i = 0; i < B * K; i++) CU_ASSERT_DOUBLE_EQUAL(a.cls_logits[i], cls[i], 1e-5);
    memset(a.grads, 0, m.nparams * sizeof(float));
    fmq_gpt_backward(&m, &a);
    for (size_t i = 0; i < m.nparams; i++) {
        double d = fabs((double)a.grads[i] - grads[i]);
        maxabs = fmax(maxabs, d);
        if (fabs(grads[i]) > 1e-4) maxrel = fmax(maxrel, d / fabs(grads[i]));
        CU_ASSERT(d <= 1e-5 + 1e-3 * fabs(grads[i]));
    }
    if (getenv("FMQ_TEST_VERBOSE"))
        fprintf(stderr, "\n  gpt vs torch: loss %.7f / %.7f, grads max abs %.2e, max rel %.2e\n",
                loss, loss_ref, maxabs, maxrel);
    fmq_gpt_acts_free(&a);
    fmq_gpt_free(&m);
}

/* ---- per-layer finite differences: loss = sum(out * probe) ---- */

static void test_layernorm_grad(void)
{
    enum { N = 3, C = 7 };
    float x[N * C], w[C], b[C], out[N * C], mean[N], rstd[N], probe[N * C];
    float dx[N * C] = {0}, dw[C] = {0}, db[C] = {0};
    fill(x, N * C, 1, 1.0);
    fill(w, C, 2, 1.0);
    fill(b, C, 3, 1.0);
    fill(probe, N * C, 4, 1.0);
    fmq_layernorm_forward(out, mean, rstd, x, w, b, N, C);
    fmq_layernorm_backward(dx, dw, db, probe, x, w, mean, rstd, N, C);
    for (int which = 0; which < 3; which++) {
        float *p = which == 0   ? x
                   : which == 1 ? w
                                : b,
              *gr = which == 0   ? dx
                    : which == 1 ? dw
                                 : db;
        int n = which == 0 ? N * C : C;
        for (int i = 0; i < n; i++) {
            float keep = p[i];
            double lp, lm;
            p[i] = keep + 1e-3f;
            fmq_layernorm_forward(out, mean, rstd, x, w, b, N, C);
            lp = dot(out, probe, N * C);
            p[i] = keep - 1e-3f;
            fmq_layernorm_forward(out, mean, rstd, x, w, b, N, C);
            lm = dot(out, probe, N * C);
            p[i] = keep;
            CU_ASSERT_DOUBLE_EQUAL(gr[i], (lp - lm) / 2e-3, 5e-3);
        }
    }
}

static void test_gelu_grad(void)
{
    float x[9] = {-3, -1.5f, -0.5f, -0.1f, 0, 0.1f, 0.7f, 2, 4}, d[9], one[9];
    for (int i = 0; i < 9; i++) one[i] = 1;
    fmq_gelu_backward(d, x, one, 9);
    for (int i = 0; i < 9; i++) {
        float xp = x[i] + 1e-3f, xm = x[i] - 1e-3f, yp, ym;
        fmq_gelu_forward(&yp, &xp, 1);
        fmq_gelu_forward(&ym, &xm, 1);
        CU_ASSERT_DOUBLE_EQUAL(d[i], (yp - ym) / 2e-3, 2e-3);
    }
}

static void test_attention_grad(void)
{
    enum { B = 2, T = 4, C = 6, NH = 2 };
    float qkv[B * T * 3 * C], out[B * T * C], att[B * NH * T * T], probe[B * T * C];
    float dqkv[B * T * 3 * C], datt[B * NH * T * T], dpre[B * NH * T * T];
    fill(qkv, B * T * 3 * C, 5, 1.0);
    fill(probe, B * T * C, 6, 1.0);
    fmq_attention_forward(out, att, qkv, B, T, C, NH);
    /* causal: every row of att sums to one over t2 <= t and is zero after */
    for (int r = 0; r < B * NH * T; r++) {
        int t = r % T;
        double s = 0;
        for (int t2 = 0; t2 < T; t2++) {
            s += att[r * T + t2];
            if (t2 > t) CU_ASSERT_EQUAL(att[r * T + t2], 0);
        }
        CU_ASSERT_DOUBLE_EQUAL(s, 1.0, 1e-6);
    }
    fmq_attention_backward(dqkv, datt, dpre, probe, qkv, att, B, T, C, NH);
    for (int i = 0; i < B * T * 3 * C; i++) {
        float keep = qkv[i];
        double lp, lm;
        qkv[i] = keep + 1e-3f;
        fmq_attention_forward(out, att, qkv, B, T, C, NH);
        lp = dot(out, probe, B * T * C);
        qkv[i] = keep - 1e-3f;
        fmq_attention_forward(out, att, qkv, B, T, C, NH);
        lm = dot(out, probe, B * T * C);
        qkv[i] = keep;
        CU_ASSERT_DOUBLE_EQUAL(dqkv[i], (lp - lm) / 2e-3, 3e-3);
    }
}

/* ---- whole model, every parameter ---- */

static void test_model_grad(void)
{
    struct fmq_gpt_config c = {11, 5, 2, 2, 4, 3};
    struct fmq_gpt m;
    struct fmq_gpt_acts a;
    int inputs[10] = {1, 4, 7, 2, 10, 3, 3, 9, 0, 5},
        targets[10] = {4, 7, 2, 10, -1, 3, 9, 0, 5, 6};
    int labels[2] = {2, 0};
    int bad = 0;
    CU_ASSERT_FATAL(fmq_gpt_init(&m, &c) == 0);
    fill(m.params, m.nparams, 8, 0.4);
    for (int l = 0; l < 2; l++) /* layernorm gains near one, as trained models have */
        for (int k = 0; k < 4; k++) m.t[2][l * 4 + k] += 1.0f, m.t[8][l * 4 + k] += 1.0f;
    for (int k = 0; k < 4; k++) m.t[14][k] += 1.0f;
    CU_ASSERT_FATAL(fmq_gpt_acts_init(&a, &m, 2, 5) == 0);
    fmq_gpt_forward(&m, &a, inputs, targets, labels, 5, 1.0f, 0.7f);
    memset(a.grads, 0, m.nparams * sizeof(float));
    fmq_gpt_backward(&m, &a);
    for (size_t i = 0; i < m.nparams; i++) {
        float keep = m.params[i];
        double lp, lm, fd;
        m.params[i] = keep + 1e-3f;
        lp = fmq_gpt_forward(&m, &a, inputs, targets, labels, 5, 1.0f, 0.7f);
        m.params[i] = keep - 1e-3f;
        lm = fmq_gpt_forward(&m, &a, inputs, targets, labels, 5, 1.0f, 0.7f);
        m.params[i] = keep;
        fd = (lp - lm) / 2e-3;
        if (fabs(a.grads[i] - fd) > 2e-3 + 2e-2 * fabs(fd)) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    fmq_gpt_acts_free(&a);
    fmq_gpt_free(&m);
}

/* LoRA: with B = 0 the adapted model is the base; every adapter and base gradient matches
 * finite differences once B is non-zero; the adapters are a small share of the model. */
static void test_lora(void)
{
    struct fmq_gpt_config c = {11, 5, 2, 2, 4, 3};
    struct fmq_gpt m;
    struct fmq_gpt_acts a0, a;
    int inputs[10] = {1, 4, 7, 2, 10, 3, 3, 9, 0, 5},
        targets[10] = {4, 7, 2, 10, -1, 3, 9, 0, 5, 6};
    int labels[2] = {2, 0}, bad = 0;
    float base;
    CU_ASSERT_FATAL(fmq_gpt_init(&m, &c) == 0);
    fill(m.params, m.nparams, 8, 0.4);
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 4; k++) m.t[2][l * 4 + k] += 1.0f, m.t[8][l * 4 + k] += 1.0f;
    CU_ASSERT_FATAL(fmq_gpt_acts_init(&a0, &m, 2, 5) == 0);
    base = fmq_gpt_forward(&m, &a0, inputs, targets, labels, 5, 1.0f, 0.7f);
    CU_ASSERT_FATAL(fmq_gpt_lora_init(&m, 2, 4.0f, 3) == 0);
    CU_ASSERT_EQUAL(m.lora_n, (size_t)2 * 2 * 16 * 4); /* L r 16C */
    CU_ASSERT_FATAL(fmq_gpt_acts_init(&a, &m, 2, 5) == 0);
    CU_ASSERT_EQUAL(fmq_gpt_forward(&m, &a, inputs, targets, labels, 5, 1.0f, 0.7f), base);
    fill(m.lora, m.lora_n, 9, 0.3); /* B non-zero too, so dA is exercised */
    fmq_gpt_forward(&m, &a, inputs, targets, labels, 5, 1.0f, 0.7f);
    memset(a.grads, 0, m.nparams * sizeof(float));
    memset(a.lora_grads, 0, m.lora_n * sizeof(float));
    fmq_gpt_backward(&m, &a);
    for (int which = 0; which < 2; which++) {
        float *p = which ? m.params : m.lora, *gr = which ? a.grads : a.lora_grads;
        size_t n = which ? m.nparams : m.lora_n;
        for (size_t i = 0; i < n; i++) {
            float keep = p[i];
            double lp, lm, fd;
            p[i] = keep + 1e-3f;
            lp = fmq_gpt_forward(&m, &a, inputs, targets, labels, 5, 1.0f, 0.7f);
            p[i] = keep - 1e-3f;
            lm = fmq_gpt_forward(&m, &a, inputs, targets, labels, 5, 1.0f, 0.7f);
            p[i] = keep;
            fd = (lp - lm) / 2e-3;
            if (fabs(gr[i] - fd) > 2e-3 + 2e-2 * fabs(fd)) bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(fmq_gpt_lora_init(&m, 0, 1.0f, 1), FMQ_EINVAL);
    fmq_gpt_acts_free(&a0);
    fmq_gpt_acts_free(&a);
    fmq_gpt_free(&m);
    /* the bench config (C 32, L 2) at rank 4: adapters 4,096 floats against 32,160 */
    {
        struct fmq_gpt_config bc = {168, 41, 2, 4, 32, 0};
        struct fmq_gpt bm;
        CU_ASSERT_FATAL(fmq_gpt_init(&bm, &bc) == 0 && fmq_gpt_lora_init(&bm, 4, 8.0f, 1) == 0);
        CU_ASSERT_EQUAL(bm.lora_n, 4096);
        CU_ASSERT_EQUAL(bm.nparams, 32160);
        fmq_gpt_free(&bm);
    }
}

static void test_config_and_tokens(void)
{
    struct fmq_gpt_config c = {168, 80, 2, 4, 64, 2};
    struct fmq_flow f;
    uint16_t tok[FMQ_TOK_PER_FLOW];
    char text[96];
    CU_ASSERT_EQUAL(fmq_gpt_config_check(&c), 0);
    c.heads = 3; /* 64 % 3 != 0 */
    CU_ASSERT_EQUAL(fmq_gpt_config_check(&c), FMQ_EINVAL);
    /* the tokenizer: every field in its own range, described in words */
    CU_ASSERT_EQUAL(fmq_tok_vocab_size(), 168);
    fmq_flow_clear(&f);
    f.ts = 100.5;
    strcpy(f.orig_h, "192.168.1.5");
    strcpy(f.resp_h, "8.8.8.8");
    f.resp_p = 23;
    strcpy(f.proto, "tcp");
    strcpy(f.conn_state, "S0");
    strcpy(f.history, "S");
    f.orig_bytes = 0;
    f.orig_pkts = 3;
    fmq_tok_flow(&f, 100.0, tok);
    for (int i = 0; i < FMQ_TOK_PER_FLOW; i++) CU_ASSERT_EQUAL(fmq_tok_field_of(tok[i]), i);
    fmq_tok_describe(tok[FMQ_TF_RPORT], text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "responder port 23");
    fmq_tok_describe(tok[FMQ_TF_STATE], text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "state S0");
    fmq_tok_describe(tok[FMQ_TF_PKTS], text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "packets 2-3 pkts");
    fmq_tok_describe(tok[FMQ_TF_GAP], text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "gap 0.1-1s");
    fmq_tok_describe(tok[FMQ_TF_LOCALITY], text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "locality public");
    fmq_tok_flow(&f, NAN, tok);
    fmq_tok_describe(tok[FMQ_TF_GAP], text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "gap first flow");
}

static void ntp_flow(struct fmq_flow *f, double ts, const char *dev)
{
    fmq_flow_clear(f);
    f->ts = ts;
    strcpy(f->orig_h, dev);
    strcpy(f->resp_h, "216.239.35.4");
    f->orig_p = 40000;
    f->resp_p = 123;
    strcpy(f->proto, "udp");
    strcpy(f->conn_state, "SF");
    strcpy(f->history, "Dd");
    f->duration = 0.05;
    f->orig_bytes = f->resp_bytes = 48;
    f->orig_pkts = f->resp_pkts = 1;
    f->label = FMQ_LABEL_BENIGN;
}

/* turns f into an attack: a SYN to port that nobody answers */
static void unanswered_syn(struct fmq_flow *f, int port)
{
    f->resp_p = port;
    strcpy(f->proto, "tcp");
    strcpy(f->conn_state, "S0");
    strcpy(f->history, "S");
    f->resp_bytes = 0;
    f->resp_pkts = 0;
    f->label = FMQ_LABEL_MALICIOUS;
}

static void test_giot_window(void)
{
    static struct fmq_flow fl[3];
    struct fmq_giot_data d;
    int in[31], tg[31];
    ntp_flow(&fl[0], 0, "10.0.0.1");
    ntp_flow(&fl[1], 60, "10.0.0.2");
    ntp_flow(&fl[2], 120, "10.0.0.1");
    CU_ASSERT_FATAL(fmq_giot_data_build(&d, fl, 3) == 0);
    CU_ASSERT_EQUAL(d.prev[0], -1);
    CU_ASSERT_EQUAL(d.prev[1], -1); /* another device */
    CU_ASSERT_EQUAL(d.prev[2], 0);
    fmq_giot_window(&d, 2, 3, in, tg); /* K = 3, only 2 flows of this device: left padding */
    CU_ASSERT_EQUAL(in[0], FMQ_TOK_PAD);
    CU_ASSERT_EQUAL(tg[0], -1);
    CU_ASSERT_EQUAL(in[10], FMQ_TOK_BOS);
    CU_ASSERT_EQUAL(tg[10], in[11]);
    CU_ASSERT_EQUAL(in[11], d.tok[0]);
    CU_ASSERT_EQUAL(in[21], d.tok[2 * FMQ_TOK_PER_FLOW]);
    CU_ASSERT_EQUAL(tg[30], -1);
    fmq_giot_data_free(&d);
}

/* The online stream gives the same windows as the offline build while nothing is overwritten,
 * cuts links to overwritten slots, and never links two devices. */
static void test_giot_stream(void)
{
    enum { N = 12, K = 3, TT = 1 + FMQ_TOK_PER_FLOW * K };
    static struct fmq_flow fl[N];
    struct fmq_giot_data d;
    struct fmq_giot_stream st;
    int in1[TT], tg1[TT], in2[TT], tg2[TT];
    for (int i = 0; i < N; i++) {
        ntp_flow(&fl[i], 10.0 * i, i % 3 ? "10.0.0.1" : "10.0.0.2");
        fl[i].resp_p = 100 + i; /* every flow distinct */
    }
    CU_ASSERT_FATAL(fmq_giot_data_build(&d, fl, N) == 0);
    CU_ASSERT_FATAL(fmq_giot_stream_init(&st, N, 8) == 0);
    for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(fmq_giot_stream_push(&st, &fl[i]), (size_t)i);
    for (int i = 0; i < N; i++) {
        fmq_giot_window(&d, (size_t)i, K, in1, tg1);
        fmq_giot_window(&st.d, (size_t)i, K, in2, tg2);
        CU_ASSERT(memcmp(in1, in2, sizeof in1) == 0 && memcmp(tg1, tg2, sizeof tg1) == 0);
    }
    fmq_giot_stream_free(&st);
    /* a ring of 3: A1 B1 B2 | B3 overwrites A1 | A2 overwrites B1 and must not link to B3 */
    {
        struct fmq_flow A1, B1, B2, B3, A2;
        size_t sa2, sb3;
        ntp_flow(&A1, 0, "A");
        ntp_flow(&B1, 1, "B");
        ntp_flow(&B2, 2, "B");
        ntp_flow(&B3, 3, "B");
        ntp_flow(&A2, 4, "A");
        CU_ASSERT_FATAL(fmq_giot_stream_init(&st, 3, 8) == 0);
        fmq_giot_stream_push(&st, &A1);
        fmq_giot_stream_push(&st, &B1);
        fmq_giot_stream_push(&st, &B2);
        sb3 = fmq_giot_stream_push(&st, &B3);
        sa2 = fmq_giot_stream_push(&st, &A2);
        CU_ASSERT_EQUAL(sb3, 0);
        CU_ASSERT_EQUAL(sa2, 1);
        CU_ASSERT_EQUAL(st.d.prev[sa2], -1); /* A's last flow is gone: no context */
        fmq_giot_window(&st.d, sa2, K, in1, tg1);
        CU_ASSERT_EQUAL(in1[TT - 1 - FMQ_TOK_PER_FLOW], FMQ_TOK_BOS);
        /* B3 still links to B2 (slot 2); B2's link to B1 (slot 1, now A2) is cut */
        fmq_giot_window(&st.d, sb3, K, in1, tg1);
        CU_ASSERT_EQUAL(in1[TT - 1 - 2 * FMQ_TOK_PER_FLOW], FMQ_TOK_BOS);
        CU_ASSERT_EQUAL(in1[TT - 2 * FMQ_TOK_PER_FLOW], st.d.tok[2 * FMQ_TOK_PER_FLOW]);
        fmq_giot_stream_free(&st);
    }
    /* the device table is bounded: a third device in a table of two starts it over */
    CU_ASSERT_FATAL(fmq_giot_stream_init(&st, 8, 2) == 0);
    fmq_giot_stream_push(&st, &fl[0]);
    fmq_giot_stream_push(&st, &fl[1]);
    {
        struct fmq_flow c3;
        ntp_flow(&c3, 1000, "10.0.0.3");
        fmq_giot_stream_push(&st, &c3);
    }
    CU_ASSERT_EQUAL(st.resets, 1);
    fmq_giot_stream_free(&st);
    fmq_giot_data_free(&d);
}

/* A device that beacons NTP every minute; after training, a telnet SYN from it is far less
 * likely than its usual flow, and the explanation names the port and what was expected. */
static void test_giot_learns_and_explains(void)
{
    enum { N = 400 };
    static struct fmq_flow fl[N + 1];
    struct fmq_gpt_config c = {fmq_tok_vocab_size(), 21, 1, 2, 16, 0};
    struct fmq_gpt m;
    struct fmq_giot_trainer t;
    struct fmq_giot_data d;
    uint32_t idx[2] = {N - 1, N};
    float first, last, sc[2];
    char text[512];
    for (int i = 0; i < N; i++) ntp_flow(&fl[i], 60.0 * i, "192.168.1.20");
    fl[N] = fl[N - 1];
    fl[N].ts += 60;
    fl[N].resp_p = 23;
    strcpy(fl[N].proto, "tcp");
    strcpy(fl[N].conn_state, "S0");
    strcpy(fl[N].history, "S");
    fl[N].resp_bytes = 0;
    fl[N].resp_pkts = 0;
    CU_ASSERT_FATAL(fmq_giot_data_build(&d, fl, N + 1) == 0);
    CU_ASSERT_FATAL(fmq_gpt_init(&m, &c) == 0);
    fmq_gpt_init_params(&m, 3);
    CU_ASSERT_FATAL(fmq_giot_trainer_init(&t, &m, 8, 2, 3e-3f, 0.0f, 5) == 0);
    first = fmq_giot_train(&t, &m, &d, idx, 1, 1); /* loss on the first batch */
    for (int r = 0; r < 8; r++) last = fmq_giot_train(&t, &m, &d, NULL, N, 25);
    CU_ASSERT(last < first * 0.5f);
    fmq_giot_score(&t, &m, &d, idx, 2, sc);
    CU_ASSERT(sc[1] > sc[0] + 5.0f); /* the odd flow is much less likely */
    { /* explaining from the activations of the score just taken says the same */
        char again[512];
        uint32_t odd = N;
        float nll;
        fmq_giot_score(&t, &m, &d, &odd, 1, &nll);
        fmq_giot_explain_last(&t, &m, 3, again, sizeof again);
        CU_ASSERT(fmq_giot_explain(&t, &m, &d, N, 3, text, sizeof text) == nll);
        CU_ASSERT_STRING_EQUAL(again, text);
        fmq_giot_score(&t, &m, &d, idx, 1, &nll); /* another flow's activations differ */
        fmq_giot_explain_last(&t, &m, 3, again, sizeof again);
        CU_ASSERT(strcmp(again, text) != 0);
    }
    if (getenv("FMQ_TEST_VERBOSE"))
        fprintf(stderr, "\n  giot: loss %.3f -> %.3f, NLL normal %.2f odd %.2f: %s\n", first, last,
                sc[0], sc[1], text);
    CU_ASSERT(strstr(text, "expected responder port 123") != NULL ||
              strstr(text, "expected proto udp") != NULL);
    /* after the odd flow, the device is expected to go back to its NTP beacon */
    fmq_giot_predict_next(&t, &m, &d, N, text, sizeof text);
    if (getenv("FMQ_TEST_VERBOSE")) fprintf(stderr, "  giot: predicted next: %s\n", text);
    CU_ASSERT(strncmp(text, "proto udp", 9) == 0);
    CU_ASSERT(strstr(text, "responder port 123") != NULL);
    CU_ASSERT(strstr(text, "(p=") != NULL);
    fmq_giot_trainer_free(&t);
    fmq_gpt_free(&m);
    /* adapter mode, the way a fleet uses it: a base trained on the device, frozen, then rank-4
     * adapters learn a change (the device's NTP server moves to port 4123, an unknown port);
     * the base parameters stay bit for bit as they were */
    {
        static struct fmq_flow moved[N];
        struct fmq_giot_data d2;
        struct fmq_gpt bm;
        float *copy, f0, f1 = 0;
        uint32_t one[1] = {N - 1};
        CU_ASSERT_FATAL(fmq_gpt_init(&bm, &c) == 0);
        fmq_gpt_init_params(&bm, 3);
        CU_ASSERT_FATAL(fmq_giot_trainer_init(&t, &bm, 8, 2, 3e-3f, 0.0f, 5) == 0);
        for (int r = 0; r < 8; r++) fmq_giot_train(&t, &bm, &d, NULL, N, 25);
        fmq_giot_trainer_free(&t);
        for (int i = 0; i < N; i++) {
            moved[i] = fl[i];
            moved[i].resp_p = 4123;
        }
        CU_ASSERT_FATAL(fmq_giot_data_build(&d2, moved, N) == 0);
        CU_ASSERT_FATAL(fmq_gpt_lora_init(&bm, 4, 8.0f, 2) == 0);
        copy = malloc(bm.nparams * sizeof(float));
        memcpy(copy, bm.params, bm.nparams * sizeof(float));
        CU_ASSERT_FATAL(fmq_giot_trainer_init(&t, &bm, 8, 2, 1e-2f, 0.0f, 6) == 0);
        fmq_giot_score(&t, &bm, &d2, one, 1, &f0);
        for (int r = 0; r < 8; r++) fmq_giot_train(&t, &bm, &d2, NULL, N, 25);
        fmq_giot_score(&t, &bm, &d2, one, 1, &f1);
        CU_ASSERT(f1 < 0.5f * f0); /* the moved flow became far less surprising */
        CU_ASSERT(memcmp(copy, bm.params, bm.nparams * sizeof(float)) == 0);
        if (getenv("FMQ_TEST_VERBOSE"))
            fprintf(stderr,
                    "  giot lora: %zu adapter vs %zu base parameters; NLL of the moved "
                    "flow %.5f -> %.5f\n",
                    bm.lora_n, bm.nparams, f0, f1);
        free(copy);
        fmq_giot_trainer_free(&t);
        fmq_giot_data_free(&d2);
        fmq_gpt_free(&bm);
    }
    fmq_giot_data_free(&d);
}

/* Objectives (b) and (c): with a classification head and labels, the head learns which flows
 * are attacks (telnet SYNs between NTP beacons); without the head's loss it stays at chance. */
static void test_giot_supervised_head(void)
{
    enum { N = 300 };
    static struct fmq_flow fl[N];
    struct fmq_gpt_config c = {fmq_tok_vocab_size(), 21, 1, 2, 16, 2};
    uint32_t idx[N];
    float p[N];
    for (int pass = 0; pass < 2; pass++) {
        struct fmq_gpt m;
        struct fmq_giot_trainer t;
        struct fmq_giot_data d;
        double pm = 0, pb = 0;
        int nm = 0, nb = 0;
        for (int i = 0; i < N; i++) {
            ntp_flow(&fl[i], 60.0 * i, "192.168.1.30");
            if (i % 7 == 3) unanswered_syn(&fl[i], 23); /* the attack: telnet */
            idx[i] = (uint32_t)i;
        }
        CU_ASSERT_FATAL(fmq_giot_data_build(&d, fl, N) == 0);
        CU_ASSERT_FATAL(fmq_gpt_init(&m, &c) == 0);
        fmq_gpt_init_params(&m, 4);
        CU_ASSERT_FATAL(fmq_giot_trainer_init(&t, &m, 8, 2, 3e-3f, 0.0f, 5) == 0);
        t.cls_weight = pass == 0 ? 1.0f : 0.0f; /* (c) both objectives, then (a) alone */
        fmq_giot_train(&t, &m, &d, NULL, N, 200);
        fmq_giot_classify(&t, &m, &d, idx, N, p);
        for (int i = 0; i < N; i++)
            if (fl[i].label == FMQ_LABEL_MALICIOUS)
                pm += p[i], nm++;
            else
                pb += p[i], nb++;
        pm /= nm, pb /= nb;
        if (getenv("FMQ_TEST_VERBOSE"))
            fprintf(stderr,
                    "\n  giot head (cls weight %.0f): mean P(malicious) attacks %.3f, "
                    "beacons %.3f\n",
                    t.cls_weight, pm, pb);
        if (pass == 0) {
            CU_ASSERT(pm > 0.9 && pb < 0.1);
        } else {
            CU_ASSERT(fabs(pm - pb) < 0.2); /* the head learned nothing without its loss */
        }
        fmq_giot_trainer_free(&t);
        fmq_giot_data_free(&d);
        fmq_gpt_free(&m);
    }
}

/* Rare attacks (4 in 600 flows): drawing a share of every batch from them teaches the head what
 * uniform batches, which hold one attack window in 150, do not; their next-token targets are
 * masked, so the language model does not learn the attacks from the extra draws. Without labels
 * of both classes, or when the rarer class already makes up the share asked for, there is
 * nothing to top up: the same draws, the same model. */
static void test_giot_class_balance(void)
{
    enum { N = 600, STEPS = 60 };
    static struct fmq_flow fl[N];
    struct fmq_gpt_config c = {fmq_tok_vocab_size(), 21, 1, 2, 16, 2};
    uint32_t idx[N];
    float p[N], nll[N];
    double pm[2], pb[2], lm[2];
    struct fmq_giot_data d;
    for (int i = 0; i < N; i++) {
        ntp_flow(&fl[i], 60.0 * i, "192.168.1.30");
        if (i % 150 == 77) unanswered_syn(&fl[i], 443);
        idx[i] = (uint32_t)i;
    }
    CU_ASSERT_FATAL(fmq_giot_data_build(&d, fl, N) == 0);
    for (int pass = 0; pass < 2; pass++) {
        struct fmq_gpt m;
        struct fmq_giot_trainer t;
        int nm = 0, nb = 0;
        CU_ASSERT_FATAL(fmq_gpt_init(&m, &c) == 0);
        fmq_gpt_init_params(&m, 4);
        CU_ASSERT_FATAL(fmq_giot_trainer_init(&t, &m, 8, 2, 3e-3f, 0.0f, 5) == 0);
        t.cls_weight = 1.0f;
        t.cls_balance = pass ? 0.5f : 0.0f;
        CU_ASSERT(isfinite(fmq_giot_train(&t, &m, &d, idx, N, STEPS)));
        fmq_giot_classify(&t, &m, &d, idx, N, p);
        fmq_giot_score(&t, &m, &d, idx, N, nll);
        pm[pass] = pb[pass] = lm[pass] = 0;
        for (int i = 0; i < N; i++)
            if (fl[i].label == FMQ_LABEL_MALICIOUS)
                pm[pass] += p[i], lm[pass] += nll[i], nm++;
            else
                pb[pass] += p[i], nb++;
        pm[pass] /= nm, lm[pass] /= nm, pb[pass] /= nb;
        if (getenv("FMQ_TEST_VERBOSE"))
            fprintf(stderr,
                    "\n  giot head, balance %.1f: mean P(malicious) attacks %.3f, beacons %.3f; "
                    "attack NLL %.2f nats\n",
                    t.cls_balance, pm[pass], pb[pass], lm[pass]);
        fmq_giot_trainer_free(&t);
        fmq_gpt_free(&m);
    }
    CU_ASSERT(pm[0] < 0.5);                /* uniform batches: the attacks stay unlearned */
    CU_ASSERT(pm[1] > 0.9 && pb[1] < 0.1); /* balanced: learned, and the beacons still benign */
    CU_ASSERT(lm[1] > 0.6 * lm[0]); /* and the language model did not learn them (unmasked: 0.36) */
    for (int labels = 0; labels < 2; labels++) { /* all benign; then 40% attacks, over 30% */
        struct fmq_gpt m[2];
        struct fmq_giot_trainer t;
        for (int i = 0; i < N; i++)
            d.label[i] = labels && i % 5 < 2 ? FMQ_LABEL_MALICIOUS : FMQ_LABEL_BENIGN;
        for (int pass = 0; pass < 2; pass++) {
            CU_ASSERT_FATAL(fmq_gpt_init(&m[pass], &c) == 0);
            fmq_gpt_init_params(&m[pass], 4);
            CU_ASSERT_FATAL(fmq_giot_trainer_init(&t, &m[pass], 8, 2, 3e-3f, 0.0f, 5) == 0);
            t.cls_weight = 1.0f;
            t.cls_balance = pass ? (labels ? 0.3f : 0.5f) : 0.0f;
            fmq_giot_train(&t, &m[pass], &d, idx, N, 5);
            fmq_giot_trainer_free(&t);
        }
        CU_ASSERT(memcmp(m[0].params, m[1].params, m[0].nparams * sizeof(float)) == 0);
        fmq_gpt_free(&m[0]);
        fmq_gpt_free(&m[1]);
    }
    fmq_giot_data_free(&d);
}

/* fastmath.h against libm over the range GELU feeds it, tiny arguments included */
static void test_fast_math(void)
{
    double worst_tanh = 0, worst_exp = 0;
    for (double x = -12; x <= 12; x += 1e-3) {
        double e = fabs((double)fmq_fast_tanhf((float)x) - tanh((double)(float)x));
        worst_tanh = e > worst_tanh ? e : worst_tanh;
    }
    for (double x = -1e-3; x <= 1e-3; x += 1e-6) {
        double e = fabs((double)fmq_fast_tanhf((float)x) - tanh((double)(float)x));
        worst_tanh = e > worst_tanh ? e : worst_tanh;
    }
    for (double x = -80; x <= 80; x += 1e-3) {
        double ref = exp((double)(float)x), e = fabs((double)fmq_fast_expf((float)x) - ref) / ref;
        worst_exp = e > worst_exp ? e : worst_exp;
    }
    if (getenv("FMQ_TEST_VERBOSE"))
        fprintf(stderr, "\n  fast tanh max abs error %.3g, fast exp max rel error %.3g\n",
                worst_tanh, worst_exp);
    CU_ASSERT(worst_tanh < 1e-6);
    CU_ASSERT(worst_exp < 5e-7);
    CU_ASSERT(fmq_fast_tanhf(0.0f) == 0.0f);
    CU_ASSERT(fmq_fast_tanhf(30.0f) > 0.9999999f && fmq_fast_tanhf(-30.0f) < -0.9999999f);
}

int init_gpt_tests(void)
{
    static const struct fmq_test t[] = {{"pytorch reference", test_pytorch_reference},
                                        {"layernorm gradient", test_layernorm_grad},
                                        {"gelu gradient", test_gelu_grad},
                                        {"fast exp and tanh", test_fast_math},
                                        {"attention gradient", test_attention_grad},
                                        {"whole model gradient", test_model_grad},
                                        {"lora adapters", test_lora},
                                        {"config and tokenizer", test_config_and_tokens},
                                        {"giot window", test_giot_window},
                                        {"giot stream", test_giot_stream},
                                        {"giot learns and explains", test_giot_learns_and_explains},
                                        {"giot supervised head", test_giot_supervised_head},
                                        {"giot class balance", test_giot_class_balance},
                                        {NULL, NULL}};
    return fmq_add_suite("gpt", t);
}
