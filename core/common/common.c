/* Error strings, the log sink, the PCG32 generator and clock helpers (see common.h). */
#include "fedmq/common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *fmq_strerror(int code)
{
    switch (code) {
    case FMQ_OK:
        return "success";
    case FMQ_ENOMEM:
        return "out of memory";
    case FMQ_EINVAL:
        return "invalid argument";
    case FMQ_EIO:
        return "I/O error";
    case FMQ_EFORMAT:
        return "malformed input";
    case FMQ_EVERSION:
        return "unsupported version";
    case FMQ_ETYPE:
        return "wrong type";
    case FMQ_EDIM:
        return "dimension mismatch";
    case FMQ_ERANGE:
        return "value out of range or not finite";
    case FMQ_ETOOBIG:
        return "input too large";
    case FMQ_ETASK:
        return "message for another task";
    case FMQ_ESTALE:
        return "stale base model version";
    case FMQ_EDUP:
        return "duplicate";
    case FMQ_ENET:
        return "MQTT client error";
    case FMQ_ETIMEOUT:
        return "timed out";
    case FMQ_EOF:
        return "end of input";
    case FMQ_EFULL:
        return "queue full";
    }
    return "unknown error";
}

static fmq_log_fn log_fn;
static void *log_ud;
static int log_max = FMQ_LOG_INFO;

void fmq_log_set(fmq_log_fn fn, void *ud, int max_level)
{
    log_fn = fn;
    log_ud = ud;
    log_max = max_level;
}

void fmq_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char buf[1024];
    va_list ap;

    if (level > log_max) return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (log_fn) {
        log_fn(level, buf, log_ud);
        return;
    }
    fprintf(stderr, "%s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], buf);
}

static char stderr_prefix[96];

static void stderr_sink(int level, const char *msg, void *ud)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s %s %s: %s\n", ts, stderr_prefix,
            names[level < 0   ? 0
                  : level > 3 ? 3
                              : level],
            msg);
}

void fmq_log_use_stderr(const char *prefix, int max_level)
{
    snprintf(stderr_prefix, sizeof stderr_prefix, "%s", prefix);
    setvbuf(stderr, NULL, _IOLBF, 0);
    fmq_log_set(stderr_sink, NULL, max_level);
}

int fmq_log_level_parse(const char *s, int *level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *level = i;
            return 0;
        }
    return FMQ_EINVAL;
}

int fmq_ratelimit_ok(struct fmq_ratelimit *rl)
{
    double now = fmq_mono();
    if (now - rl->start >= rl->window) {
        rl->start = now;
        rl->used = 0;
    }
    if (rl->used < rl->max) {
        rl->used++;
        return 1;
    }
    rl->suppressed++;
    return 0;
}

void fmq_rng_seed(struct fmq_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    fmq_rng_u32(r);
    r->state += seed;
    fmq_rng_u32(r);
}

uint32_t fmq_rng_u32(struct fmq_rng *r)
{
    uint64_t old = r->state;
    uint32_t xorshifted, rot;

    r->state = old * 6364136223846793005ULL + r->inc;
    xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

double fmq_rng_uniform(struct fmq_rng *r)
{
    return fmq_rng_u32(r) * (1.0 / 4294967296.0);
}

uint32_t fmq_rng_below(struct fmq_rng *r, uint32_t n)
{
    uint32_t threshold = (uint32_t)(-n) % n; /* Lemire-style rejection of the biased tail */
    for (;;) {
        uint32_t x = fmq_rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

double fmq_rng_normal(struct fmq_rng *r)
{
    double u1 = fmq_rng_uniform(r), u2 = fmq_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double fmq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double fmq_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

long fmq_peak_rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = atol(line + 6);
            break;
        }
    fclose(f);
    return kb;
}

size_t fmq_json_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap == 0) return 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            dst[n++] = '\\', dst[n++] = (char)c;
        else if (c < 0x20)
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
        else
            dst[n++] = (char)c;
    }
    dst[n] = 0;
    return n;
}
