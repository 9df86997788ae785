/* Zeek conn.log reader (see connlog.h). Layout detection looks only at the first line; column
 * meaning always comes from the header, never from position alone, so a reordered or extended
 * log still reads correctly and a line with the wrong column count is rejected, not guessed. */
#include "fedmq/connlog.h"
#include "fedmq/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int bad_line(struct fmq_connlog *r, const char *reason)
{
    r->n_bad++;
    if (!r->quiet && r->n_bad <= 20)
        fmq_log(FMQ_LOG_WARN, "%s:%ld: skipped: %s", r->path, r->lineno, reason);
    else if (!r->quiet && r->n_bad == 21)
        fmq_log(FMQ_LOG_WARN, "%s: further malformed lines counted but not logged", r->path);
    return 0;
}

/* Reads one line without its newline (and a CR before it). Returns 1, 0 at EOF, -1 if too long. */
static int read_line(struct fmq_connlog *r, char *buf)
{
    size_t n;

    if (!fgets(buf, FMQ_CONNLOG_MAXLINE, r->f)) {
        clearerr(r->f); /* follow mode reads on after EOF */
        return 0;
    }
    n = strlen(buf);
    if (r->follow && (n == 0 || buf[n - 1] != '\n') && feof(r->f)) {
        /* the writer is mid-line: read it again whole, later */
        fseeko(r->f, (off_t)r->off, SEEK_SET);
        clearerr(r->f);
        return 0;
    }
    r->lineno++;
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    else if (!feof(r->f)) {
        int c;
        while ((c = fgetc(r->f)) != EOF && c != '\n') {
        }
        if (r->follow) r->off = (long long)ftello(r->f);
        return -1;
    }
    if (r->follow) r->off = (long long)ftello(r->f);
    if (n > 0 && buf[n - 1] == '\r') buf[--n] = 0;
    if (memchr(buf, 0, n) != NULL || strlen(buf) != n) return -1;
    return 1;
}

/* Splits s on sep (a string) into at most max fields; returns the count, or max+1 if more. */
static int split(char *s, const char *sep, char **out, int max)
{
    size_t sl = strlen(sep);
    int n = 0;
    char *p = s;

    for (;;) {
        char *q = strstr(p, sep);
        if (n == max) return max + 1;
        out[n++] = p;
        if (!q) break;
        *q = 0;
        p = q + sl;
    }
    return n;
}

static int add_names(struct fmq_connlog *r, char **fields, int n)
{
    for (int i = 0; i < n; i++) {
        if (r->ncols >= FMQ_CONNLOG_MAXCOLS || strlen(fields[i]) >= sizeof r->names[0])
            return FMQ_EFORMAT;
        strcpy(r->names[r->ncols++], fields[i]);
    }
    return 0;
}

static int has_col(const struct fmq_connlog *r, const char *name)
{
    for (int i = 0; i < r->ncols; i++)
        if (strcmp(r->names[i], name) == 0) return 1;
    return 0;
}

static int parse_tsv_header(struct fmq_connlog *r)
{
    char *fields[FMQ_CONNLOG_MAXCOLS + 1];
    int rc, n;

    /* The first line was "#separator \x09"; read '#' lines up to and including #fields. */
    for (;;) {
        rc = read_line(r, r->line);
        if (rc == 0 && r->follow) return FMQ_EOF; /* the header is still being written */
        if (rc <= 0) return FMQ_EFORMAT;
        if (r->line[0] != '#') return FMQ_EFORMAT;
        if (strncmp(r->line, "#fields\t", 8) == 0) break;
    }
    n = split(r->line + 8, "\t", fields, FMQ_CONNLOG_MAXCOLS);
    if (n > FMQ_CONNLOG_MAXCOLS) return FMQ_EFORMAT;
    if (strstr(fields[n - 1], "   ")) {
        char *parts[4];
        int m = split(fields[n - 1], "   ", parts, 3);
        if (m != 3) return FMQ_EFORMAT;
        r->joined_last = 1;
        if (add_names(r, fields, n - 1) || add_names(r, parts, 3)) return FMQ_EFORMAT;
    } else if (add_names(r, fields, n))
        return FMQ_EFORMAT;
    return 0;
}

