/* Flow text forms: JSON written by fedmq-replay parses back to the same record, labels travel
 * only when asked, and hostile JSON is refused with a reason. */
#include <math.h>
#include <string.h>

#include "fedmq/flow.h"
#include "test_util.h"

static void sample(struct fmq_flow *f)
{
    fmq_flow_clear(f);
    f->ts = 1545403816.962094;
    strcpy(f->uid, "CrDn63WjJEmrWGjqf");
    strcpy(f->orig_h, "192.168.1.195");
    f->orig_p = 41040;
    strcpy(f->resp_h, "185.244.25.235");
    f->resp_p = 80;
    strcpy(f->proto, "tcp");
    f->duration = 3.139211;
    f->orig_bytes = 0;
    f->resp_bytes = 0;
    strcpy(f->conn_state, "S0");
    f->missed_bytes = 0;
    strcpy(f->history, "S\"\\");
    f->orig_pkts = 3;
    f->orig_ip_bytes = 180;
    f->resp_pkts = 0;
    f->resp_ip_bytes = 0;
    f->label = FMQ_LABEL_MALICIOUS;
    strcpy(f->detailed_label, "C&C");
}

static void test_roundtrip(void)
{
    struct fmq_flow a, b;
    char buf[2048], err[200];
    int n;
    sample(&a);
    n = fmq_flow_to_json(&a, 1, buf, sizeof buf);
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_FATAL(fmq_flow_from_json(buf, (size_t)n, &b, err, sizeof err) == 0);
    CU_ASSERT_DOUBLE_EQUAL(a.ts, b.ts, 1e-6);
    CU_ASSERT_STRING_EQUAL(a.uid, b.uid);
    CU_ASSERT_STRING_EQUAL(a.history, b.history);
    CU_ASSERT_EQUAL(a.orig_p, b.orig_p);
    CU_ASSERT_EQUAL(a.resp_ip_bytes, b.resp_ip_bytes);
    CU_ASSERT_DOUBLE_EQUAL(a.duration, b.duration, 1e-6);
    CU_ASSERT_EQUAL(b.label, FMQ_LABEL_MALICIOUS);
    CU_ASSERT_STRING_EQUAL(b.detailed_label, "C&C");
    CU_ASSERT(strstr(buf, "\"id.orig_h\":\"192.168.1.195\"") != NULL);
}

