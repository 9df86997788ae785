/* Zeek text forms of a flow record: field setters shared by the TSV, CSV and JSON readers,
 * a hostile-input JSON object parser for sensor messages, and the JSON writer fedmq-replay uses.
 * JSON grammar per RFC 8259; nested values are skipped to a bounded depth. */
#include "fedmq/flow.h"
#include "fedmq/common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void fmq_flow_clear(struct fmq_flow *f)
{
    memset(f, 0, sizeof *f);
    f->ts = NAN;
    f->orig_p = f->resp_p = -1;
    f->duration = NAN;
    f->orig_bytes = f->resp_bytes = f->missed_bytes = -1;
    f->orig_pkts = f->orig_ip_bytes = f->resp_pkts = f->resp_ip_bytes = -1;
    f->local_orig = f->local_resp = -1;
    f->label = FMQ_LABEL_UNKNOWN;
}

static int is_unset(const char *v, size_t n)
{
    return n == 0 || (n == 1 && v[0] == '-');
}

static int set_str(char *dst, size_t cap, const char *v, size_t n, const char *key, char *err,
                   size_t errlen)
{
    if (is_unset(v, n) || (n == 7 && memcmp(v, "(empty)", 7) == 0)) {
        dst[0] = 0;
        return 0;
    }
    if (n >= cap) {
        snprintf(err, errlen, "%s is %zu bytes, longer than %zu", key, n, cap - 1);
        return FMQ_EFORMAT;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20) {
            snprintf(err, errlen, "%s holds a control character", key);
            return FMQ_EFORMAT;
        }
    memcpy(dst, v, n);
    dst[n] = 0;
    return 0;
}

/* Copies a token into a NUL-terminated scratch buffer for strtod/strtoll. */
static int token(char *tmp, size_t cap, const char *v, size_t n)
{
    if (n == 0 || n >= cap) return -1;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    return 0;
}

static int set_i64(int64_t *dst, const char *v, size_t n, int64_t max, const char *key, char *err,
                   size_t errlen)
{
    char tmp[32], *end;
    long long x;

    if (is_unset(v, n)) {
        *dst = -1;
        return 0;
    }
    if (token(tmp, sizeof tmp, v, n) < 0) goto bad;
    errno = 0;
    x = strtoll(tmp, &end, 10);
    if (errno || *end || x < 0 || x > max) goto bad;
    *dst = x;
    return 0;
bad:
    snprintf(err, errlen, "%s is not a count in [0, %lld]: '%.*s'", key, (long long)max,
             (int)(n > 24 ? 24 : n), v);
    return FMQ_EFORMAT;
}

static int set_f64(double *dst, const char *v, size_t n, const char *key, char *err, size_t errlen)
{
    char tmp[48], *end;
    double x;

    if (is_unset(v, n)) {
        *dst = NAN;
        return 0;
    }
    if (token(tmp, sizeof tmp, v, n) < 0) goto bad;
    errno = 0;
    x = strtod(tmp, &end);
    if (errno || *end || !isfinite(x) || x < 0) goto bad;
    *dst = x;
    return 0;
bad:
    snprintf(err, errlen, "%s is not a non-negative number: '%.*s'", key, (int)(n > 24 ? 24 : n),
             v);
    return FMQ_EFORMAT;
}

