/* Featurizer: documented indices hold the expected values for a crafted flow, device context
 * reacts to beaconing and scanning, eviction is bounded, and moments merge like one pass. */
#include <math.h>
#include <string.h>

#include "fedmq/featurize.h"
#include "test_util.h"

static int idx(const char *name)
{
    for (int i = 0; i < FMQ_FEAT_DIM; i++)
        if (strcmp(fmq_feat_name(i), name) == 0) return i;
    CU_FAIL("unknown feature name");
    return 0;
}

static void flow(struct fmq_flow *f, double ts, const char *orig, const char *resp, int port,
                 const char *state)
{
    fmq_flow_clear(f);
    f->ts = ts;
    strcpy(f->orig_h, orig);
    strcpy(f->resp_h, resp);
    f->orig_p = 50000;
    f->resp_p = port;
    strcpy(f->proto, "tcp");
    strcpy(f->conn_state, state);
    strcpy(f->history, "ShAD");
    f->orig_bytes = 100;
    f->resp_bytes = 0;
    f->orig_pkts = 2;
    f->resp_pkts = strcmp(state, "S0") == 0 ? 0 : 2;
}

static void test_flow_fields(void)
{
    struct fmq_featurizer fz;
    struct fmq_flow f;
    float x[FMQ_FEAT_DIM];
    CU_ASSERT_FATAL(fmq_feat_init(&fz, 16, 8) == 0);
    flow(&f, 100, "192.168.1.5", "8.8.8.8", 23, "S0");
    fmq_feat_extract(&fz, &f, x);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("log_orig_bytes")], log1p(100), 1e-5);
    CU_ASSERT_EQUAL(x[idx("log_resp_bytes")], 0);
    CU_ASSERT_EQUAL(x[idx("duration_unset")], 1);
    CU_ASSERT_EQUAL(x[idx("proto_tcp")], 1);
    CU_ASSERT_EQUAL(x[idx("proto_udp")], 0);
    CU_ASSERT_EQUAL(x[idx("svc_none")], 1);
    CU_ASSERT_EQUAL(x[idx("state_S0")], 1);
    CU_ASSERT_EQUAL(x[idx("state_SF")], 0);
    CU_ASSERT_EQUAL(x[idx("hist_S")], 1);
    CU_ASSERT_EQUAL(x[idx("hist_h")], 1);
    CU_ASSERT_EQUAL(x[idx("hist_F")], 0);
    CU_ASSERT_EQUAL(x[idx("rport_telnet")], 1);
    CU_ASSERT_EQUAL(x[idx("oport_dynamic")], 1);
    CU_ASSERT_EQUAL(x[idx("resp_private")], 0);
    CU_ASSERT_EQUAL(x[idx("orig_private")], 1);
    CU_ASSERT_EQUAL(x[idx("ctx_first_seen")], 1);
    /* one-hot groups sum to one */
    float s = 0;
    for (int i = idx("state_S0"); i <= idx("state_other"); i++) s += x[i];
    CU_ASSERT_EQUAL(s, 1);
    fmq_feat_free(&fz);
}

static void test_context_scan_vs_beacon(void)
{
    struct fmq_featurizer fz;
    struct fmq_flow f;
    float x[FMQ_FEAT_DIM];
    char ip[32];
    CU_ASSERT_FATAL(fmq_feat_init(&fz, 16, 8) == 0);
    /* scanner: a new host every 0.1 s, unanswered */
    for (int i = 0; i < 10; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.1", i);
        flow(&f, 1000 + 0.1 * i, "192.168.1.9", ip, 23, "S0");
        fmq_feat_extract(&fz, &f, x);
    }
    CU_ASSERT_EQUAL(x[idx("ctx_first_seen")], 0);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_distinct_hosts")], 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_same_host")], 0.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_unanswered")], 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_log_count")], log1p(8), 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_log_gap")], log1p(0.1), 1e-4);
    /* beacon: the same host every 60 s, answered; another device, its own context */
    for (int i = 0; i < 5; i++) {
        flow(&f, 1000 + 60.0 * i, "192.168.1.7", "1.2.3.4", 443, "SF");
        fmq_feat_extract(&fz, &f, x);
    }
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_same_host_port")], 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_distinct_hosts")], 0.25, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_unanswered")], 0.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(x[idx("ctx_log_gap")], log1p(60), 1e-4);
    fmq_feat_free(&fz);
}

static void test_eviction_bounded(void)
{
    struct fmq_featurizer fz;
    struct fmq_flow f;
    float x[FMQ_FEAT_DIM];
    char ip[32];
    CU_ASSERT_FATAL(fmq_feat_init(&fz, 4, 4) == 0);
    for (int i = 0; i < 100; i++) {
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 250, i % 250);
        flow(&f, i, ip, "8.8.8.8", 53, "SF");
        fmq_feat_extract(&fz, &f, x);
    }
    CU_ASSERT_EQUAL(fz.n, 4);
    /* the most recent device is still known, an evicted one starts fresh */
    flow(&f, 200, ip, "8.8.8.8", 53, "SF");
    fmq_feat_extract(&fz, &f, x);
    CU_ASSERT_EQUAL(x[idx("ctx_first_seen")], 0);
    flow(&f, 201, "10.1.0.0", "8.8.8.8", 53, "SF");
    fmq_feat_extract(&fz, &f, x);
    CU_ASSERT_EQUAL(x[idx("ctx_first_seen")], 1);
    fmq_feat_free(&fz);
    CU_ASSERT_EQUAL(fmq_feat_init(&fz, 0, 4), FMQ_EINVAL);
    CU_ASSERT_EQUAL(fmq_feat_init(&fz, 4, FMQ_FEAT_MAXWIN + 1), FMQ_EINVAL);
}

static void test_moments_merge(void)
{
    struct fmq_moments all, a, b;
    float x[FMQ_FEAT_DIM], mean[FMQ_FEAT_DIM], std[FMQ_FEAT_DIM];
    fmq_moments_clear(&all);
    fmq_moments_clear(&a);
    fmq_moments_clear(&b);
    for (int i = 0; i < 50; i++) {
        for (int k = 0; k < FMQ_FEAT_DIM; k++) x[k] = (float)((i * 7 + k) % 13) * (k % 3);
        fmq_moments_add(&all, x);
        fmq_moments_add(i < 17 ? &a : &b, x);
    }
    fmq_moments_merge(&a, &b);
    CU_ASSERT_DOUBLE_EQUAL(a.n, 50, 0);
    for (int k = 0; k < FMQ_FEAT_DIM; k++) {
        CU_ASSERT_DOUBLE_EQUAL(a.mean[k], all.mean[k], 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(a.m2[k], all.m2[k], 1e-6);
    }
    fmq_moments_finish(&a, mean, std);
    CU_ASSERT_DOUBLE_EQUAL(std[0], FMQ_FEAT_STD_FLOOR, 0); /* k=0 never varies */
    CU_ASSERT(std[1] > 1.0f);
}

int init_featurize_tests(void)
{
    static const struct fmq_test t[] = {{"flow fields", test_flow_fields},
                                        {"context scan vs beacon", test_context_scan_vs_beacon},
                                        {"eviction bounded", test_eviction_bounded},
                                        {"moments merge", test_moments_merge},
                                        {NULL, NULL}};
    return fmq_add_suite("featurize", t);
}
