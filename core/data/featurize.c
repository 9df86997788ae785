/* Flow featurizer (see featurize.h and schemas/features.md). Per-device context lives in a
 * bounded chained hash table keyed by the originator address; the ring of recent flows per
 * device holds only what the context features need (time, responder hash, port, answered). */
#include "fedmq/featurize.h"
#include "fedmq/common.h"

#include <arpa/inet.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ring_ent {
    double ts;
    uint32_t resp_hash;
    int32_t resp_p;
    uint8_t unanswered;
};

struct fmq_feat_dev {
    char key[48]; /* originator address */
    int32_t next; /* hash chain, -1 ends */
    uint32_t hash;
    uint64_t last_seq; /* for LRU eviction */
    double last_ts;
    int count, head; /* ring fill and next write slot */
    struct ring_ent ring[FMQ_FEAT_MAXWIN];
};

static const char *const feat_names[FMQ_FEAT_DIM] = {
    "log_duration",
    "duration_unset",
    "log_orig_bytes",
    "log_resp_bytes",
    "log_orig_pkts",
    "log_resp_pkts",
    "log_orig_ip_bytes",
    "log_resp_ip_bytes",
    "log_missed_bytes",
    "bytes_balance",
    "proto_tcp",
    "proto_udp",
    "proto_icmp",
    "proto_other",
    "svc_none",
    "svc_dns",
    "svc_http",
    "svc_ssl",
    "svc_dhcp",
    "svc_ssh",
    "svc_irc",
    "svc_ftp",
    "svc_other",
    "state_S0",
    "state_S1",
    "state_SF",
    "state_REJ",
    "state_S2",
    "state_S3",
    "state_RSTO",
    "state_RSTR",
    "state_RSTOS0",
    "state_RSTRH",
    "state_SH",
    "state_SHR",
    "state_OTH",
    "state_other",
    "hist_S",
    "hist_h",
    "hist_A",
    "hist_D",
    "hist_a",
    "hist_d",
    "hist_F",
    "hist_f",
    "hist_R",
    "hist_r",
    "hist_T",
    "hist_t",
    "hist_C",
    "hist_c",
    "hist_caret",
    "hist_other",
    "log_history_len",
    "rport_dns",
    "rport_http",
    "rport_https",
    "rport_ntp",
    "rport_telnet",
    "rport_ssh",
    "rport_wellknown",
    "rport_registered",
    "rport_dynamic",
    "rport_none",
    "oport_wellknown",
    "oport_registered",
    "oport_dynamic",
    "resp_private",
    "resp_multicast",
    "orig_private",
    "ctx_first_seen",
    "ctx_log_gap",
    "ctx_log_count",
    "ctx_distinct_hosts",
    "ctx_distinct_ports",
    "ctx_same_host",
    "ctx_same_port",
    "ctx_same_host_port",
    "ctx_unanswered",
    "ctx_log_rate",
};

enum {
    F_PROTO = 10,
    F_SVC = 14,
    F_STATE = 23,
    F_HIST = 37,
    F_RPORT = 54,
    F_OPORT = 64,
    F_LOCAL = 67,
    F_CTX = 70
};

static const char *const services[] = {"dns", "http", "ssl", "dhcp", "ssh", "irc", "ftp"};
static const char *const states[] = {"S0",   "S1",     "SF",    "REJ", "S2",  "S3", "RSTO",
                                     "RSTR", "RSTOS0", "RSTRH", "SH",  "SHR", "OTH"};
static const char hist_chars[] = "ShADadFfRrTtCc^";

const char *fmq_feat_name(int i)
{
    return i >= 0 && i < FMQ_FEAT_DIM ? feat_names[i] : "?";
}

int fmq_feat_is_binary(int i)
{
    return i == 1 || (i >= F_PROTO && i < F_HIST + 16) || (i >= F_RPORT && i <= F_CTX);
}

