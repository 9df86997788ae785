/* fedmq core: error codes, the log callback, a seeded RNG and clock helpers shared by every
 * module. The core never prints: it reports through fmq_log(), which the daemons route to
 * stderr or syslog. Fallible functions return 0 or a negative FMQ_E* code. */
#ifndef FMQ_COMMON_H
#define FMQ_COMMON_H

#include <stddef.h>
#include <stdint.h>

enum {
    FMQ_OK = 0,
    FMQ_ENOMEM = -1,   /* allocation failed */
    FMQ_EINVAL = -2,   /* invalid argument or configuration */
    FMQ_EIO = -3,      /* file or socket error */
    FMQ_EFORMAT = -4,  /* malformed input (text line, JSON, msgpack) */
    FMQ_EVERSION = -5, /* unsupported envelope version */
    FMQ_ETYPE = -6,    /* wrong message type or field type */
    FMQ_EDIM = -7,     /* dimension mismatch */
    FMQ_ERANGE = -8,   /* value out of range, NaN or Inf */
    FMQ_ETOOBIG = -9,  /* input exceeds a configured size limit */
    FMQ_ETASK = -10,   /* message for another task */
    FMQ_ESTALE = -11,  /* update for an older base model version */
    FMQ_EDUP = -12,    /* duplicate (agent, round) */
    FMQ_ENET = -13,    /* MQTT client error */
    FMQ_ETIMEOUT = -14,
    FMQ_EOF = -15,   /* end of input, not an error for readers */
    FMQ_EFULL = -16, /* bounded queue full */
};

const char *fmq_strerror(int code);

enum fmq_log_level { FMQ_LOG_ERROR = 0, FMQ_LOG_WARN, FMQ_LOG_INFO, FMQ_LOG_DEBUG };
typedef void (*fmq_log_fn)(int level, const char *msg, void *ud);

/* Installs the process-wide log sink (NULL restores the default, which writes to stderr). */
void fmq_log_set(fmq_log_fn fn, void *ud, int max_level);
void fmq_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Daemon sink: "2026-11-26T15:04:05Z fedmq-agent[a1] warn: msg" on stderr. prefix is copied. */
void fmq_log_use_stderr(const char *prefix, int max_level);
/* Parses error|warn|info|debug. */
int fmq_log_level_parse(const char *s, int *level);

/* At most `max` events per `window` seconds pass; the rest are counted in suppressed so a flood
 * of bad input cannot flood the log. */
struct fmq_ratelimit {
    double window;       /* seconds */
    int max;             /* events let through per window */
    double start;        /* current window start (monotonic) */
    int used;            /* events let through in this window */
    uint64_t suppressed; /* events held back since the last one let through */
};
int fmq_ratelimit_ok(struct fmq_ratelimit *rl);

/* Deterministic PRNG (PCG32, O'Neill 2014, pcg-random.org) so that training is reproducible
 * under a seed on every platform. */
struct fmq_rng {
    uint64_t state; /* internal state */
    uint64_t inc;   /* stream selector, always odd */
};
void fmq_rng_seed(struct fmq_rng *r, uint64_t seed, uint64_t stream);
uint32_t fmq_rng_u32(struct fmq_rng *r);
double fmq_rng_uniform(struct fmq_rng *r);             /* [0, 1) */
uint32_t fmq_rng_below(struct fmq_rng *r, uint32_t n); /* [0, n), unbiased */
double fmq_rng_normal(struct fmq_rng *r);              /* standard normal (Box-Muller) */

/* Writes s as the body of a JSON string (quotes and backslashes escaped, control characters as
 * \u00XX) into dst, cut short rather than overflowing cap; returns the length written. */
size_t fmq_json_escape(char *dst, size_t cap, const char *s);

double fmq_now(void);       /* wall clock, seconds since the Unix epoch */
double fmq_mono(void);      /* monotonic clock, seconds */
long fmq_peak_rss_kb(void); /* VmHWM of this process in kB, -1 if unknown */

#endif