static int open_stream(struct fmq_connlog *r, FILE *f, const char *name, int follow);

int fmq_connlog_open_stream(struct fmq_connlog *r, FILE *f, const char *name)
{
    int rc = open_stream(r, f, name, 0);
    if (rc != 0) fmq_connlog_close(r); /* ownership was taken: a failed open closes f */
    return rc;
}

static int open_stream(struct fmq_connlog *r, FILE *f, const char *name, int follow)
{
    int rc;

    memset(r, 0, sizeof *r);
    r->f = f;
    r->follow = follow;
    snprintf(r->path, sizeof r->path, "%s", name);
    rc = read_line(r, r->line);
    if (rc == 0 && follow) return FMQ_EOF; /* nothing whole yet */
    if (rc > 0 && strncmp(r->line, "### BTest baseline", 18) == 0) {
        /* Zeek's test baselines start with btest-diff's banner above the Zeek header */
        if (!r->quiet)
            fmq_log(FMQ_LOG_INFO, "%s:1: skipped: btest baseline banner, not a record", r->path);
        rc = read_line(r, r->line);
    }
    if (rc <= 0) {
        fmq_log(FMQ_LOG_ERROR, "%s:%ld: empty file or first line too long", r->path, r->lineno);
        return FMQ_EFORMAT;
    }
    if (strncmp(r->line, "#separator", 10) == 0) {
        r->layout = FMQ_LAYOUT_ZEEK_TSV;
        if ((rc = parse_tsv_header(r)) == FMQ_EOF) return rc;
        if (rc != 0) {
            fmq_log(FMQ_LOG_ERROR, "%s:%ld: bad Zeek header (no usable #fields line)", r->path,
                    r->lineno);
            return FMQ_EFORMAT;
        }
    } else if (strncmp(r->line, "ts|", 3) == 0) {
        char *fields[FMQ_CONNLOG_MAXCOLS + 1];
        int n = split(r->line, "|", fields, FMQ_CONNLOG_MAXCOLS);
        r->layout = FMQ_LAYOUT_CSV_PIPE;
        if (n > FMQ_CONNLOG_MAXCOLS || add_names(r, fields, n)) {
            fmq_log(FMQ_LOG_ERROR, "%s:1: bad CSV header", r->path);
            return FMQ_EFORMAT;
        }
    } else if (r->line[0] == '{') {
        r->layout = FMQ_LAYOUT_JSON;
        strcpy(r->pending, r->line);
        r->has_pending = 1;
        r->pending_off = 0;
    } else {
        fmq_log(FMQ_LOG_ERROR,
                "%s:%ld: unrecognised layout (expected a Zeek '#separator' header, a 'ts|uid|...' "
                "CSV header or a JSON object)",
                r->path, r->lineno);
        return FMQ_EFORMAT;
    }
    if (r->layout != FMQ_LAYOUT_JSON &&
        !(has_col(r, "ts") && has_col(r, "id.orig_h") && has_col(r, "id.resp_h"))) {
        fmq_log(FMQ_LOG_ERROR, "%s: header lacks ts, id.orig_h or id.resp_h", r->path);
        return FMQ_EFORMAT;
    }
    return 0;
}

int fmq_connlog_open(struct fmq_connlog *r, const char *path)
{
    FILE *f = fopen(path, "r");

    if (!f) {
        memset(r, 0, sizeof *r);
        fmq_log(FMQ_LOG_ERROR, "%s: cannot open", path);
        return FMQ_EIO;
    }
    return fmq_connlog_open_stream(r, f, path);
}

