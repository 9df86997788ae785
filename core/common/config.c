/* Config file and flag parsing (see config.h). */
#include "fedmq/config.h"
#include "fedmq/common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s)) s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int fmq_config_file(const char *path, fmq_config_fn fn, void *ud)
{
    char line[1024], err[256];
    FILE *f = fopen(path, "r");
    long lineno = 0;
    int rc = 0;

    if (!f) {
        fmq_log(FMQ_LOG_ERROR, "%s: cannot open config file", path);
        return FMQ_EIO;
    }
    while (fgets(line, sizeof line, f)) {
        char *k, *v, *eq, *hash;
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fmq_log(FMQ_LOG_ERROR, "%s:%ld: line longer than %zu bytes", path, lineno,
                    sizeof line - 2);
            rc = FMQ_EFORMAT;
            break;
        }
        if ((hash = strchr(line, '#'))) *hash = 0;
        k = trim(line);
        if (!*k) continue;
        if (!(eq = strchr(k, '='))) {
            fmq_log(FMQ_LOG_ERROR, "%s:%ld: expected 'key = value'", path, lineno);
            rc = FMQ_EFORMAT;
            break;
        }
        *eq = 0;
        v = trim(eq + 1);
        k = trim(k);
        if (strcmp(k, "config") == 0) {
            fmq_log(FMQ_LOG_ERROR, "%s:%ld: nested 'config' is not allowed", path, lineno);
            rc = FMQ_EINVAL;
            break;
        }
        err[0] = 0;
        if ((rc = fn(ud, k, v, err, sizeof err)) < 0) {
            fmq_log(FMQ_LOG_ERROR, "%s:%ld: %s: %s", path, lineno, k,
                    err[0] ? err : fmq_strerror(rc));
            break;
        }
        rc = 0;
    }
    fclose(f);
    return rc;
}

static int is_bool(const char *const *keys, const char *k)
{
    for (; keys && *keys; keys++)
        if (strcmp(*keys, k) == 0) return 1;
    return 0;
}

int fmq_config_args(int argc, char **argv, const char *const *bool_keys, fmq_config_fn fn, void *ud)
{
    char err[256], key[64];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq;
        int rc, inline_val = 0;
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            err[0] = 0;
            if ((rc = fn(ud, "", a, err, sizeof err)) < 0) {
                fmq_log(FMQ_LOG_ERROR, "argument '%s': %s", a, err[0] ? err : fmq_strerror(rc));
                return rc;
            }
            continue;
        }
        a += 2;
        if ((eq = strchr(a, '='))) {
            if ((size_t)(eq - a) >= sizeof key) return FMQ_EINVAL;
            memcpy(key, a, (size_t)(eq - a));
            key[eq - a] = 0;
            val = eq + 1;
            inline_val = 1;
        } else {
            if (strlen(a) >= sizeof key) return FMQ_EINVAL;
            strcpy(key, a);
        }
        for (char *p = key; *p; p++)
            if (*p == '-') *p = '_';
        if (!inline_val && !is_bool(bool_keys, key) && i + 1 < argc &&
            strncmp(argv[i + 1], "--", 2) != 0)
            val = argv[i + 1];
        if (strcmp(key, "config") == 0) {
            if (!val) {
                fmq_log(FMQ_LOG_ERROR, "--config needs a file");
                return FMQ_EINVAL;
            }
            if ((rc = fmq_config_file(val, fn, ud)) != 0) return rc;
            if (!inline_val) i++;
            continue;
        }
        if (!val && !is_bool(bool_keys, key)) {
            fmq_log(FMQ_LOG_ERROR, "--%s needs a value", key);
            return FMQ_EINVAL;
        }
        err[0] = 0;
        rc = fn(ud, key, val, err, sizeof err);
        if (rc < 0) {
            fmq_log(FMQ_LOG_ERROR, "--%s: %s", key, err[0] ? err : fmq_strerror(rc));
            return rc;
        }
        if (!inline_val && !is_bool(bool_keys, key)) i++;
    }
    return 0;
}

int fmq_config_has_flag(int argc, char **argv, const char *a, const char *b)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], a) || (b && !strcmp(argv[i], b))) return 1;
    return 0;
}

int fmq_config_std_flags(int argc, char **argv, const char *prog, const char *version,
                         const char *usage, int needs_args)
{
    if (fmq_config_has_flag(argc, argv, "--version", "-V")) {
        printf("%s %s\n", prog, version);
        return 0;
    }
    if ((needs_args && argc < 2) || fmq_config_has_flag(argc, argv, "--help", "-h")) {
        fputs(usage, stdout);
        return needs_args && argc < 2 ? 2 : 0;
    }
    return -1;
}

int fmq_parse_long(const char *v, long min, long max, long *out)
{
    char *end;
    long x;
    if (!v || !*v) return FMQ_EINVAL;
    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || *end || x < min || x > max) return FMQ_ERANGE;
    *out = x;
    return 0;
}

int fmq_parse_double(const char *v, double min, double max, double *out)
{
    char *end;
    double x;
    if (!v || !*v) return FMQ_EINVAL;
    errno = 0;
    x = strtod(v, &end);
    if (errno || *end || !isfinite(x) || x < min || x > max) return FMQ_ERANGE;
    *out = x;
    return 0;
}

int fmq_parse_int(const char *v, int min, int max, int *out)
{
    long l;
    int rc = fmq_parse_long(v, min, max, &l);
    if (rc == 0) *out = (int)l;
    return rc;
}

int fmq_parse_float(const char *v, double min, double max, float *out)
{
    double d;
    int rc = fmq_parse_double(v, min, max, &d);
    if (rc == 0) *out = (float)d;
    return rc;
}

int fmq_parse_bool(const char *v, int *out)
{
    if (!v)
        *out = 1;
    else if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
             !strcmp(v, "1"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
             !strcmp(v, "0"))
        *out = 0;
    else
        return FMQ_EINVAL;
    return 0;
}

int fmq_config_str(char *dst, size_t cap, const char *v)
{
    if (!v) return FMQ_EINVAL;
    if (strlen(v) >= cap) return FMQ_ETOOBIG;
    strcpy(dst, v);
    return 0;
}
