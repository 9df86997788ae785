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

/* Every feature of real flows lies in fmq_feat_range; moments outside it are refused. */
static void test_ranges_and_checks(void)
{
    struct fmq_featurizer fz;
    struct fmq_flow f;
    struct fmq_moments m;
    float x[FMQ_FEAT_DIM], mean[FMQ_FEAT_DIM], std[FMQ_FEAT_DIM];
    char err[200];
    double lo, hi;
    CU_ASSERT_FATAL(fmq_feat_init(&fz, 16, 16) == 0);
    fmq_moments_clear(&m);
    fmq_flow_clear(&f); /* the extremes the parser admits */
    f.ts = 1e308;
    f.duration = 1.7e308;
    f.orig_bytes = f.resp_bytes = f.orig_pkts = f.orig_ip_bytes = (int64_t)1 << 52;
    f.resp_pkts = 0;
    f.resp_ip_bytes = 0;
    strcpy(f.orig_h, "10.0.0.1");
    strcpy(f.resp_h, "10.0.0.2");
    strcpy(f.history, "ShADadFfRrTtCc^ShADadFfRrTtCc^ShADadFfRrTtCc^ShADadFfRrTtCc^xyz");
    for (int k = 0; k < 70; k++) {
        f.ts = k == 1 ? 0 : k * 1e306; /* time going back and jumping far */
        fmq_feat_extract(&fz, &f, x);
        for (int i = 0; i < FMQ_FEAT_DIM; i++) {
            fmq_feat_range(i, &lo, &hi);
            CU_ASSERT(x[i] >= lo - 1e-3 && x[i] <= hi + 1e-3);
        }
        fmq_moments_add(&m, x);
    }
    CU_ASSERT(fmq_moments_check(&m, err, sizeof err) == 0);
    fmq_moments_finish(&m, mean, std);
    CU_ASSERT(fmq_norm_check(mean, std, err, sizeof err) == 0);
    { /* checked moments merge into checked moments: the bound survives mixtures */
        struct fmq_moments top = m, mix = m;
        for (int i = 0; i < FMQ_FEAT_DIM; i++) {
            double lo2, hi2;
            fmq_feat_range(i, &lo2, &hi2);
            top.mean[i] = hi2;
            top.m2[i] = 0;
        }
        top.n = 1e12;
        CU_ASSERT(fmq_moments_check(&top, err, sizeof err) == 0);
        fmq_moments_merge(&mix, &top);
        CU_ASSERT(fmq_moments_check(&mix, err, sizeof err) == 0);
        fmq_moments_finish(&mix, mean, std);
        CU_ASSERT(fmq_norm_check(mean, std, err, sizeof err) == 0);
        fmq_moments_finish(&m, mean, std);
    }
    /* the attack of issue 15: mean 1e300 over one sample */
    m.n = 1;
    m.mean[0] = 1e300;
    CU_ASSERT_EQUAL(fmq_moments_check(&m, err, sizeof err), FMQ_ERANGE);
    CU_ASSERT(strstr(err, "log_duration") != NULL);
    m.mean[0] = 1;
    m.m2[12] = 0.26; /* a one-hot flag cannot vary more than 0.25 */
    CU_ASSERT_EQUAL(fmq_moments_check(&m, err, sizeof err), FMQ_ERANGE);
    CU_ASSERT(strstr(err, "proto_icmp") != NULL);
    std[5] = 1e30f;
    CU_ASSERT_EQUAL(fmq_norm_check(mean, std, err, sizeof err), FMQ_ERANGE);
    fmq_feat_free(&fz);
}

/* The statistics round, robustly: the exact merge for an honest fleet, one extreme agent left
 * out, counts capped, and the site holding most of the data kept. */
static void test_moments_robust(void)
{
    struct fmq_moments in[9], out, exact;
    struct fmq_moments_rule rule = {5.0, 1, 3.0, 0.5};
    char err[200];
    int kept[9], capped, n;
    fmq_moments_clear(&exact);
    for (int k = 0; k < 8; k++) {
        fmq_moments_clear(&in[k]);
        for (int j = 0; j < 100 + 50 * k; j++) {
            float x[FMQ_FEAT_DIM];
            for (int i = 0; i < FMQ_FEAT_DIM; i++) x[i] = (float)((j * 7 + i * 3 + k) % 10) / 10;
            fmq_moments_add(&in[k], x);
        }
        fmq_moments_merge(&exact, &in[k]);
    }
    n = fmq_moments_robust_merge(in, 8, &rule, &out, kept, &capped);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(capped, 0);
    CU_ASSERT_DOUBLE_EQUAL(out.n, exact.n, 0);
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        CU_ASSERT_DOUBLE_EQUAL(out.mean[i], exact.mean[i], 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(out.m2[i], exact.m2[i], 1e-9);
    }
    /* stats-extreme: every mean at the top of its range, all mass there, 1e12 samples; the
     * range's largest variance with that mean is refused (Bhatia-Davis: at most 0) */
    in[8] = in[0];
    in[8].n = 1e12;
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double lo, hi;
        fmq_feat_range(i, &lo, &hi);
        in[8].mean[i] = hi;
        in[8].m2[i] = (hi - lo) * (hi - lo) / 4 * in[8].n;
    }
    CU_ASSERT_EQUAL(fmq_moments_check(&in[8], err, sizeof err), FMQ_ERANGE);
    for (int i = 0; i < FMQ_FEAT_DIM; i++) in[8].m2[i] = 0;
    CU_ASSERT(fmq_moments_check(&in[8], err, sizeof err) == 0); /* real features could */
    n = fmq_moments_robust_merge(in, 9, &rule, &out, kept, &capped);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(kept[8], 0);
    CU_ASSERT_EQUAL(capped, 1);
    CU_ASSERT_DOUBLE_EQUAL(out.mean[3], exact.mean[3], 1e-12);
    /* without the filter the cap still bounds it: 5 x the median count of the nine, 300 */
    rule.filter = 0;
    n = fmq_moments_robust_merge(in, 9, &rule, &out, kept, &capped);
    CU_ASSERT_EQUAL(n, 9);
    CU_ASSERT_DOUBLE_EQUAL(out.n, exact.n + 5 * 300.0, 1e-6);
    /* a site holding most of the (capped) data is kept however far it lies */
    rule.filter = 1;
    rule.count_cap = 0;
    n = fmq_moments_robust_merge(in, 9, &rule, &out, kept, &capped);
    CU_ASSERT_EQUAL(n, 9);
    CU_ASSERT_EQUAL(kept[8], 1);
    CU_ASSERT_EQUAL(fmq_moments_robust_merge(in, 0, &rule, &out, kept, &capped), FMQ_EINVAL);
}