void fmq_feat_range(int i, double *lo, double *hi)
{
    const double lg_count = log1p(4503599627370496.0), /* 2^52, the parser's count limit */
        lg_secs = log1p(DBL_MAX), lg_win = log1p((double)FMQ_FEAT_MAXWIN);
    *lo = 0;
    *hi = 1;                      /* flags and shares */
    if (i == 0 || i == F_CTX + 1) /* log_duration, ctx_log_gap: any non-negative seconds */
        *hi = lg_secs;
    else if ((i >= 2 && i <= 8) || i == F_HIST + 16) /* log-scaled counts, history length */
        *hi = lg_count;
    else if (i == 9) /* bytes_balance: a difference of two log counts */
        *lo = -lg_count, *hi = lg_count;
    else if (i == F_CTX + 2 || i == F_CTX + 9) /* flows in the window, flows per second */
        *hi = lg_win;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int fmq_feat_init(struct fmq_featurizer *fz, size_t max_devices, int window)
{
    memset(fz, 0, sizeof *fz);
    if (max_devices == 0 || max_devices > (1u << 24) || window < 1 || window > FMQ_FEAT_MAXWIN)
        return FMQ_EINVAL;
    fz->max_devices = max_devices;
    fz->window = window;
    fz->nbuckets = 16;
    while (fz->nbuckets < 2 * max_devices) fz->nbuckets <<= 1;
    fz->devs = calloc(max_devices, sizeof *fz->devs);
    fz->buckets = malloc(fz->nbuckets * sizeof *fz->buckets);
    if (!fz->devs || !fz->buckets) {
        fmq_feat_free(fz);
        return FMQ_ENOMEM;
    }
    fmq_feat_reset(fz);
    return 0;
}

void fmq_feat_free(struct fmq_featurizer *fz)
{
    free(fz->devs);
    free(fz->buckets);
    fz->devs = NULL;
    fz->buckets = NULL;
}

void fmq_feat_reset(struct fmq_featurizer *fz)
{
    for (size_t i = 0; i < fz->nbuckets; i++) fz->buckets[i] = -1;
    fz->n = 0;
    fz->seq = 0;
}

static void unlink_dev(struct fmq_featurizer *fz, int32_t idx)
{
    struct fmq_feat_dev *d = &fz->devs[idx];
    int32_t *p = &fz->buckets[d->hash & (fz->nbuckets - 1)];
    while (*p != idx) p = &fz->devs[*p].next;
    *p = d->next;
}

/* Finds or creates the context of a device; evicts the least recently seen when full. */
static struct fmq_feat_dev *lookup(struct fmq_featurizer *fz, const char *key, int *created)
{
    uint32_t h = fnv1a(key);
    int32_t *head = &fz->buckets[h & (fz->nbuckets - 1)];
    int32_t idx;
    struct fmq_feat_dev *d;

    for (idx = *head; idx >= 0; idx = fz->devs[idx].next)
        if (fz->devs[idx].hash == h && strcmp(fz->devs[idx].key, key) == 0) {
            *created = 0;
            return &fz->devs[idx];
        }
    if (fz->n < fz->max_devices)
        idx = (int32_t)fz->n++;
    else {
        idx = 0;
        for (size_t i = 1; i < fz->n; i++)
            if (fz->devs[i].last_seq < fz->devs[idx].last_seq) idx = (int32_t)i;
        unlink_dev(fz, idx);
        head = &fz->buckets[h & (fz->nbuckets - 1)];
    }
    d = &fz->devs[idx];
    memset(d, 0, sizeof *d);
    snprintf(d->key, sizeof d->key, "%s", key);
    d->hash = h;
    d->next = *head;
    *head = idx;
    *created = 1;
    return d;
}

static float lg(double v)
{
    return v > 0 ? (float)log1p(v) : 0.0f;
}

static int addr_class(const char *a, int *multicast)
{
    unsigned char b[16];
    *multicast = 0;
    if (inet_pton(AF_INET, a, b) == 1) {
        if (b[0] >= 224 && b[0] <= 239) *multicast = 1;
        if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) *multicast = 1;
        return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
               b[0] == 127 || (b[0] == 169 && b[1] == 254);
    }
    if (inet_pton(AF_INET6, a, b) == 1) {
        static const unsigned char lo[16] = {[15] = 1};
        if (b[0] == 0xff) *multicast = 1;
        return (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || (b[0] & 0xfe) == 0xfc ||
               memcmp(b, lo, 16) == 0;
    }
    return 0;
}

static int port_class(int32_t p)
{
    return p < 1024 ? 0 : p < 49152 ? 1 : 2;
}

static void flow_features(const struct fmq_flow *f, float *x)
{
    int unknown, mc;
    size_t hl;

    x[0] = isnan(f->duration) ? 0.0f : lg(f->duration);
    x[1] = isnan(f->duration) ? 1.0f : 0.0f;
    x[2] = lg((double)f->orig_bytes);
    x[3] = lg((double)f->resp_bytes);
    x[4] = lg((double)f->orig_pkts);
    x[5] = lg((double)f->resp_pkts);
    x[6] = lg((double)f->orig_ip_bytes);
    x[7] = lg((double)f->resp_ip_bytes);
    x[8] = lg((double)f->missed_bytes);
    x[9] = x[6] - x[7];

    if (strcmp(f->proto, "tcp") == 0)
        x[F_PROTO] = 1;
    else if (strcmp(f->proto, "udp") == 0)
        x[F_PROTO + 1] = 1;
    else if (strcmp(f->proto, "icmp") == 0)
        x[F_PROTO + 2] = 1;
    else
        x[F_PROTO + 3] = 1;

    if (!f->service[0])
        x[F_SVC] = 1;
    else {
        unknown = 1;
        for (int i = 0; i < 7; i++)
            if (strstr(f->service, services[i])) {
                x[F_SVC + 1 + i] = 1;
                unknown = 0;
            }
        if (unknown) x[F_SVC + 8] = 1;
    }

    unknown = 1;
    for (int i = 0; i < 13; i++)
        if (strcmp(f->conn_state, states[i]) == 0) {
            x[F_STATE + i] = 1;
            unknown = 0;
        }
    if (unknown) x[F_STATE + 13] = 1;

    for (const char *h = f->history; *h; h++) {
        const char *c = strchr(hist_chars, *h);
        if (c)
            x[F_HIST + (c - hist_chars)] = 1;
        else
            x[F_HIST + 15] = 1;
    }
    hl = strlen(f->history);
    x[F_HIST + 16] = lg((double)hl);

    switch (f->resp_p) {
    case 53:
        x[F_RPORT] = 1;
        break;
    case 80:
    case 8080:
    case 8000:
    case 8081:
        x[F_RPORT + 1] = 1;
        break;
    case 443:
    case 8443:
        x[F_RPORT + 2] = 1;
        break;
    case 123:
        x[F_RPORT + 3] = 1;
        break;
    case 23:
    case 2323:
        x[F_RPORT + 4] = 1;
        break;
    case 22:
        x[F_RPORT + 5] = 1;
        break;
    default:
        if (f->resp_p < 0)
            x[F_RPORT + 9] = 1;
        else
            x[F_RPORT + 6 + port_class(f->resp_p)] = 1;
    }
    if (f->orig_p >= 0) x[F_OPORT + port_class(f->orig_p)] = 1;

    x[F_LOCAL] = (float)addr_class(f->resp_h, &mc);
    x[F_LOCAL + 1] = (float)mc;
    x[F_LOCAL + 2] = (float)addr_class(f->orig_h, &mc);
}

void fmq_feat_extract(struct fmq_featurizer *fz, const struct fmq_flow *f, float *x)
{
    int created;
    struct fmq_feat_dev *d;
    float *c = x + F_CTX;
    uint32_t rh = fnv1a(f->resp_h);
    int unanswered = strcmp(f->conn_state, "S0") == 0 || f->resp_pkts == 0;

    memset(x, 0, FMQ_FEAT_DIM * sizeof *x);
    flow_features(f, x);

    d = lookup(fz, f->orig_h, &created);
    d->last_seq = ++fz->seq;
    if (created || d->count == 0)
        c[0] = 1;
    else {
        int n = d->count, dh = 0, dp = 0, sh = 0, sp = 0, shp = 0, un = 0;
        double oldest = f->ts, gap = f->ts - d->last_ts;
        for (int i = 0; i < n; i++) {
            const struct ring_ent *e = &d->ring[i];
            int seen_h = 0, seen_p = 0;
            for (int j = 0; j < i; j++) {
                seen_h |= d->ring[j].resp_hash == e->resp_hash;
                seen_p |= d->ring[j].resp_p == e->resp_p;
            }
            dh += !seen_h;
            dp += !seen_p;
            sh += e->resp_hash == rh;
            sp += e->resp_p == f->resp_p;
            shp += e->resp_hash == rh && e->resp_p == f->resp_p;
            un += e->unanswered;
            if (e->ts < oldest) oldest = e->ts;
        }
        c[1] = lg(gap > 0 ? gap : 0);
        c[2] = lg(n);
        c[3] = (float)dh / n;
        c[4] = (float)dp / n;
        c[5] = (float)sh / n;
        c[6] = (float)sp / n;
        c[7] = (float)shp / n;
        c[8] = (float)un / n;
        c[9] = lg(n / (f->ts - oldest + 1.0));
    }
    d->ring[d->head] = (struct ring_ent){f->ts, rh, f->resp_p, (uint8_t)unanswered};
    d->head = (d->head + 1) % fz->window;
    if (d->count < fz->window) d->count++;
    if (!(f->ts < d->last_ts)) d->last_ts = f->ts;
}

void fmq_moments_clear(struct fmq_moments *m)
{
    memset(m, 0, sizeof *m);
}

void fmq_moments_add(struct fmq_moments *m, const float *x)
{
    m->n += 1;
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double d = x[i] - m->mean[i];
        m->mean[i] += d / m->n;
        m->m2[i] += d * (x[i] - m->mean[i]);
    }
}