int fmq_connlog_open_follow(struct fmq_connlog *r, const char *path)
{
    FILE *f = fopen(path, "r");
    int rc;

    if (!f) {
        memset(r, 0, sizeof *r);
        fmq_log(FMQ_LOG_ERROR, "%s: cannot open: %s", path, strerror(errno));
        return FMQ_EIO;
    }
    if ((rc = open_stream(r, f, path, 1)) != 0) fmq_connlog_close(r);
    return rc;
}

long long fmq_connlog_offset(const struct fmq_connlog *r)
{
    return r->has_pending ? r->pending_off : r->off;
}

int fmq_connlog_seek(struct fmq_connlog *r, long long off, long lineno)
{
    struct stat st;
    long long data = fmq_connlog_offset(r); /* the first data line */
    if (!r->f || !r->follow || off < data || fstat(fileno(r->f), &st) != 0 ||
        off > (long long)st.st_size)
        return FMQ_ERANGE;
    if (fseeko(r->f, (off_t)off, SEEK_SET) != 0) return FMQ_EIO;
    r->has_pending = 0;
    r->off = off;
    r->lineno = lineno;
    return 0;
}

void fmq_connlog_close(struct fmq_connlog *r)
{
    if (r->f) fclose(r->f);
    r->f = NULL;
}

/* The CSV conversion split "Malicious   C&C-Torii" wrongly; SOURCES.md gives the repair:
 * label "Malicious   X" + detailed "Y" means Malicious, detailed "X-Y" (or "X" if Y empty). */
static int csv_label_repair(char *label, char *detailed, char *out_det, size_t cap)
{
    char *sp = strstr(label, "   ");
    if (!sp) {
        snprintf(out_det, cap, "%s", detailed);
        return 0;
    }
    *sp = 0;
    if (detailed[0] && strcmp(detailed, "-") != 0) {
        if ((size_t)snprintf(out_det, cap, "%s-%s", sp + 3, detailed) >= cap) return -1;
    } else if ((size_t)snprintf(out_det, cap, "%s", sp + 3) >= cap)
        return -1;
    return 0;
}

static int parse_columns(struct fmq_connlog *r, char **fields, int n, struct fmq_flow *out)
{
    char err[200], msg[260], det[96];
    int label_idx = -1, det_idx = -1;

    if (n != r->ncols) {
        snprintf(msg, sizeof msg, "%d fields, header has %d", n, r->ncols);
        return bad_line(r, msg), FMQ_EFORMAT;
    }
    fmq_flow_clear(out);
    for (int i = 0; i < n; i++) {
        if (strcmp(r->names[i], "label") == 0) {
            label_idx = i;
            continue;
        }
        if (fmq_flow_is_detail_key(r->names[i], strlen(r->names[i]))) {
            det_idx = i;
            continue;
        }
        if (fmq_flow_set(out, r->names[i], fields[i], strlen(fields[i]), err, sizeof err)) {
            return bad_line(r, err), FMQ_EFORMAT;
        }
    }
    if (label_idx >= 0) {
        char *lab = fields[label_idx];
        char *d = det_idx >= 0 ? fields[det_idx] : (char *)"";
        if (r->layout == FMQ_LAYOUT_CSV_PIPE) {
            if (csv_label_repair(lab, d, det, sizeof det) != 0)
                return bad_line(r, "detailed-label too long"), FMQ_EFORMAT;
            d = det;
        }
        if (fmq_flow_set(out, "label", lab, strlen(lab), err, sizeof err) ||
            fmq_flow_set(out, "detailed-label", d, strlen(d), err, sizeof err))
            return bad_line(r, err), FMQ_EFORMAT;
    }
    if (out->ts != out->ts || !out->orig_h[0] || !out->resp_h[0])
        return bad_line(r, "missing ts, id.orig_h or id.resp_h"), FMQ_EFORMAT;
    return 0;
}