/* ts in ISO 8601 (Zeek's JSON::TS_ISO8601): 2018-10-25T12:06:42.538640Z */
static int parse_iso8601(const char *v, size_t n, double *out)
{
    char tmp[40];
    struct tm tm;
    double frac = 0;
    const char *p;
    char *end;

    if (token(tmp, sizeof tmp, v, n) < 0) return -1;
    memset(&tm, 0, sizeof tm);
    if (sscanf(tmp, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    p = tmp + 19;
    if (*p == '.') {
        frac = strtod(p, &end);
        p = end;
    }
    if (strcmp(p, "Z") != 0 && *p) return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31) return -1;
    *out = (double)timegm(&tm) + frac;
    return 0;
}

int fmq_flow_parse_label(const char *s, size_t n, int *label, size_t *detail)
{
    size_t w = 0;
    while (w < n && s[w] != ' ' && s[w] != '\t') w++; /* the label's first word */
    *detail = w;
    while (*detail < n && (s[*detail] == ' ' || s[*detail] == '\t')) (*detail)++;
    if (w == 6 && strncasecmp(s, "benign", 6) == 0)
        *label = FMQ_LABEL_BENIGN;
    else if (w == 9 && strncasecmp(s, "malicious", 9) == 0)
        *label = FMQ_LABEL_MALICIOUS;
    else { /* '-', Background, Unknown, ...: scored, never trained on, left out of rates */
        *label = FMQ_LABEL_UNKNOWN;
        *detail = n;
    }
    return *label;
}

int fmq_flow_is_detail_key(const char *key, size_t n)
{
    static const char *const names[] = {"detailed-label", "detailed_label", "detailedlabel",
                                        "det_label"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && memcmp(key, names[i], n) == 0) return 1;
    return 0;
}

static int set_port(int32_t *dst, const char *v, size_t n, const char *key, char *err,
                    size_t errlen)
{
    int64_t x;
    int rc = set_i64(&x, v, n, 65535, key, err, errlen);
    if (rc == 0) *dst = (int32_t)x;
    return rc;
}

static int set_bool(int8_t *dst, const char *v, size_t n, const char *key, char *err, size_t errlen)
{
    if (is_unset(v, n))
        *dst = -1;
    else if ((n == 1 && v[0] == 'T') || (n == 4 && memcmp(v, "true", 4) == 0))
        *dst = 1;
    else if ((n == 1 && v[0] == 'F') || (n == 5 && memcmp(v, "false", 5) == 0))
        *dst = 0;
    else {
        snprintf(err, errlen, "%s is not a boolean", key);
        return FMQ_EFORMAT;
    }
    return 0;
}

/* A detailed label is a description, not a measurement: one longer than the field is cut to
 * it (at a UTF-8 character boundary) rather than costing the record. */
static int set_detail(struct fmq_flow *f, const char *v, size_t n, char *err, size_t errlen)
{
    size_t cap = sizeof f->detailed_label - 1;
    if (n > cap) {
        n = cap;
        while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80) n--;
    }
    return set_str(f->detailed_label, sizeof f->detailed_label, v, n, "detailed-label", err,
                   errlen);
}

#define KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, sizeof(s) - 1) == 0)

int fmq_flow_set(struct fmq_flow *f, const char *key, const char *v, size_t n, char *err,
                 size_t errlen)
{
    size_t klen = strlen(key);
    const int64_t CMAX = (int64_t)1 << 52; /* counts above 2^52 are not real traffic */

    if (KEY("ts")) {
        double t;
        if (set_f64(&t, v, n, key, err, errlen) == 0 && !isnan(t)) {
            f->ts = t;
            return 0;
        }
        if (parse_iso8601(v, n, &t) == 0) {
            f->ts = t;
            return 0;
        }
        if (n >= 10 && strspn(v, "X.") >= n) /* btest-canonified: the time was removed */
            snprintf(err, errlen,
                     "ts is canonified ('%.*s', a Zeek test baseline): the record "
                     "has no time to order it by",
                     (int)(n > 32 ? 32 : n), v);
        else
            snprintf(err, errlen, "ts is not a timestamp: '%.*s'", (int)(n > 32 ? 32 : n), v);
        return FMQ_EFORMAT;
    }
    if (KEY("uid")) return set_str(f->uid, sizeof f->uid, v, n, key, err, errlen);
    if (KEY("id.orig_h")) return set_str(f->orig_h, sizeof f->orig_h, v, n, key, err, errlen);
    if (KEY("id.orig_p")) return set_port(&f->orig_p, v, n, key, err, errlen);
    if (KEY("id.resp_h")) return set_str(f->resp_h, sizeof f->resp_h, v, n, key, err, errlen);
    if (KEY("id.resp_p")) return set_port(&f->resp_p, v, n, key, err, errlen);
    if (KEY("proto")) return set_str(f->proto, sizeof f->proto, v, n, key, err, errlen);
    if (KEY("service")) return set_str(f->service, sizeof f->service, v, n, key, err, errlen);
    if (KEY("duration")) return set_f64(&f->duration, v, n, key, err, errlen);
    if (KEY("orig_bytes")) return set_i64(&f->orig_bytes, v, n, CMAX, key, err, errlen);
    if (KEY("resp_bytes")) return set_i64(&f->resp_bytes, v, n, CMAX, key, err, errlen);
    if (KEY("conn_state"))
        return set_str(f->conn_state, sizeof f->conn_state, v, n, key, err, errlen);
    if (KEY("local_orig")) return set_bool(&f->local_orig, v, n, key, err, errlen);
    if (KEY("local_resp")) return set_bool(&f->local_resp, v, n, key, err, errlen);
    if (KEY("missed_bytes")) return set_i64(&f->missed_bytes, v, n, CMAX, key, err, errlen);
    if (KEY("history")) return set_str(f->history, sizeof f->history, v, n, key, err, errlen);
    if (KEY("orig_pkts")) return set_i64(&f->orig_pkts, v, n, CMAX, key, err, errlen);
    if (KEY("orig_ip_bytes")) return set_i64(&f->orig_ip_bytes, v, n, CMAX, key, err, errlen);
    if (KEY("resp_pkts")) return set_i64(&f->resp_pkts, v, n, CMAX, key, err, errlen);
    if (KEY("resp_ip_bytes")) return set_i64(&f->resp_ip_bytes, v, n, CMAX, key, err, errlen);
    if (KEY("label")) { /* never refused: an unknown label means "unlabelled" */
        size_t d;
        fmq_flow_parse_label(v, n, &f->label, &d);
        if (d < n && !f->detailed_label[0]) /* raw IoT-23 "Malicious   PartOfA...PortScan" */
            return set_detail(f, v + d, n - d, err, errlen);
        return 0;
    }
    if (fmq_flow_is_detail_key(key, klen)) {
        if (is_unset(v, n) || (n == 7 && memcmp(v, "(empty)", 7) == 0))
            return 0; /* keeps a detail the label field carried */
        return set_detail(f, v, n, err, errlen);
    }
    return 0; /* tunnel_parents and fields of newer Zeek versions */
}