void fmq_moments_merge(struct fmq_moments *a, const struct fmq_moments *b)
{
    double n = a->n + b->n;
    if (b->n == 0) return;
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double d = b->mean[i] - a->mean[i];
        a->mean[i] += d * b->n / n;
        a->m2[i] += b->m2[i] + d * d * a->n * b->n / n;
    }
    a->n = n;
}

void fmq_moments_finish(const struct fmq_moments *m, float *mean, float *std)
{
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double var = m->n > 0 ? m->m2[i] / m->n : 0;
        float s = (float)sqrt(var > 0 ? var : 0);
        mean[i] = (float)m->mean[i];
        std[i] = s < FMQ_FEAT_STD_FLOOR ? FMQ_FEAT_STD_FLOOR : s;
    }
}

/* The span z is taken over: the feature's range, at most 64 wide, so that the log-seconds
 * features (range 709, real values below 20) keep their spread within 32-bit fixed point. */
static double unit_span(int i, double *lo)
{
    double hi, w;
    fmq_feat_range(i, lo, &hi);
    w = hi - *lo;
    return w < 64 ? w : 64;
}

static double clamp01(double v)
{
    return v > 0 ? (v < 1 ? v : 1) : 0;
}

void fmq_moments_to_unit(const struct fmq_moments *m, float *out)
{
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double lo, w = unit_span(i, &lo), mz = clamp01((m->mean[i] - lo) / w);
        double vz = m->n > 0 ? m->m2[i] / m->n / (w * w) : 0;
        out[i] = (float)mz;
        out[FMQ_FEAT_DIM + i] = (float)clamp01(vz + mz * mz);
    }
}

