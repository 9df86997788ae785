/* Flow tokenizer, vocabulary version 1 (see tokenize.h). Changing any table below changes the
 * meaning of token ids: bump FMQ_TOK_VERSION with it. */
#include "fedmq/tokenize.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const protos[] = {"tcp", "udp", "icmp", "other"};
static const char *const services[] = {"none", "dns", "http", "ssl",  "dhcp",
                                       "ssh",  "irc", "ftp",  "other"};
static const char *const states[] = {"S0",   "S1",     "SF",    "REJ", "S2",  "S3",  "RSTO",
                                     "RSTR", "RSTOS0", "RSTRH", "SH",  "SHR", "OTH", "other"};
/* common ports of IoT traffic (DNS, web, NTP, telnet, SSH, UPnP, mDNS, DHCP, NetBIOS, IRC,
 * TR-069, and ports Mirai and its kin probe); anything else gets a class */
static const int ports[] = {53, 80, 443, 123,  23,   2323, 22,   8080,  1900, 5353,
                            67, 68, 137, 6667, 8443, 7547, 5555, 37215, 52869};
enum { NPORTS = sizeof ports / sizeof ports[0] };
static const char *const port_classes[] = {"other <1024", "other 1024-49151", "other >=49152",
                                           "none"};
static const char *const localities[] = {"private", "multicast", "public"};
static const char *const field_names[] = {"proto",          "service",  "state", "history",
                                          "responder port", "locality", "bytes", "packets",
                                          "duration",       "gap"};

/* history flags: S, h, A|a, D|d, F|f, R|r -> 6 bits */
enum { NHIST = 64, NBYTES = 17, NPKTS = 13, NDUR = 9, NGAP = 10 };

static const int counts[FMQ_TOK_PER_FLOW] = {4, 9,      14,    NHIST, NPORTS + 4,
                                             3, NBYTES, NPKTS, NDUR,  NGAP};

int fmq_tok_field_count(int field)
{
    return field >= 0 && field < FMQ_TOK_PER_FLOW ? counts[field] : 0;
}

int fmq_tok_field_base(int field)
{
    int b = 2; /* PAD, BOS */
    for (int i = 0; i < field && i < FMQ_TOK_PER_FLOW; i++) b += counts[i];
    return b;
}

int fmq_tok_vocab_size(void)
{
    return fmq_tok_field_base(FMQ_TOK_PER_FLOW);
}

const char *fmq_tok_field_name(int field)
{
    return field >= 0 && field < FMQ_TOK_PER_FLOW ? field_names[field] : "?";
}

int fmq_tok_field_of(int token)
{
    for (int f = FMQ_TOK_PER_FLOW - 1; f >= 0; f--)
        if (token >= fmq_tok_field_base(f))
            return token < fmq_tok_field_base(f) + counts[f] ? f : -1;
    return -1;
}

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return n - 1; /* "other" */
}

/* 0 for 0, then 1 + floor(log2(v)) capped: 1 -> 1, 2-3 -> 2, 4-7 -> 3 ... */
static int log2_bucket(int64_t v, int max)
{
    int b = 0;
    if (v <= 0) return 0;
    while (v > 0 && b < max) v >>= 1, b++;
    return b;
}

/* 0 unset, then <1 ms, <10 ms, <100 ms, <1 s, <10 s, <100 s, <1000 s, >= 1000 s */
static int log10_bucket(double s, int n)
{
    double edge = 1e-3;
    if (isnan(s)) return 0;
    for (int i = 1; i < n - 1; i++, edge *= 10)
        if (s < edge) return i;
    return n - 1;
}

static int history_flags(const char *h)
{
    int f = 0;
    for (; *h; h++) switch (*h) {
        case 'S':
            f |= 1;
            break;
        case 'h':
            f |= 2;
            break;
        case 'A':
        case 'a':
            f |= 4;
            break;
        case 'D':
        case 'd':
            f |= 8;
            break;
        case 'F':
        case 'f':
            f |= 16;
            break;
        case 'R':
        case 'r':
            f |= 32;
            break;
        }
    return f;
}

static int locality(const char *a)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, a, b) == 1) {
        if ((b[0] >= 224 && b[0] <= 239) || (b[0] == 255 && b[1] == 255)) return 1;
        if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
            b[0] == 127 || (b[0] == 169 && b[1] == 254))
            return 0;
        return 2;
    }
    if (inet_pton(AF_INET6, a, b) == 1) {
        if (b[0] == 0xff) return 1;
        if ((b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || (b[0] & 0xfe) == 0xfc) return 0;
        return 2;
    }
    return 2;
}

