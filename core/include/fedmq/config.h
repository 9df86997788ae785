/* Configuration for the daemons and tools: `key = value` files (# starts a comment) and command
 * line flags `--key value`, `--key=value`, with `--config FILE` read where it appears, so later
 * flags override the file. The same callback handles both; errors name the file and line or the
 * flag. */
#ifndef FMQ_CONFIG_H
#define FMQ_CONFIG_H

#include <stddef.h>

/* Called per setting. key "" marks a positional argument (val holds it). Flags have '-' mapped to
 * '_'. For a boolean key val is its inline value (--flag=false) or NULL (bare --flag: true).
 * Return 0 or a negative FMQ_E* with a reason in err. */
typedef int (*fmq_config_fn)(void *ud, const char *key, const char *val, char *err, size_t errlen);

int fmq_config_file(const char *path, fmq_config_fn fn, void *ud);
/* bool_keys: NULL-terminated list of keys that are boolean flags (never take the next argument). */
int fmq_config_args(int argc, char **argv, const char *const *bool_keys, fmq_config_fn fn,
                    void *ud);

/* 1 when argv[1..] holds the flag `a` or `b` (b may be NULL): --help and --version are answered
 * before any setting is parsed. */
int fmq_config_has_flag(int argc, char **argv, const char *a, const char *b);
/* A tool's --version (-V) and --help (-h): prints "PROG VERSION" or usage (also when it has
 * no arguments at all and needs some) and returns the exit status (0; 2 without arguments), or
 * -1 when neither applies and the tool goes on. */
int fmq_config_std_flags(int argc, char **argv, const char *prog, const char *version,
                         const char *usage, int needs_args);

/* Strict parsers: the whole string must be a number within [min, max]. */
int fmq_parse_long(const char *v, long min, long max, long *out);
int fmq_parse_double(const char *v, double min, double max, double *out);
/* The same into narrower destinations (the value is checked against [min, max] first). */
int fmq_parse_int(const char *v, int min, int max, int *out);
int fmq_parse_float(const char *v, double min, double max, float *out);
/* true/false, yes/no, on/off, 1/0; NULL (a bare flag) is true */
int fmq_parse_bool(const char *v, int *out);
/* Copies v into dst of cap bytes; FMQ_ETOOBIG if it does not fit. */
int fmq_config_str(char *dst, size_t cap, const char *v);

#endif