int fmq_moments_from_unit(const double *sum, int k, struct fmq_moments *out)
{
    const double slack = 1e-3; /* fixed-point rounding of k values */
    int out_of_range = 0;
    if (k < 1) return FMQ_ERANGE;
    out->n = k;
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double lo, w, mz = sum[i] / k, ez = sum[FMQ_FEAT_DIM + i] / k, vz;
        out_of_range += !(mz >= -slack && mz <= 1 + slack);
        out_of_range += !(ez >= -slack && ez <= 1 + slack);
        mz = clamp01(mz);
        ez = clamp01(ez);
        vz = ez - mz * mz;
        vz = vz < 0 ? 0 : vz > mz * (1 - mz) ? mz * (1 - mz) : vz; /* Bhatia-Davis on [0, 1] */
        w = unit_span(i, &lo);
        out->mean[i] = lo + w * mz;
        out->m2[i] = (double)k * vz * w * w;
    }
    return out_of_range;
}

void fmq_stats_to_secure(const struct fmq_moments *all, const struct fmq_moments *benign,
                         float *out)
{
    fmq_moments_to_unit(all, out);
    out[FMQ_MOMENTS_UNIT] = benign && benign->n > 0;
    if (benign && benign->n > 0)
        fmq_moments_to_unit(benign, out + FMQ_MOMENTS_UNIT + 1);
    else
        memset(out + FMQ_MOMENTS_UNIT + 1, 0, FMQ_MOMENTS_UNIT * sizeof *out);
}

