/* Zeek conn.log reader for the layouts IoT-23 ships in (see data/iot23/SOURCES.md):
 *   ZEEK_TSV  Zeek ASCII log with #fields header; handles the 21-field variant whose last field
 *             joins tunnel_parents, label and detailed-label with three spaces, and the 23-field
 * one; CSV_PIPE  '|'-separated conversion with a header row, with its label repair; JSON      one
 * Zeek JSON object per line. A malformed line is logged with file, line number and reason, counted
 * and skipped. */
#ifndef FMQ_CONNLOG_H
#define FMQ_CONNLOG_H

#include <stdio.h>

#include "fedmq/flow.h"

enum fmq_connlog_layout {
    FMQ_LAYOUT_UNKNOWN = 0,
    FMQ_LAYOUT_ZEEK_TSV,
    FMQ_LAYOUT_CSV_PIPE,
    FMQ_LAYOUT_JSON
};

#define FMQ_CONNLOG_MAXCOLS 40
#define FMQ_CONNLOG_MAXLINE 8192

struct fmq_connlog {
    FILE *f;                             /* owned */
    char path[256];                      /* for messages */
    int layout;                          /* enum fmq_connlog_layout */
    int ncols;                           /* columns after splitting the joined label field */
    char names[FMQ_CONNLOG_MAXCOLS][24]; /* column names from the header */
    int joined_last;                     /* last TSV field holds three space-joined parts */
    long lineno;                         /* current line number, 1-based */
    long n_ok;                           /* records returned */
    long n_bad;                          /* malformed lines skipped */
    int quiet;                           /* do not log each malformed line */
    char line[FMQ_CONNLOG_MAXLINE];      /* current line */
    char pending[FMQ_CONNLOG_MAXLINE];   /* first data line consumed by layout detection */
    int has_pending;
    /* follow mode (fmq_connlog_open_follow): a live log another process appends to */
    int follow;            /* a last line without its newline is left for the next read */
    long long off;         /* byte offset after the last line read */
    long long pending_off; /* byte offset where the pending line starts */
};

/* Opens path and detects its layout from the first line. Returns FMQ_EIO or FMQ_EFORMAT
 * (unrecognised layout, bad header) with a logged reason. */
int fmq_connlog_open(struct fmq_connlog *r, const char *path);
/* Same over an already open stream; name is used in messages. Takes ownership of f: on failure
 * f is already closed (calling fmq_connlog_close afterwards is harmless). */
int fmq_connlog_open_stream(struct fmq_connlog *r, FILE *f, const char *name);
/* Opens a live log (Zeek's current conn.log) for following: as fmq_connlog_open, but a line
 * without its newline yet (the writer is mid-line) is not read until it is whole, and
 * FMQ_EOF (nothing logged) means the file has no complete first line or header yet: try again
 * later. fmq_connlog_next then returns FMQ_EOF whenever no complete line is left, and more may
 * follow. */
int fmq_connlog_open_follow(struct fmq_connlog *r, const char *path);
/* Follow mode: the byte offset (and line number) after the last record returned or line
 * skipped: where a restart resumes (fmq_connlog_seek). */
long long fmq_connlog_offset(const struct fmq_connlog *r);
/* Follow mode: continues at byte offset off (a line start from fmq_connlog_offset, past the
 * header) with line number lineno. FMQ_ERANGE if off is before the data or past the end. */
int fmq_connlog_seek(struct fmq_connlog *r, long long off, long lineno);
/* Reads the next valid record into out. Returns 0, or FMQ_EOF at the end. */
int fmq_connlog_next(struct fmq_connlog *r, struct fmq_flow *out);
void fmq_connlog_close(struct fmq_connlog *r);

/* Reads a whole file into a newly allocated array sorted by ts (stable). Returns owned *out
 * (free with free()); bad lines are counted in *n_bad when n_bad is not NULL. */
int fmq_connlog_read_all(const char *path, struct fmq_flow **out, size_t *n, long *n_bad);

#endif
