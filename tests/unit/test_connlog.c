/* Reader tests: every layout of the bundled captures gives SOURCES.md's row and label counts,
 * the CSV label repair, JSON lines, and malformed lines counted and skipped, never mislabelled. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fedmq/connlog.h"
#include "test_util.h"

struct counts {
    long rows, benign, malicious, bad;
    long det_cc_torii, det_cc_filedownload, det_cc, det_ddos;
};

static struct counts count_file(const char *name)
{
    struct fmq_connlog r;
    struct fmq_flow f;
    struct counts c = {0};
    char path[512];

    snprintf(path, sizeof path, DATA_DIR "%s", name);
    CU_ASSERT_FATAL(fmq_connlog_open(&r, path) == 0);
    while (fmq_connlog_next(&r, &f) == 0) {
        c.rows++;
        c.benign += f.label == FMQ_LABEL_BENIGN;
        c.malicious += f.label == FMQ_LABEL_MALICIOUS;
        c.det_cc_torii += strcmp(f.detailed_label, "C&C-Torii") == 0;
        c.det_cc_filedownload += strcmp(f.detailed_label, "C&C-FileDownload") == 0;
        c.det_cc += strcmp(f.detailed_label, "C&C") == 0;
        c.det_ddos += strcmp(f.detailed_label, "DDoS") == 0;
        CU_ASSERT(f.label != FMQ_LABEL_UNKNOWN);
        CU_ASSERT(!isnan(f.ts) && f.orig_h[0] && f.resp_h[0]);
    }
    c.bad = r.n_bad;
    fmq_connlog_close(&r);
    return c;
}

static void test_tsv21(void)
{
    struct counts c = count_file("CTU-Honeypot-Capture-4-1.conn.log.labeled");
    CU_ASSERT_EQUAL(c.rows, 452);
    CU_ASSERT_EQUAL(c.benign, 452);
    CU_ASSERT_EQUAL(c.bad, 0);
    c = count_file("CTU-IoT-Malware-Capture-42-1.conn.log.labeled");
    CU_ASSERT_EQUAL(c.rows, 4426);
    CU_ASSERT_EQUAL(c.benign, 4420);
    CU_ASSERT_EQUAL(c.malicious, 6);
    CU_ASSERT_EQUAL(c.det_cc_filedownload, 3);
}

static void test_tsv23(void)
{
    struct counts c = count_file("CTU-IoT-Malware-Capture-34-1.conn.log.labeled");
    CU_ASSERT_EQUAL(c.rows, 23145);
    CU_ASSERT_EQUAL(c.malicious, 21222);
    CU_ASSERT_EQUAL(c.benign, 1923);
    CU_ASSERT_EQUAL(c.det_ddos, 14394);
    CU_ASSERT_EQUAL(c.det_cc, 6706);
    CU_ASSERT_EQUAL(c.bad, 0);
}

static void test_csv_repair(void)
{
    struct counts c = count_file("CTU-IoT-Malware-Capture-20-1conn.log.labeled.csv");
    CU_ASSERT_EQUAL(c.rows, 3209);
    CU_ASSERT_EQUAL(c.malicious, 16);
    CU_ASSERT_EQUAL(c.det_cc_torii, 16);
    c = count_file("CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv");
    CU_ASSERT_EQUAL(c.rows, 237);
    CU_ASSERT_EQUAL(c.benign, 211);
    CU_ASSERT_EQUAL(c.det_cc, 14);
    CU_ASSERT_EQUAL(c.det_cc_filedownload, 11);
    CU_ASSERT_EQUAL(c.det_ddos, 1);
    CU_ASSERT_EQUAL(c.bad, 0);
}

static void test_all_files_total(void)
{
    static const char *files[] = {"CTU-Honeypot-Capture-4-1.conn.log.labeled",
                                  "CTU-Honeypot-Capture-5-1.conn.log.labeled",
                                  "CTU-IoT-Malware-Capture-34-1.conn.log.labeled",
                                  "CTU-IoT-Malware-Capture-42-1.conn.log.labeled",
                                  "CTU-IoT-Malware-Capture-20-1conn.log.labeled.csv",
                                  "CTU-IoT-Malware-Capture-21-1conn.log.labeled.csv",
                                  "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"};
    long rows = 0, mal = 0, ben = 0;
    for (int i = 0; i < 7; i++) {
        struct counts c = count_file(files[i]);
        rows += c.rows, mal += c.malicious, ben += c.benign;
    }
    CU_ASSERT_EQUAL(rows, 36129);
    CU_ASSERT_EQUAL(ben, 14845);
    CU_ASSERT_EQUAL(mal, 21284);
}

/* Reads text through the stream API. */
static int read_text(const char *text, struct fmq_flow *out, int max, long *bad)
{
    struct fmq_connlog r;
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    int n = 0;
    CU_ASSERT_FATAL(f != NULL);
    if (fmq_connlog_open_stream(&r, f, "mem") != 0) {
        fmq_connlog_close(&r);
        return -1;
    }
    while (n < max && fmq_connlog_next(&r, &out[n]) == 0) n++;
    *bad = r.n_bad;
    fmq_connlog_close(&r);
    return n;
}