int fmq_stats_from_secure(const double *sum, int k, struct fmq_moments *all,
                          struct fmq_moments *benign)
{
    double kb = floor(sum[FMQ_MOMENTS_UNIT] + 0.5); /* sites with benign rows */
    int rc = fmq_moments_from_unit(sum, k, all), rb;
    fmq_moments_clear(benign);
    if (rc < 0) return rc;
    if (!(kb >= 0 && kb <= k)) { /* a liar's flag: no profile */
        rc++;
        kb = 0;
    }
    if (kb >= 1 && (rb = fmq_moments_from_unit(sum + FMQ_MOMENTS_UNIT + 1, (int)kb, benign)) > 0)
        rc += rb;
    return rc;
}

int fmq_moments_check(const struct fmq_moments *m, char *err, size_t errlen)
{
    if (!(m->n >= 1) || !isfinite(m->n)) {
        snprintf(err, errlen, "statistics over %g samples", m->n);
        return FMQ_ERANGE;
    }
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double lo, hi, var = m->m2[i] / m->n, vmax;
        fmq_feat_range(i, &lo, &hi);
        /* Bhatia-Davis: values in [lo, hi] with this mean vary at most (hi - mean)(mean - lo);
         * mixtures keep the bound, so merged checked moments always give a normalisation
         * fmq_norm_check accepts */
        vmax = (hi - m->mean[i]) * (m->mean[i] - lo);
        if (vmax < 0) vmax = 0;
        if (!(m->mean[i] >= lo - 1e-3 && m->mean[i] <= hi + 1e-3)) { /* float rounding */
            snprintf(err, errlen, "mean of feature %d (%s) is %g, outside its range [%g, %g]", i,
                     fmq_feat_name(i), m->mean[i], lo, hi);
            return FMQ_ERANGE;
        }
        if (!(var >= 0 && var <= vmax * (1 + 1e-6) + 1e-6)) {
            snprintf(err, errlen,
                     "variance of feature %d (%s) is %g, above %g, the most values in [%g, %g] "
                     "with mean %g can have",
                     i, fmq_feat_name(i), var, vmax, lo, hi, m->mean[i]);
            return FMQ_ERANGE;
        }
    }
    return 0;
}