/* ---- JSON object parser (flat Zeek records) ---- */

struct jp {
    const char *s, *end, *start;
    char *err;
    size_t errlen;
};

static int jfail(struct jp *p, const char *what)
{
    snprintf(p->err, p->errlen, "JSON: %s at byte %td", what, p->s - p->start);
    return FMQ_EFORMAT;
}

static void jws(struct jp *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes a JSON string into out (UTF-8), cap bytes including NUL; out NULL only checks it
 * (any length). */
static int jstring(struct jp *p, char *out, size_t cap, size_t *outlen)
{
    size_t n = 0;

    if (p->s >= p->end || *p->s != '"') return jfail(p, "expected string");
    p->s++;
    while (p->s < p->end && *p->s != '"') {
        unsigned c = (unsigned char)*p->s++;
        if (c < 0x20) return jfail(p, "control character in string");
        if (c == '\\') {
            if (p->s >= p->end) break;
            c = (unsigned char)*p->s++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                unsigned cp = 0;
                if (p->end - p->s < 4) return jfail(p, "short \\u escape");
                for (int i = 0; i < 4; i++) {
                    int h = hexval(p->s[i]);
                    if (h < 0) return jfail(p, "bad \\u escape");
                    cp = cp * 16 + (unsigned)h;
                }
                p->s += 4;
                if (cp >= 0x80 || cp < 0x20) return jfail(p, "unsupported \\u escape");
                c = cp;
                break;
            }
            default:
                return jfail(p, "bad escape");
            }
        }
        if (!out) {
            n++;
            continue;
        }
        if (n + 1 >= cap) return jfail(p, "string too long");
        out[n++] = (char)c;
    }
    if (p->s >= p->end) return jfail(p, "unterminated string");
    p->s++;
    if (out) out[n] = 0;
    *outlen = n;
    return 0;
}

static int digits(struct jp *p)
{
    const char *st = p->s;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') p->s++;
    return p->s > st;
}

/* A bare JSON value at p->s: exactly true, false, null, or a number in JSON's grammar
 * (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), so that "truefalse", "1.2.3" or a NUL byte
 * is refused, not read as a value. Its text (NUL-terminated) goes to val when val is given. */