static const char *TSV_HDR =
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
    "orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t"
    "orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents   label   detailed-label\n";

static void test_malformed_lines(void)
{
    char text[8192];
    struct fmq_flow f[8];
    long bad = 0;
    int n;
    snprintf(text, sizeof text,
             "%s"
             /* good */
             "1.5\tC1\t10.0.0.1\t1000\t8.8.8.8\t53\tudp\tdns\t0.1\t10\t20\tSF\t-\t-"
             "\t0\tDd\t1\t38\t1\t48\t-   Malicious   C&C\n"
             /* too few fields */
             "1.6\tC2\t10.0.0.1\t1000\n"
             /* bad port */
             "1.7\tC3\t10.0.0.1\t99999\t8.8.8.8\t53\tudp\tdns\t0.1\t10\t20\tSF\t-\t-"
             "\t0\tDd\t1\t38\t1\t48\t-   benign   -\n"
             /* unknown label text is not guessed: the record is kept, unlabelled */
             "1.8\tC4\t10.0.0.1\t1000\t8.8.8.8\t53\tudp\tdns\t0.1\t10\t20\tSF\t-\t-"
             "\t0\tDd\t1\t38\t1\t48\t-   Malicous   -\n"
             /* joined field without three parts */
             "1.9\tC5\t10.0.0.1\t1000\t8.8.8.8\t53\tudp\tdns\t0.1\t10\t20\tSF\t-\t-"
             "\t0\tDd\t1\t38\t1\t48\t-   benign\n"
             /* negative count */
             "2.0\tC6\t10.0.0.1\t1000\t8.8.8.8\t53\tudp\tdns\t0.1\t-10\t20\tSF\t-\t-"
             "\t0\tDd\t1\t38\t1\t48\t-   benign   -\n"
             /* non-numeric ts */
             "abc\tC7\t10.0.0.1\t1000\t8.8.8.8\t53\tudp\tdns\t0.1\t10\t20\tSF\t-\t-"
             "\t0\tDd\t1\t38\t1\t48\t-   benign   -\n"
             /* good, unset fields */
             "2.1\tC8\t10.0.0.2\t-\t8.8.4.4\t-\ticmp\t-\t-\t-\t-\tOTH\t-\t-\t-\t-\t-\t-\t-\t-\t("
             "empty)   Benign   -\n"
             "#close\t2020\n",
             TSV_HDR);
    n = read_text(text, f, 8, &bad);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(bad, 5);
    CU_ASSERT_STRING_EQUAL(f[0].uid, "C1");
    CU_ASSERT_EQUAL(f[0].label, FMQ_LABEL_MALICIOUS);
    CU_ASSERT_STRING_EQUAL(f[0].detailed_label, "C&C");
    CU_ASSERT_EQUAL(f[0].resp_p, 53);
    CU_ASSERT_EQUAL(f[0].orig_ip_bytes, 38);
    CU_ASSERT_STRING_EQUAL(f[1].uid, "C4");
    CU_ASSERT_EQUAL(f[1].label, FMQ_LABEL_UNKNOWN);
    CU_ASSERT_STRING_EQUAL(f[2].uid, "C8");
    CU_ASSERT_EQUAL(f[2].orig_p, -1);
    CU_ASSERT(isnan(f[2].duration));
    CU_ASSERT_EQUAL(f[2].orig_bytes, -1);
    CU_ASSERT_EQUAL(f[2].label, FMQ_LABEL_BENIGN);
}