int fmq_norm_check(const float *mean, const float *std, char *err, size_t errlen)
{
    for (int i = 0; i < FMQ_FEAT_DIM; i++) {
        double lo, hi, smax;
        fmq_feat_range(i, &lo, &hi);
        smax = (hi - lo) / 2 > FMQ_FEAT_STD_FLOOR ? (hi - lo) / 2 : FMQ_FEAT_STD_FLOOR;
        if (!(mean[i] >= lo - 1e-3 && mean[i] <= hi + 1e-3)) {
            snprintf(err, errlen, "normalisation mean of feature %d (%s) is %g, outside [%g, %g]",
                     i, fmq_feat_name(i), mean[i], lo, hi);
            return FMQ_ERANGE;
        }
        if (!(std[i] >= FMQ_FEAT_STD_FLOOR * 0.999f && std[i] <= smax * 1.001 + 1e-6)) {
            snprintf(err, errlen, "normalisation std of feature %d (%s) is %g, outside [%g, %g]", i,
                     fmq_feat_name(i), std[i], FMQ_FEAT_STD_FLOOR, smax);
            return FMQ_ERANGE;
        }
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, size_t n) /* sorts v */
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int fmq_moments_robust_merge(const struct fmq_moments *in, size_t n,
                             const struct fmq_moments_rule *rule, struct fmq_moments *out,
                             int *kept, int *capped)
{
    enum { D = 2 * FMQ_FEAT_DIM };
    double *col = NULL, *vec = NULL, *dist = NULL, *ncap = NULL, cap = HUGE_VAL, total = 0, med;
    double centre[D], scale[FMQ_FEAT_DIM];
    int rc = FMQ_ENOMEM, merged = 0, *use = NULL;

    fmq_moments_clear(out);
    if (capped) *capped = 0;
    if (n == 0) return FMQ_EINVAL;
    if (!(col = malloc(n * sizeof *col)) || !(vec = malloc(n * D * sizeof *vec)) ||
        !(dist = malloc(n * sizeof *dist)) || !(ncap = malloc(n * sizeof *ncap)) ||
        !(use = malloc(n * sizeof *use)))
        goto out;
    for (size_t k = 0; k < n; k++) col[k] = in[k].n;
    if (rule->count_cap > 0) cap = rule->count_cap * median_of(col, n);
    for (size_t k = 0; k < n; k++) {
        ncap[k] = in[k].n > cap ? cap : in[k].n;
        if (capped) *capped += in[k].n > cap;
        total += ncap[k];
        use[k] = 1;
    }
    if (rule->filter && n >= 3) {
        for (int i = 0; i < FMQ_FEAT_DIM; i++) { /* robust per-feature scale */
            for (size_t k = 0; k < n; k++) col[k] = sqrt(in[k].m2[i] / in[k].n);
            scale[i] = median_of(col, n);
            if (scale[i] < FMQ_FEAT_STD_FLOOR) scale[i] = FMQ_FEAT_STD_FLOOR;
        }
        for (size_t k = 0; k < n; k++)
            for (int i = 0; i < FMQ_FEAT_DIM; i++) {
                vec[k * D + i] = in[k].mean[i] / scale[i];
                vec[k * D + FMQ_FEAT_DIM + i] = sqrt(in[k].m2[i] / in[k].n) / scale[i];
            }
        for (int j = 0; j < D; j++) {
            for (size_t k = 0; k < n; k++) col[k] = vec[k * D + j];
            centre[j] = median_of(col, n);
        }
        for (size_t k = 0; k < n; k++) {
            double d = 0;
            for (int j = 0; j < D; j++)
                d += (vec[k * D + j] - centre[j]) * (vec[k * D + j] - centre[j]);
            dist[k] = col[k] = sqrt(d);
        }
        med = median_of(col, n);
        for (size_t k = 0; k < n; k++)
            use[k] = dist[k] <= rule->tau * med + 1e-9 || ncap[k] > rule->majority * total;
    }
    for (size_t k = 0; k < n; k++) {
        struct fmq_moments m = in[k];
        if (kept) kept[k] = use[k];
        if (!use[k]) continue;
        for (int i = 0; i < FMQ_FEAT_DIM; i++) m.m2[i] *= ncap[k] / in[k].n;
        m.n = ncap[k];
        fmq_moments_merge(out, &m);
        merged++;
    }
    rc = merged;
out:
    free(col);
    free(vec);
    free(dist);
    free(ncap);
    free(use);
    return rc;
}