int fmq_connlog_next(struct fmq_connlog *r, struct fmq_flow *out)
{
    char *fields[FMQ_CONNLOG_MAXCOLS + 1];

    if (!r->f) return FMQ_EOF;
    for (;;) {
        int rc, n;
        if (r->has_pending) {
            strcpy(r->line, r->pending);
            r->has_pending = 0;
            rc = 1;
        } else
            rc = read_line(r, r->line);
        if (rc == 0) return FMQ_EOF;
        if (rc < 0) {
            bad_line(r, "line too long or holds a NUL byte");
            continue;
        }
        if (r->line[0] == 0) continue;
        if (r->layout == FMQ_LAYOUT_ZEEK_TSV) {
            if (r->line[0] == '#') continue; /* #close and repeated headers */
            n = split(r->line, "\t", fields, FMQ_CONNLOG_MAXCOLS);
            if (n > FMQ_CONNLOG_MAXCOLS) {
                bad_line(r, "too many fields");
                continue;
            }
            if (r->joined_last) {
                char *parts[4];
                int m = split(fields[n - 1], "   ", parts, 3);
                if (m != 3) {
                    bad_line(r, "last field is not 'tunnel_parents   label   detailed-label'");
                    continue;
                }
                if (n + 2 > FMQ_CONNLOG_MAXCOLS) {
                    bad_line(r, "too many fields");
                    continue;
                }
                fields[n - 1] = parts[0];
                fields[n] = parts[1];
                fields[n + 1] = parts[2];
                n += 2;
            }
        } else if (r->layout == FMQ_LAYOUT_CSV_PIPE) {
            n = split(r->line, "|", fields, FMQ_CONNLOG_MAXCOLS);
        } else {
            char err[200];
            if (fmq_flow_from_json(r->line, strlen(r->line), out, err, sizeof err) != 0) {
                bad_line(r, err);
                continue;
            }
            r->n_ok++;
            return 0;
        }
        if (parse_columns(r, fields, n, out) != 0) continue;
        r->n_ok++;
        return 0;
    }
}

struct ts_idx {
    double ts;
    size_t i;
};

static int cmp_ts(const void *a, const void *b)
{
    const struct ts_idx *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* file order breaks ties: a stable sort */
}

/* Sorts v by ts, keeping file order among equal timestamps (Zeek writes a record when the
 * connection ends, so files are not in ts order). */
static int sort_by_ts(struct fmq_flow **v, size_t len)
{
    struct ts_idx *k = malloc((len ? len : 1) * sizeof *k);
    struct fmq_flow *s = malloc((len ? len : 1) * sizeof *s);

    if (!k || !s) {
        free(k);
        free(s);
        return FMQ_ENOMEM;
    }
    for (size_t i = 0; i < len; i++) k[i] = (struct ts_idx){(*v)[i].ts, i};
    qsort(k, len, sizeof *k, cmp_ts);
    for (size_t i = 0; i < len; i++) s[i] = (*v)[k[i].i];
    free(k);
    free(*v);
    *v = s;
    return 0;
}

int fmq_connlog_read_all(const char *path, struct fmq_flow **out, size_t *n, long *n_bad)
{
    struct fmq_connlog *r = malloc(sizeof *r);
    struct fmq_flow *v = NULL, *tmp;
    size_t cap = 0, len = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (!r) return FMQ_ENOMEM;
    if ((rc = fmq_connlog_open(r, path)) != 0) goto out;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1024;
            tmp = realloc(v, cap * sizeof *v);
            if (!tmp) {
                rc = FMQ_ENOMEM;
                goto out;
            }
            v = tmp;
        }
        rc = fmq_connlog_next(r, &v[len]);
        if (rc == FMQ_EOF) break;
        len++;
    }
    if ((rc = sort_by_ts(&v, len)) != 0) goto out;
    *out = v;
    *n = len;
    v = NULL;
    if (n_bad) *n_bad = r->n_bad;
out:
    fmq_connlog_close(r);
    free(r);
    free(v);
    return rc;
}