static void test_csv_lines(void)
{
    const char *text =
        "ts|uid|id.orig_h|id.orig_p|id.resp_h|id.resp_p|proto|service|duration|orig_bytes|"
        "resp_bytes|conn_state|local_orig|local_resp|missed_bytes|history|orig_pkts|"
        "orig_ip_bytes|resp_pkts|resp_ip_bytes|tunnel_parents|label|detailed-label\n"
        "1.0|C1|10.0.0.1|1|1.2.3.4|80|tcp|http|1.0|1|2|SF|-|-|0|ShAD|1|2|3|4|-|Malicious   "
        "C&C|Torii\n"
        "1.1|C2|10.0.0.1|1|1.2.3.4|80|tcp|-|1.0|1|2|S0|-|-|0|S|1|2|3|4|-|Malicious   C&C|\n"
        "1.2|C3|10.0.0.1|1|1.2.3.4|80|tcp|-|1.0|1|2|S0|-|-|0|S|1|2|3|4|-|Malicious|C&C\n"
        "1.3|C4|10.0.0.1|1|1.2.3.4|80|tcp|-|1.0|1|2|S0|-|-|0|S|1|2|3|4|-|Benign|-\n"
        "1.4|C5|10.0.0.1|1|1.2.3.4|80|tcp|-|1.0|1|2|S0|-|-|0|S|1|2|3|4|-|Benign\n"
        "1.5|C6|10.0.0.1|1|1.2.3.4|80|tcp|-|1.0|1|2|S0|-|-|0|S|1|2|3|4|-|Evil|-\n";
    struct fmq_flow f[8];
    long bad = 0;
    int n = read_text(text, f, 8, &bad);
    CU_ASSERT_EQUAL(n, 5); /* a missing column is refused; an unknown label "Evil" is kept */
    CU_ASSERT_EQUAL(bad, 1);
    CU_ASSERT_STRING_EQUAL(f[0].detailed_label, "C&C-Torii");
    CU_ASSERT_STRING_EQUAL(f[1].detailed_label, "C&C");
    CU_ASSERT_STRING_EQUAL(f[2].detailed_label, "C&C");
    CU_ASSERT_EQUAL(f[2].label, FMQ_LABEL_MALICIOUS);
    CU_ASSERT_EQUAL(f[3].label, FMQ_LABEL_BENIGN);
    CU_ASSERT_STRING_EQUAL(f[3].detailed_label, "");
    CU_ASSERT_STRING_EQUAL(f[4].uid, "C6");
    CU_ASSERT_EQUAL(f[4].label, FMQ_LABEL_UNKNOWN);
}