/* The secure statistics round (fmq_stats_to_secure): two sites of equal size summed as unit
 * vectors give their exact merge back; a site of all-ones moves a mean by at most w / k; a sum
 * no k sites can make is refused. */
static void test_stats_secure(void)
{
    struct fmq_moments a, b, ab, got, gotb, none;
    float x[FMQ_FEAT_DIM], va[FMQ_STATS_SECURE_DIM], vb[FMQ_STATS_SECURE_DIM];
    double sum[FMQ_STATS_SECURE_DIM];
    fmq_moments_clear(&a);
    fmq_moments_clear(&b);
    fmq_moments_clear(&none);
    for (int i = 0; i < 400; i++) {
        for (int k = 0; k < FMQ_FEAT_DIM; k++) {
            double lo, hi;
            fmq_feat_range(k, &lo, &hi);
            x[k] = (float)(lo + (hi - lo < 8 ? hi - lo : 8) * (((i * 7 + k * 3) % 17) / 17.0));
        }
        fmq_moments_add(i % 2 ? &a : &b, x);
    }
    ab = a;
    fmq_moments_merge(&ab, &b);
    fmq_stats_to_secure(&a, &a, va); /* a also gives its benign profile, b none */
    fmq_stats_to_secure(&b, &none, vb);
    CU_ASSERT_EQUAL(vb[FMQ_MOMENTS_UNIT], 0.0f);
    for (int i = 0; i < FMQ_STATS_SECURE_DIM; i++) {
        CU_ASSERT(va[i] >= 0 && va[i] <= 1);
        sum[i] = (double)va[i] + vb[i];
    }
    CU_ASSERT_EQUAL_FATAL(fmq_stats_from_secure(sum, 2, &got, &gotb), 0);
    CU_ASSERT_DOUBLE_EQUAL(gotb.n, 1, 0); /* one site's profile */
    for (int k = 0; k < FMQ_FEAT_DIM; k++) {
        double lo, hi, w;
        fmq_feat_range(k, &lo, &hi);
        w = hi - lo < 64 ? hi - lo : 64;
        CU_ASSERT_DOUBLE_EQUAL(got.mean[k], ab.mean[k], 1e-5 * w);
        CU_ASSERT_DOUBLE_EQUAL(got.m2[k] / got.n, ab.m2[k] / ab.n, 1e-4 * w * w);
        CU_ASSERT_DOUBLE_EQUAL(gotb.mean[k], a.mean[k], 1e-5 * w);
    }
    { /* a liar's vector of ones next to one honest site: a mean moves by at most w / 2 */
        for (int i = 0; i < FMQ_STATS_SECURE_DIM; i++) sum[i] = (double)va[i] + 1.0;
        sum[FMQ_MOMENTS_UNIT] = 2;
        CU_ASSERT(fmq_stats_from_secure(sum, 2, &got, &gotb) >= 0);
        for (int k = 0; k < FMQ_FEAT_DIM; k++) {
            double lo, hi, w;
            fmq_feat_range(k, &lo, &hi);
            w = hi - lo < 64 ? hi - lo : 64;
            CU_ASSERT(fabs(got.mean[k] - a.mean[k]) <= w / 2 + 1e-9);
        }
        CU_ASSERT_EQUAL(fmq_moments_check(&got, (char[160]){0}, 160), 0);
        sum[3] = 2.5; /* more than two sites in [0, 1] can sum to: clamped, counted */
        CU_ASSERT(fmq_stats_from_secure(sum, 2, &got, &gotb) >= 1);
        CU_ASSERT_EQUAL(fmq_moments_check(&got, (char[160]){0}, 160), 0);
        CU_ASSERT(got.mean[3] <= 64 + 1e-9); /* the top of feature 3's span */
        CU_ASSERT_EQUAL(fmq_stats_from_secure(sum, 0, &got, &gotb), FMQ_ERANGE);
    }
}

int init_featurize_tests(void)
{
    static const struct fmq_test t[] = {{"flow fields", test_flow_fields},
                                        {"context scan vs beacon", test_context_scan_vs_beacon},
                                        {"eviction bounded", test_eviction_bounded},
                                        {"moments merge", test_moments_merge},
                                        {"feature ranges, checks", test_ranges_and_checks},
                                        {"moments, robust merge", test_moments_robust},
                                        {"statistics, secure round", test_stats_secure},
                                        {NULL, NULL}};
    return fmq_add_suite("featurize", t);
}