static int jbare(struct jp *p, char *val, size_t cap, size_t *vlen)
{
    static const char *const lit[] = {"true", "false", "null"};
    const char *st = p->s;
    size_t n;
    int ok = 0;
    for (int i = 0; i < 3 && !ok; i++) {
        size_t l = strlen(lit[i]);
        if ((size_t)(p->end - p->s) >= l && memcmp(p->s, lit[i], l) == 0) p->s += l, ok = 1;
    }
    if (!ok) {
        if (p->s < p->end && *p->s == '-') p->s++;
        if (p->s < p->end && *p->s == '0')
            p->s++;
        else if (!digits(p))
            return jfail(p, "bad value");
        if (p->s < p->end && *p->s == '.') {
            p->s++;
            if (!digits(p)) return jfail(p, "bad number");
        }
        if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
            p->s++;
            if (p->s < p->end && (*p->s == '+' || *p->s == '-')) p->s++;
            if (!digits(p)) return jfail(p, "bad number");
        }
    }
    /* a value ends at whitespace, ',', '}' or ']', or the end */
    if (p->s < p->end && !strchr(" \t\r\n,}]", *p->s ? *p->s : 'x')) return jfail(p, "bad value");
    n = (size_t)(p->s - st);
    if (val) {
        if (n >= cap) return jfail(p, "bad value");
        memcpy(val, st, n);
        val[n] = 0;
    }
    if (vlen) *vlen = n;
    return 0;
}

static int jskip(struct jp *p, int depth)
{
    char tmp[256];
    size_t n;

    if (depth > 8) return jfail(p, "nesting deeper than 8");
    jws(p);
    if (p->s >= p->end) return jfail(p, "unexpected end");
    if (*p->s == '"') return jstring(p, NULL, 0, &n);
    if (*p->s == '[' || *p->s == '{') {
        char close = *p->s == '[' ? ']' : '}';
        int obj = *p->s == '{';
        p->s++;
        jws(p);
        if (p->s < p->end && *p->s == close) {
            p->s++;
            return 0;
        }
        for (;;) {
            if (obj) {
                if (jstring(p, tmp, sizeof tmp, &n)) return FMQ_EFORMAT;
                jws(p);
                if (p->s >= p->end || *p->s != ':') return jfail(p, "expected ':'");
                p->s++;
            }
            if (jskip(p, depth + 1)) return FMQ_EFORMAT;
            jws(p);
            if (p->s < p->end && *p->s == ',') {
                p->s++;
                jws(p);
                continue;
            }
            if (p->s < p->end && *p->s == close) {
                p->s++;
                return 0;
            }
            return jfail(p, "expected ',' or closing bracket");
        }
    }
    return jbare(p, NULL, 0, NULL);
}

/* One JSON object and nothing after it: `member` reads the value of each member at p->s. */
static int jobject(struct jp *p, int (*member)(struct jp *, const char *, void *), void *ud)
{
    char key[64];
    size_t klen;
    int rc;

    jws(p);
    if (p->s >= p->end || *p->s != '{') return jfail(p, "expected '{'");
    p->s++;
    jws(p);
    if (p->s < p->end && *p->s == '}')
        p->s++;
    else
        for (;;) {
            jws(p);
            if (jstring(p, key, sizeof key, &klen)) return FMQ_EFORMAT;
            jws(p);
            if (p->s >= p->end || *p->s != ':') return jfail(p, "expected ':'");
            p->s++;
            jws(p);
            if (p->s >= p->end) return jfail(p, "unexpected end");
            if ((rc = member(p, key, ud)) != 0) return rc;
            jws(p);
            if (p->s < p->end && *p->s == ',') {
                p->s++;
                continue;
            }
            if (p->s < p->end && *p->s == '}') {
                p->s++;
                break;
            }
            return jfail(p, "expected ',' or '}'");
        }
    jws(p);
    if (p->s != p->end) return jfail(p, "trailing bytes after object");
    return 0;
}

/* A member of a flat Zeek record: strings and bare values set the field, sets are skipped. */
static int flow_member(struct jp *p, const char *key, void *ud)
{
    char val[256], ferr[160];
    size_t vlen;
    int rc;

    if (*p->s == '"') {
        if (jstring(p, val, sizeof val, &vlen)) return FMQ_EFORMAT;
    } else if (*p->s == '[' || *p->s == '{') {
        return jskip(p, 1); /* tunnel_parents and other sets */
    } else {
        if (jbare(p, val, sizeof val, &vlen)) return FMQ_EFORMAT;
        if (strcmp(val, "null") == 0) vlen = 0;
    }
    if ((rc = fmq_flow_set(ud, key, val, vlen, ferr, sizeof ferr)) != 0)
        snprintf(p->err, p->errlen, "JSON field %s", ferr);
    return rc;
}