static void test_json_lines(void)
{
    const char *text =
        "{\"ts\":1540469302.53864,\"uid\":\"CG\",\"id.orig_h\":\"192.168.1.132\",\"id.orig_p\":"
        "58687,"
        "\"id.resp_h\":\"216.239.35.4\",\"id.resp_p\":123,\"proto\":\"udp\",\"duration\":0.114184,"
        "\"orig_bytes\":48,\"resp_bytes\":48,\"conn_state\":\"SF\",\"local_orig\":true,"
        "\"missed_bytes\":0,\"history\":\"Dd\",\"orig_pkts\":1,\"orig_ip_bytes\":76,\"resp_pkts\":"
        "1,"
        "\"resp_ip_bytes\":76,\"tunnel_parents\":[]}\n"
        "{\"ts\":\"2018-10-25T12:06:42.5Z\",\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\","
        "\"label\":\"Malicious\",\"detailed-label\":\"DDoS\"}\n"
        "{\"ts\":1,\"id.orig_h\":\"10.0.0.1\"}\n"
        "{\"ts\":1,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"x\",\"orig_bytes\":\"lots\"}\n"
        "{\"ts\":1,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"x\"} trailing\n"
        "[1,2,3]\n";
    struct fmq_flow f[8];
    long bad = 0;
    int n = read_text(text, f, 8, &bad);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(bad, 4);
    CU_ASSERT_EQUAL(f[0].label, FMQ_LABEL_UNKNOWN);
    CU_ASSERT_EQUAL(f[0].local_orig, 1);
    CU_ASSERT_EQUAL(f[0].resp_ip_bytes, 76);
    CU_ASSERT_DOUBLE_EQUAL(f[1].ts, 1540469202.5, 1e-6);
    CU_ASSERT_EQUAL(f[1].label, FMQ_LABEL_MALICIOUS);
}

/* Follow mode (fedmq-zeek): a file with no complete header is "not yet"; a half-written line
 * is not read until its newline comes, then read whole once; the offset is the byte after the
 * last line read, and seeking there from a fresh open resumes with the next record. */