static void test_labels_only_when_asked(void)
{
    struct fmq_flow a, b;
    char buf[2048], err[200];
    int n;
    sample(&a);
    n = fmq_flow_to_json(&a, 0, buf, sizeof buf);
    CU_ASSERT(strstr(buf, "label") == NULL);
    CU_ASSERT_FATAL(fmq_flow_from_json(buf, (size_t)n, &b, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(b.label, FMQ_LABEL_UNKNOWN);
    CU_ASSERT_EQUAL(fmq_flow_to_json(&a, 1, buf, 40), FMQ_ETOOBIG);
}

static void test_hostile_json(void)
{
    static const char *bad[] = {
        "",
        "{",
        "{\"ts\":1",
        "{\"ts\":1,}",
        "{\"ts\" 1}",
        "nul",
        "{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"x\":[[[[[[[[[[[[1]]]]]]]]]]]]}",
        "{\"ts\":1,\"id.orig_h\":\"a\\u0001\",\"id.resp_h\":\"b\"}",
        "{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"id.orig_p\":-1}",
        "{\"ts\":1e999,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\"}",
        "{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"x\\u0002\"}",
        "{\"ts\":1,\"id.orig_h\":\"0123456789012345678901234567890123456789012345678\","
        "\"id.resp_h\":\"b\"}",
        NULL};
    struct fmq_flow f;
    char err[200];
    for (int i = 0; bad[i]; i++) {
        err[0] = 0;
        CU_ASSERT_EQUAL(fmq_flow_from_json(bad[i], strlen(bad[i]), &f, err, sizeof err),
                        FMQ_EFORMAT);
        CU_ASSERT(err[0] != 0);
    }
    /* bare values in JSON's grammar only (the old lexer took any run of "truefalsn", digits
     * and signs, and a NUL byte, as a value) */
    {
        static const char *bare_bad[] = {"truefalse", "nulll", "1.2.3", "--1", "1e",
                                         "01",        "+1",    "tru",   "1x",  NULL};
        static const char nul_rec[] = "{\"ts\":1\0,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\"}";
        char rec[160];
        for (int i = 0; bare_bad[i]; i++) {
            snprintf(rec, sizeof rec,
                     "{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"extra\":%s}",
                     bare_bad[i]);
            err[0] = 0;
            CU_ASSERT_EQUAL(fmq_flow_from_json(rec, strlen(rec), &f, err, sizeof err), FMQ_EFORMAT);
            CU_ASSERT(strstr(err, "at byte") != NULL);
        }
        CU_ASSERT_EQUAL(fmq_flow_from_json(nul_rec, sizeof nul_rec - 1, &f, err, sizeof err),
                        FMQ_EFORMAT);
        /* and every bare value JSON allows still reads */
        snprintf(rec, sizeof rec,
                 "{\"ts\":1.5e+3,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\","
                 "\"local_orig\":true,\"local_resp\":false,\"duration\":null,"
                 "\"x\":[0,1E2,-0.5]}");
        CU_ASSERT_EQUAL_FATAL(fmq_flow_from_json(rec, strlen(rec), &f, err, sizeof err), 0);
        CU_ASSERT_DOUBLE_EQUAL(f.ts, 1500.0, 1e-9);
        CU_ASSERT_EQUAL(f.local_orig, 1);
        CU_ASSERT_EQUAL(f.local_resp, 0);
        CU_ASSERT(isnan(f.duration));
    }
    /* a record cut by the buffer length, not by NUL */
    CU_ASSERT_EQUAL(fmq_flow_from_json("{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\"}", 20, &f,
                                       err, sizeof err),
                    FMQ_EFORMAT);
}

static void count_record(void *ud, const char *rec, size_t n, size_t k)
{
    size_t *seen = ud;
    struct fmq_flow f;
    char err[200];
    CU_ASSERT_EQUAL(k, seen[0]);
    seen[0]++;
    seen[1] += fmq_flow_from_json(rec, n, &f, err, sizeof err) == 0;
}

/* Batches in one message: NDJSON, any whitespace between objects, a JSON array; the framing
 * passes every object on (a bad record is its own decoder's business) and stops, with a byte
 * offset, where it breaks, after the objects before it. The errors name what is missing and
 * recognise a Zeek TSV line. */
static void test_batches(void)
{
    static const char *R =
        "{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"x\":[1,{\"y\":\"}\"}]}";
    static const char *BAD = "{\"ts\":1,\"id.orig_h\":\"a\"}";
    struct {
        const char *fmt;
        int rc;      /* return: objects, or FMQ_EFORMAT */
        size_t seen; /* objects passed on */
        size_t good; /* of them decoded */
    } c[] = {
        {"%s\n%s\n%s\n", 3, 3, 3},         {"  %s %s\r\n%s", 3, 3, 3},
        {"[%s,%s , %s]", 3, 3, 3},         {"[]", 0, 0, 0},
        {"[%s,%s,%s", FMQ_EFORMAT, 3, 3},  {"%s\n%s\nxyz", FMQ_EFORMAT, 2, 2},
        {"[%s,%s]]%s", FMQ_EFORMAT, 2, 2}, {"[] \n", 0, 0, 0},
    };
    char buf[1024], err[200];
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        size_t seen[2] = {0, 0};
        int rc;
        snprintf(buf, sizeof buf, c[i].fmt, R, R, R);
        rc = fmq_flow_json_each(buf, strlen(buf), count_record, seen, err, sizeof err);
        CU_ASSERT_EQUAL(rc, c[i].rc);
        CU_ASSERT_EQUAL(seen[0], c[i].seen);
        CU_ASSERT_EQUAL(seen[1], c[i].good);
        if (rc < 0) CU_ASSERT(strstr(err, "at byte") != NULL);
    }
    /* what a batch looks like: an array, or a framed object with more after it */
    snprintf(buf, sizeof buf, "%s", R);
    CU_ASSERT_EQUAL(fmq_flow_json_batch(buf, strlen(buf)), 0);
    snprintf(buf, sizeof buf, " %s \n", R);
    CU_ASSERT_EQUAL(fmq_flow_json_batch(buf, strlen(buf)), 0);
    snprintf(buf, sizeof buf, "%s\n%s", BAD, R);
    CU_ASSERT_EQUAL(fmq_flow_json_batch(buf, strlen(buf)), 1);
    CU_ASSERT_EQUAL(fmq_flow_json_batch(" []", 3), 1);
    CU_ASSERT_EQUAL(fmq_flow_json_batch("{\"ts\":", 6), 0);
    { /* a bad record inside a batch is passed on, and fails alone */
        size_t seen[2] = {0, 0};
        snprintf(buf, sizeof buf, "[%s,%s,%s]", R, BAD, R);
        CU_ASSERT_EQUAL(fmq_flow_json_each(buf, strlen(buf), count_record, seen, err, sizeof err),
                        3);
        CU_ASSERT_EQUAL(seen[1], 2);
    }
    {
        struct fmq_flow f;
        CU_ASSERT_EQUAL(fmq_flow_from_json(BAD, strlen(BAD), &f, err, sizeof err), FMQ_EFORMAT);
        CU_ASSERT(strstr(err, "lacks id.resp_h") != NULL && strstr(err, " ts") == NULL);
        snprintf(buf, sizeof buf, "1545403816.962094\tCrDn63WjJEmrWGjqf\t192.168.1.195\t41040");
        CU_ASSERT_EQUAL(fmq_flow_from_json(buf, strlen(buf), &f, err, sizeof err), FMQ_EFORMAT);
        CU_ASSERT(strstr(err, "Zeek TSV") != NULL);
    }
}

/* Any label but Benign or Malicious means unlabelled: scored, never trained on, left out of
 * rates; never a reason to drop the record. Detailed labels come from every column name the
 * logs use, or from the raw IoT-23 label itself. */
static void test_labels(void)
{
    static const struct {
        const char *json;
        int label;
        const char *detail;
    } c[] = {{"{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"Background\"}",
              FMQ_LABEL_UNKNOWN, ""},
             {"{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"Unknown\","
              "\"detailedlabel\":\"dns-google\"}",
              FMQ_LABEL_UNKNOWN, "dns-google"},
             {"{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"maybe\"}",
              FMQ_LABEL_UNKNOWN, ""},
             {"{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\","
              "\"label\":\"Malicious   PartOfAHorizontalPortScan\"}",
              FMQ_LABEL_MALICIOUS, "PartOfAHorizontalPortScan"},
             {"{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"Malicious   C&C\","
              "\"detailed-label\":\"-\"}",
              FMQ_LABEL_MALICIOUS, "C&C"},
             {"{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"benign\","
              "\"detailed_label\":\"ntp\"}",
              FMQ_LABEL_BENIGN, "ntp"},
             {"{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"Malicious\","
              "\"det_label\":\"DDoS\"}",
              FMQ_LABEL_MALICIOUS, "DDoS"},
             {NULL, 0, NULL}};
    struct fmq_flow f;
    char err[200], longlab[200];
    for (int i = 0; c[i].json; i++) {
        err[0] = 0;
        CU_ASSERT_EQUAL_FATAL(fmq_flow_from_json(c[i].json, strlen(c[i].json), &f, err, sizeof err),
                              0);
        CU_ASSERT_EQUAL(f.label, c[i].label);
        CU_ASSERT_STRING_EQUAL(f.detailed_label, c[i].detail);
    }
    /* a detailed label longer than the field is cut, the record kept */
    snprintf(longlab, sizeof longlab,
             "{\"ts\":1,\"id.orig_h\":\"a\",\"id.resp_h\":\"b\",\"label\":\"Malicious\","
             "\"detailed-label\":\"%s\"}",
             "C&C-HeartBeat-FileDownload-PartOfAHorizontalPortScan-Attack-Okiru");
    CU_ASSERT_EQUAL_FATAL(fmq_flow_from_json(longlab, strlen(longlab), &f, err, sizeof err), 0);
    CU_ASSERT_EQUAL(strlen(f.detailed_label), sizeof f.detailed_label - 1);
    CU_ASSERT(strncmp(f.detailed_label, "C&C-HeartBeat", 13) == 0);
}

int init_flow_tests(void)
{
    static const struct fmq_test t[] = {{"json round trip", test_roundtrip},
                                        {"labels only when asked", test_labels_only_when_asked},
                                        {"hostile json", test_hostile_json},
                                        {"batches", test_batches},
                                        {"labels", test_labels},
                                        {NULL, NULL}};
    return fmq_add_suite("flow", t);
}