void fmq_tok_flow(const struct fmq_flow *f, double prev_ts, uint16_t out[FMQ_TOK_PER_FLOW])
{
    int v[FMQ_TOK_PER_FLOW], rp = NPORTS + 3;
    int64_t bytes =
        (f->orig_bytes > 0 ? f->orig_bytes : 0) + (f->resp_bytes > 0 ? f->resp_bytes : 0);
    int64_t pkts = (f->orig_pkts > 0 ? f->orig_pkts : 0) + (f->resp_pkts > 0 ? f->resp_pkts : 0);

    v[FMQ_TF_PROTO] = index_of(protos, 4, f->proto);
    v[FMQ_TF_SERVICE] = f->service[0] ? index_of(services, 9, f->service) : 0;
    if (f->service[0] && v[FMQ_TF_SERVICE] == 8) /* "dns,http": the first known name */
        for (int i = 1; i < 8; i++)
            if (strstr(f->service, services[i])) {
                v[FMQ_TF_SERVICE] = i;
                break;
            }
    v[FMQ_TF_STATE] = index_of(states, 14, f->conn_state);
    v[FMQ_TF_HISTORY] = history_flags(f->history);
    if (f->resp_p >= 0) {
        rp = f->resp_p < 1024 ? NPORTS : f->resp_p < 49152 ? NPORTS + 1 : NPORTS + 2;
        for (int i = 0; i < NPORTS; i++)
            if (f->resp_p == ports[i]) rp = i;
    }
    v[FMQ_TF_RPORT] = rp;
    v[FMQ_TF_LOCALITY] = locality(f->resp_h);
    v[FMQ_TF_BYTES] =
        f->orig_bytes < 0 && f->resp_bytes < 0 ? NBYTES - 1 : log2_bucket(bytes, NBYTES - 2);
    v[FMQ_TF_PKTS] =
        f->orig_pkts < 0 && f->resp_pkts < 0 ? NPKTS - 1 : log2_bucket(pkts, NPKTS - 2);
    v[FMQ_TF_DURATION] = log10_bucket(f->duration, NDUR);
    v[FMQ_TF_GAP] =
        isnan(prev_ts) ? 0 : log10_bucket(f->ts - prev_ts > 0 ? f->ts - prev_ts : 0, NGAP);
    for (int i = 0; i < FMQ_TOK_PER_FLOW; i++) out[i] = (uint16_t)(fmq_tok_field_base(i) + v[i]);
}

static void span(char *buf, size_t cap, int bucket, int unset_bucket, const char *unit)
{
    if (bucket == unset_bucket)
        snprintf(buf, cap, "unset");
    else if (bucket == 0)
        snprintf(buf, cap, "0 %s", unit);
    else
        snprintf(buf, cap, "%lld-%lld %s", 1LL << (bucket - 1), (1LL << bucket) - 1, unit);
}

int fmq_tok_describe(int token, char *buf, size_t cap)
{
    static const char *const dur[] = {"unset", "<1ms",    "1-10ms",    "10-100ms", "0.1-1s",
                                      "1-10s", "10-100s", "100-1000s", ">=1000s"};
    static const char *const gap[] = {"first flow",  "<1ms",    "1-10ms",  "10-100ms",
                                      "0.1-1s",      "1-10s",   "10-100s", "100-1000s",
                                      "1000-10000s", ">=10000s"};
    char val[48];
    int field = fmq_tok_field_of(token), v;
    if (token == FMQ_TOK_PAD) return snprintf(buf, cap, "<pad>");
    if (token == FMQ_TOK_BOS) return snprintf(buf, cap, "<device start>");
    if (field < 0) return snprintf(buf, cap, "<invalid %d>", token);
    v = token - fmq_tok_field_base(field);
    switch (field) {
    case FMQ_TF_PROTO:
        snprintf(val, sizeof val, "%s", protos[v]);
        break;
    case FMQ_TF_SERVICE:
        snprintf(val, sizeof val, "%s", services[v]);
        break;
    case FMQ_TF_STATE:
        snprintf(val, sizeof val, "%s", states[v]);
        break;
    case FMQ_TF_HISTORY:
        snprintf(val, sizeof val, "%s%s%s%s%s%s%s", v ? "" : "none", v & 1 ? "S" : "",
                 v & 2 ? "h" : "", v & 4 ? "A" : "", v & 8 ? "D" : "", v & 16 ? "F" : "",
                 v & 32 ? "R" : "");
        break;
    case FMQ_TF_RPORT:
        if (v < NPORTS)
            snprintf(val, sizeof val, "%d", ports[v]);
        else
            snprintf(val, sizeof val, "%s", port_classes[v - NPORTS]);
        break;
    case FMQ_TF_LOCALITY:
        snprintf(val, sizeof val, "%s", localities[v]);
        break;
    case FMQ_TF_BYTES:
        span(val, sizeof val, v, NBYTES - 1, "B");
        break;
    case FMQ_TF_PKTS:
        span(val, sizeof val, v, NPKTS - 1, "pkts");
        break;
    case FMQ_TF_DURATION:
        snprintf(val, sizeof val, "%s", dur[v]);
        break;
    default:
        snprintf(val, sizeof val, "%s", gap[v]);
        break;
    }
    return snprintf(buf, cap, "%s %s", field_names[field], val);
}