int fmq_flow_json_batch(const char *buf, size_t len)
{
    struct jp p = {buf, buf + len, buf, NULL, 0}; /* no message: only the shape is asked */
    jws(&p);
    if (p.s < p.end && *p.s == '[') return 1;
    if (p.s >= p.end || *p.s != '{' || jskip(&p, 1)) return 0;
    jws(&p);
    return p.s < p.end;
}

int fmq_flow_json_each(const char *buf, size_t len,
                       void (*each)(void *ud, const char *rec, size_t n, size_t k), void *ud,
                       char *err, size_t errlen)
{
    struct jp p = {buf, buf + len, buf, err, errlen};
    size_t k = 0;
    int array;

    jws(&p);
    array = p.s < p.end && *p.s == '[';
    if (array) {
        p.s++;
        jws(&p);
        if (p.s < p.end && *p.s == ']') { /* [] : an empty batch */
            p.s++;
            array = 0;
            jws(&p);
        }
    }
    while (p.s < p.end) {
        const char *st = p.s;
        if (*p.s != '{')
            return jfail(&p, array ? "expected an object in the array" : "expected '{'");
        if (jskip(&p, 1)) return FMQ_EFORMAT;
        each(ud, st, (size_t)(p.s - st), k++);
        jws(&p);
        if (!array) continue;
        if (p.s < p.end && *p.s == ',') {
            p.s++;
            jws(&p);
            continue;
        }
        if (p.s < p.end && *p.s == ']') {
            p.s++;
            jws(&p);
            if (p.s != p.end) return jfail(&p, "trailing bytes after the array");
            return (int)k;
        }
        return jfail(&p, "expected ',' or ']'");
    }
    if (array) return jfail(&p, "unterminated array");
    return (int)k;
}

int fmq_flow_from_json(const char *buf, size_t len, struct fmq_flow *f, char *err, size_t errlen)
{
    struct jp p = {buf, buf + len, buf, err, errlen};
    int rc;

    fmq_flow_clear(f);
    if ((rc = jobject(&p, flow_member, f)) != 0) {
        struct jp q = {buf, buf + len, buf, NULL, 0};
        jws(&q); /* failed at the first byte that is not whitespace: a digit and tabs are TSV */
        if (q.s == p.s && q.s < q.end && *q.s >= '0' && *q.s <= '9' &&
            memchr(q.s, '\t', (size_t)(q.end - q.s)))
            snprintf(err, errlen,
                     "JSON: expected '{' at byte %td: this looks like a Zeek TSV "
                     "line; agents read Zeek's JSON (LogAscii::use_json = T), and "
                     "fedmq-replay turns TSV logs into it",
                     q.s - buf);
        return rc;
    }
    if (isnan(f->ts) || !f->orig_h[0] || !f->resp_h[0]) {
        snprintf(err, errlen, "JSON record lacks%s%s%s (Zeek's conn.log fields)",
                 isnan(f->ts) ? " ts" : "", !f->orig_h[0] ? " id.orig_h" : "",
                 !f->resp_h[0] ? " id.resp_h" : "");
        return FMQ_EFORMAT;
    }
    return 0;
}

struct want_str {
    const char *key;
    char *out;
    size_t cap;
};

static int str_member(struct jp *p, const char *key, void *ud)
{
    struct want_str *w = ud;
    size_t n;
    if (!strcmp(key, w->key) && *p->s == '"') return jstring(p, w->out, w->cap, &n);
    return jskip(p, 1);
}

int fmq_json_object_check(const char *buf, size_t len, const char *key, char *out, size_t cap,
                          char *err, size_t errlen)
{
    struct jp p = {buf, buf + len, buf, err, errlen};
    struct want_str w = {key, out, cap};
    out[0] = 0;
    return jobject(&p, str_member, &w);
}

/* ---- JSON writer ---- */

struct jw {
    char *buf;
    size_t cap, n;
    int ovf;
    int first;
};

static void jw_raw(struct jw *w, const char *s, size_t n)
{
    if (w->n + n >= w->cap) {
        w->ovf = 1;
        return;
    }
    memcpy(w->buf + w->n, s, n);
    w->n += n;
}

static void jw_key(struct jw *w, const char *k)
{
    char tmp[80];
    int n = snprintf(tmp, sizeof tmp, "%s\"%s\":", w->first ? "" : ",", k);
    w->first = 0;
    jw_raw(w, tmp, (size_t)n);
}