static void test_follow(void)
{
    const char *hdr = "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.resp_h\n";
    char path[] = "/tmp/fmq-follow-XXXXXX";
    struct fmq_connlog r;
    struct fmq_flow f;
    long long off;
    int fd = mkstemp(path);
    FILE *w;
    CU_ASSERT_FATAL(fd >= 0);
    w = fdopen(fd, "w");
    fputs("#separator \\x0", w); /* the header half written */
    fflush(w);
    CU_ASSERT_EQUAL(fmq_connlog_open_follow(&r, path), FMQ_EOF);
    fputs(hdr + strlen("#separator \\x0"), w);
    fputs("1.5\tCa\t10.0.0.1\t10.0.0.2\n2.5\tCb\t10.0.0.1\t10.0.0", w); /* a line, a half */
    fflush(w);
    CU_ASSERT_FATAL(fmq_connlog_open_follow(&r, path) == 0);
    CU_ASSERT_EQUAL(fmq_connlog_next(&r, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.uid, "Ca");
    off = fmq_connlog_offset(&r);
    CU_ASSERT_EQUAL(off, (long long)(strlen(hdr) + strlen("1.5\tCa\t10.0.0.1\t10.0.0.2\n")));
    CU_ASSERT_EQUAL(fmq_connlog_next(&r, &f), FMQ_EOF); /* the half line waits */
    CU_ASSERT_EQUAL(fmq_connlog_next(&r, &f), FMQ_EOF);
    CU_ASSERT_EQUAL(r.n_bad, 0);
    fputs(".3\n3.5\tCc\t10.0.0.1\t10.0.0.4\n", w);
    fflush(w);
    CU_ASSERT_EQUAL(fmq_connlog_next(&r, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.uid, "Cb");
    CU_ASSERT_STRING_EQUAL(f.resp_h, "10.0.0.3");
    fmq_connlog_close(&r);
    /* a restart at the offset after Ca: Cb next */
    CU_ASSERT_FATAL(fmq_connlog_open_follow(&r, path) == 0);
    CU_ASSERT_EQUAL(fmq_connlog_seek(&r, off, 3), 0);
    CU_ASSERT_EQUAL(fmq_connlog_next(&r, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.uid, "Cb");
    CU_ASSERT_EQUAL(fmq_connlog_next(&r, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.uid, "Cc");
    CU_ASSERT_EQUAL(fmq_connlog_seek(&r, 1 << 20, 1), FMQ_ERANGE); /* past the end */
    CU_ASSERT_EQUAL(fmq_connlog_seek(&r, 3, 1), FMQ_ERANGE);       /* inside the header */
    fmq_connlog_close(&r);
    fclose(w);
    unlink(path);
}

/* Stratosphere's IDPS logs: 23 tab fields with `label` and `detailedlabel`; Unknown and
 * Background are unlabelled records, kept. Zeek's btest baselines: a banner line above the
 * header and canonified timestamps, each skipped with its reason counted. */
static void test_more_layouts(void)
{
    const char *idps =
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto"
        "\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp"
        "\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes"
        "\ttunnel_parents\tlabel\tdetailedlabel\n"
        "1.0\tC1\t10.0.0.1\t1\t1.2.3.4\t53\tudp\tdns\t0.1\t1\t2\tSF\t-\t-\t0\tDd\t1\t2\t1"
        "\t2\t-\tBenign\tdns-google\n"
        "2.0\tC2\t10.0.0.1\t1\t1.2.3.4\t443\ttcp\tssl\t0.1\t1\t2\tSF\t-\t-\t0\tShAD\t1\t2"
        "\t1\t2\t-\tUnknown\t-\n"
        "3.0\tC3\t10.0.0.1\t1\t1.2.3.4\t23\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t60\t0"
        "\t0\t-\tBackground\t(empty)\n";
    const char *btest = "### BTest baseline data generated by btest-diff. Do not edit.\n"
                        "#separator \\x09\n#open XXXX-XX-XX-XX-XX-XX\n"
                        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n"
                        "XXXXXXXXXX.XXXXXX\tC1\t10.0.0.1\t1\t1.2.3.4\t80\ttcp\n"
                        "1.5\tC2\t10.0.0.1\t1\t1.2.3.4\t80\ttcp\n"
                        "#close XXXX-XX-XX-XX-XX-XX\n";
    struct fmq_flow f[4];
    long bad = 0;
    CU_ASSERT_EQUAL(read_text(idps, f, 4, &bad), 3);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(f[0].label, FMQ_LABEL_BENIGN);
    CU_ASSERT_STRING_EQUAL(f[0].detailed_label, "dns-google");
    CU_ASSERT_EQUAL(f[1].label, FMQ_LABEL_UNKNOWN);
    CU_ASSERT_EQUAL(f[2].label, FMQ_LABEL_UNKNOWN);
    CU_ASSERT_STRING_EQUAL(f[2].detailed_label, "");
    CU_ASSERT_EQUAL(read_text(btest, f, 4, &bad), 1);
    CU_ASSERT_EQUAL(bad, 1); /* the canonified row; the banner is no record */
    CU_ASSERT_STRING_EQUAL(f[0].uid, "C2");
}

static void test_unknown_layout(void)
{
    struct fmq_flow f[2];
    long bad;
    CU_ASSERT_EQUAL(read_text("hello world\n1 2 3\n", f, 2, &bad), -1);
    CU_ASSERT_EQUAL(read_text("", f, 2, &bad), -1);
}

static void test_read_all_sorted(void)
{
    struct fmq_flow *v;
    size_t n;
    long bad = -1;
    CU_ASSERT_FATAL(fmq_connlog_read_all(DATA_DIR "CTU-Honeypot-Capture-4-1.conn.log.labeled", &v,
                                         &n, &bad) == 0);
    CU_ASSERT_EQUAL(n, 452);
    CU_ASSERT_EQUAL(bad, 0);
    for (size_t i = 1; i < n; i++) CU_ASSERT(v[i - 1].ts <= v[i].ts);
    free(v);
    CU_ASSERT_EQUAL(fmq_connlog_read_all("/nonexistent/file", &v, &n, NULL), FMQ_EIO);
}

int init_connlog_tests(void)
{
    static const struct fmq_test t[] = {{"zeek tsv 21 fields", test_tsv21},
                                        {"zeek tsv 23 fields", test_tsv23},
                                        {"csv label repair", test_csv_repair},
                                        {"all captures total", test_all_files_total},
                                        {"malformed tsv lines", test_malformed_lines},
                                        {"csv lines", test_csv_lines},
                                        {"json lines", test_json_lines},
                                        {"unknown layout", test_unknown_layout},
                                        {"more layouts", test_more_layouts},
                                        {"read_all sorted", test_read_all_sorted},
                                        {"follow a live log", test_follow},
                                        {NULL, NULL}};
    return fmq_add_suite("connlog", t);
}