static void jw_str(struct jw *w, const char *k, const char *v)
{
    jw_key(w, k);
    jw_raw(w, "\"", 1);
    for (; *v; v++) {
        char esc[8];
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jw_raw(w, esc, 2);
        } else if (c < 0x20) {
            int n = snprintf(esc, sizeof esc, "\\u%04x", c);
            jw_raw(w, esc, (size_t)n);
        } else
            jw_raw(w, (const char *)&c, 1);
    }
    jw_raw(w, "\"", 1);
}

static void jw_num(struct jw *w, const char *k, const char *fmt, double v)
{
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    jw_key(w, k);
    jw_raw(w, tmp, (size_t)n);
}

static void jw_cnt(struct jw *w, const char *k, int64_t v)
{
    char tmp[32];
    int n;
    if (v < 0) return;
    n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    jw_key(w, k);
    jw_raw(w, tmp, (size_t)n);
}

int fmq_flow_to_json(const struct fmq_flow *f, int with_labels, char *buf, size_t cap)
{
    struct jw w = {buf, cap, 0, 0, 1};

    jw_raw(&w, "{", 1);
    jw_num(&w, "ts", "%.6f", f->ts);
    if (f->uid[0]) jw_str(&w, "uid", f->uid);
    jw_str(&w, "id.orig_h", f->orig_h);
    jw_cnt(&w, "id.orig_p", f->orig_p);
    jw_str(&w, "id.resp_h", f->resp_h);
    jw_cnt(&w, "id.resp_p", f->resp_p);
    if (f->proto[0]) jw_str(&w, "proto", f->proto);
    if (f->service[0]) jw_str(&w, "service", f->service);
    if (!isnan(f->duration)) jw_num(&w, "duration", "%.6f", f->duration);
    jw_cnt(&w, "orig_bytes", f->orig_bytes);
    jw_cnt(&w, "resp_bytes", f->resp_bytes);
    if (f->conn_state[0]) jw_str(&w, "conn_state", f->conn_state);
    if (f->local_orig >= 0) {
        jw_key(&w, "local_orig");
        jw_raw(&w, f->local_orig ? "true" : "false", f->local_orig ? 4 : 5);
    }
    if (f->local_resp >= 0) {
        jw_key(&w, "local_resp");
        jw_raw(&w, f->local_resp ? "true" : "false", f->local_resp ? 4 : 5);
    }
    jw_cnt(&w, "missed_bytes", f->missed_bytes);
    if (f->history[0]) jw_str(&w, "history", f->history);
    jw_cnt(&w, "orig_pkts", f->orig_pkts);
    jw_cnt(&w, "orig_ip_bytes", f->orig_ip_bytes);
    jw_cnt(&w, "resp_pkts", f->resp_pkts);
    jw_cnt(&w, "resp_ip_bytes", f->resp_ip_bytes);
    if (with_labels && f->label != FMQ_LABEL_UNKNOWN) {
        jw_str(&w, "label", f->label == FMQ_LABEL_MALICIOUS ? "Malicious" : "Benign");
        jw_str(&w, "detailed-label", f->detailed_label[0] ? f->detailed_label : "-");
    }
    jw_raw(&w, "}", 1);
    if (w.ovf) return FMQ_ETOOBIG;
    buf[w.n] = 0;
    return (int)w.n;
}

/* Site name from a file name: CTU-IoT-Malware-Capture-34-1.conn.log.labeled -> CTU-IoT-...-34-1 */
void fmq_sensor_topic(const char *tpl, const char *site, const char *dev, char *out, size_t cap)
{
    size_t n = 0;
    while (*tpl && n + 1 < cap) {
        const char *val = NULL;
        if (!strncmp(tpl, "{site}", 6))
            val = site, tpl += 6;
        else if (!strncmp(tpl, "{device}", 8))
            val = dev, tpl += 8;
        if (val) {
            for (; *val && n + 1 < cap; val++)
                out[n++] = (*val == '+' || *val == '#' || *val == '/') ? '_' : *val;
        } else
            out[n++] = *tpl++;
    }
    out[n] = 0;
}

void fmq_site_of(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    size_t n = 0;
    b = b ? b + 1 : path;
    for (; *b && n + 1 < cap; b++) {
        if (*b == '.' || !strncmp(b, "conn", 4)) break;
        out[n++] = (*b == '+' || *b == '#' || *b == '/' || *b == ' ') ? '_' : *b;
    }
    while (n > 1 && (out[n - 1] == '-' || out[n - 1] == '_')) n--;
    out[n] = 0;
}
