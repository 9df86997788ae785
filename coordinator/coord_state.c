/* Crash-safe coordinator state (state_file). coord_commit (coord.c) saves it before the global
 * model it describes is published and before any update in it is confirmed: the run id,
 * version, round and phase, the server optimizer's moments, the DP accountant, each agent's
 * newest aggregated update (base version, sequence number), the global model envelope itself
 * and the round's metrics. It goes to a temporary file, is fsynced, renamed over the state file,
 * and the directory is fsynced; a save counts only when every step succeeded, so a `kill -9` at
 * any moment leaves either the previous or the new state, whole, and a full disk is seen as a
 * failed save (the temporary file is removed to give the space back). A restarted coordinator
 * loads it and keeps the run id. The file is for the same machine (host byte order) and carries
 * an FNV-1a checksum; a corrupt file stops the coordinator instead of silently starting a new
 * run. Layout 1 files (before per-agent base versions and saved metrics) still load. GSFS pool
 * contents and submission frequencies are not kept (the pool refills within a round). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coord.h"

#define STATE_MAGIC "FMQSTAT1"
#define STATE_LAYOUT 2
#define STATE_MAX_JSON (64u << 10)

struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
};

static void put(struct wbuf *b, const void *v, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = (b->n + n) * 2;
        uint8_t *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = c;
    }
    memcpy(b->p + b->n, v, n);
    b->n += n;
}

uint64_t coord_state_checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Test hook: FMQ_TEST_SAVE_FAIL=PATH makes every save fail as a full disk would while PATH
 * exists (for machines where a test cannot mount a small tmpfs). */
static int test_save_fail(void)
{
    const char *p = getenv("FMQ_TEST_SAVE_FAIL");
    return p && *p && access(p, F_OK) == 0;
}

static int write_atomic(const char *path, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    char tmp[300], dir[300];
    const char *step = NULL;
    int fd, e = 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (test_save_fail()) {
        snprintf(err, errlen, "%s: %s (FMQ_TEST_SAVE_FAIL)", tmp, strerror(ENOSPC));
        return FMQ_EIO;
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0) {
        snprintf(err, errlen, "%s: open: %s", tmp, strerror(errno));
        return FMQ_EIO;
    }
    for (size_t off = 0; off < n && !step;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) step = "write", e = w < 0 ? errno : ENOSPC;
        off += w > 0 ? (size_t)w : 0;
    }
    if (!step && fsync(fd) != 0) step = "fsync", e = errno;
    if (close(fd) != 0 && !step) step = "close", e = errno;
    if (!step && rename(tmp, path) != 0) step = "rename", e = errno;
    if (step) {
        unlink(tmp); /* a full disk gets its space back */
        snprintf(err, errlen, "%s: %s: %s", tmp, step, strerror(e));
        return FMQ_EIO;
    }
    snprintf(dir, sizeof dir, "%s", path);
    /* the rename itself, durable: until the directory is synced a power cut may undo it */
    if ((fd = open(dirname(dir), O_RDONLY | O_DIRECTORY)) < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: directory fsync: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return FMQ_EIO;
    }
    close(fd);
    return 0;
}

int coord_state_save(struct coord *c, const uint8_t *model, size_t model_len, char *err,
                     size_t errlen)
{
    struct wbuf b = {0};
    uint32_t layout = STATE_LAYOUT;
    uint64_t dim = c->opt.dim, n, sum;
    int32_t phase = c->phase, nag = c->nagents, hm = c->opt.m != NULL, hv = c->opt.v != NULL;
    int64_t t = c->opt.t;
    int rc;
    if (!c->cfg.state_file[0]) return 0;
    put(&b, STATE_MAGIC, 8);
    put(&b, &layout, sizeof layout);
    put(&b, c->run, sizeof c->run);
    put(&b, &c->version, sizeof c->version);
    put(&b, &c->round, sizeof c->round);
    put(&b, &phase, sizeof phase);
    put(&b, &c->dp_rounds, sizeof c->dp_rounds);
    put(&b, c->dp_rdp, sizeof c->dp_rdp);
    put(&b, &t, sizeof t);
    put(&b, &dim, sizeof dim);
    put(&b, &hm, sizeof hm);
    put(&b, &hv, sizeof hv);
    if (hm) put(&b, c->opt.m, dim * sizeof(double));
    if (hv) put(&b, c->opt.v, dim * sizeof(double));
    put(&b, &nag, sizeof nag);
    for (int i = 0; i < c->nagents; i++) {
        put(&b, c->agents[i].id, FMQ_ID_MAX);
        put(&b, &c->agents[i].app_base, sizeof(uint64_t));
        put(&b, &c->agents[i].app_seq, sizeof(uint64_t));
        put(&b, &c->agents[i].n_examples, sizeof(uint64_t));
        put(&b, &c->agents[i].updates, sizeof(uint64_t));
    }
    n = model_len;
    put(&b, &n, sizeof n);
    put(&b, model, model_len);
    n = c->round_json ? strlen(c->round_json) : 0;
    if (n > STATE_MAX_JSON) n = 0;
    put(&b, &n, sizeof n);
    if (n) put(&b, c->round_json, n);
    sum = b.oom ? 0 : coord_state_checksum(b.p, b.n);
    put(&b, &sum, sizeof sum);
    if (b.oom) {
        snprintf(err, errlen, "%s: out of memory", c->cfg.state_file);
        rc = FMQ_ENOMEM;
    } else
        rc = write_atomic(c->cfg.state_file, b.p, b.n, err, errlen);
    free(b.p);
    return rc;
}

struct rbuf {
    const uint8_t *p;
    size_t n, off;
    int bad;
};

static void get(struct rbuf *r, void *v, size_t n)
{
    if (r->bad || n > r->n - r->off) {
        r->bad = 1;
        memset(v, 0, n);
        return;
    }
    memcpy(v, r->p + r->off, n);
    r->off += n;
}

int coord_state_decode(struct coord *c, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    struct rbuf r = {0};
    struct coord_agent *ag = NULL;
    double *m = NULL, *v = NULL, rdp[FMQ_DP_ORDERS];
    char magic[8], run[FMQ_ID_MAX], *json = NULL;
    uint32_t layout;
    uint64_t dim, n, sum, version, round, dp_rounds;
    int32_t phase, nag, hm, hv;
    int64_t t;
    int rc = FMQ_EFORMAT;

    if (len < 16) {
        snprintf(err, errlen, "%zu bytes: too short to be a coordinator state", len);
        return FMQ_EFORMAT;
    }
    memcpy(&sum, buf + len - 8, 8);
    r = (struct rbuf){buf, len - 8, 0, coord_state_checksum(buf, len - 8) != sum};
    get(&r, magic, 8);
    get(&r, &layout, sizeof layout);
    if (r.bad || memcmp(magic, STATE_MAGIC, 8) != 0 || layout < 1 || layout > STATE_LAYOUT) {
        snprintf(err, errlen, "not a fedmq coordinator state, or damaged (checksum)");
        return FMQ_EFORMAT;
    }
    get(&r, run, sizeof run);
    run[sizeof run - 1] = 0;
    get(&r, &version, sizeof version);
    get(&r, &round, sizeof round);
    get(&r, &phase, sizeof phase);
    get(&r, &dp_rounds, sizeof dp_rounds);
    get(&r, rdp, sizeof rdp);
    get(&r, &t, sizeof t);
    get(&r, &dim, sizeof dim);
    get(&r, &hm, sizeof hm);
    get(&r, &hv, sizeof hv);
    if (r.bad || !fmq_id_valid(run) || version == 0 || version > FMQ_VERSION_MAX ||
        (phase != FMQ_PHASE_STATS && phase != FMQ_PHASE_TRAIN) || t < 0) {
        snprintf(err, errlen, "bad run id, version, phase or optimizer step");
        goto out;
    }
    if (dim != c->opt.dim || (hm != 0) != (c->opt.m != NULL) || (hv != 0) != (c->opt.v != NULL)) {
        snprintf(err, errlen, "saved for another model size or strategy");
        goto out;
    }
    if ((hm && !(m = malloc(dim * sizeof *m))) || (hv && !(v = malloc(dim * sizeof *v))) ||
        !(ag = calloc(COORD_MAX_AGENTS, sizeof *ag))) {
        snprintf(err, errlen, "out of memory");
        rc = FMQ_ENOMEM;
        goto out;
    }
    if (hm) get(&r, m, dim * sizeof *m);
    if (hv) get(&r, v, dim * sizeof *v);
    get(&r, &nag, sizeof nag);
    if (r.bad || nag < 0 || nag > COORD_MAX_AGENTS) {
        snprintf(err, errlen, "agent count %d outside 0..%d", (int)nag, COORD_MAX_AGENTS);
        goto out;
    }
    for (int i = 0; !r.bad && i < nag; i++) {
        struct coord_agent *a = &ag[i];
        get(&r, a->id, FMQ_ID_MAX);
        a->id[FMQ_ID_MAX - 1] = 0;
        if (layout >= 2) get(&r, &a->app_base, sizeof a->app_base);
        get(&r, &a->app_seq, sizeof a->app_seq); /* layout 1: base unknown (0) */
        get(&r, &a->n_examples, sizeof a->n_examples);
        get(&r, &a->updates, sizeof a->updates);
        if (!r.bad && !fmq_id_valid(a->id)) {
            snprintf(err, errlen, "agent %d: invalid id", i);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(ag[j].id, a->id) == 0) {
                snprintf(err, errlen, "agent %s listed twice", a->id);
                goto out;
            }
    }
    get(&r, &n, sizeof n);
    if (r.bad || n > r.n - r.off) {
        snprintf(err, errlen, "truncated (agents or model)");
        goto out;
    }
    {
        struct fmq_global g = {0};
        char werr[200];
        g.model = c->kind == FMQ_MODEL_GIOT ? NULL : &c->model;
        g.gpt = c->kind == FMQ_MODEL_GIOT ? &c->gpt : NULL;
        if ((rc = fmq_wire_decode_global(&c->dec, r.p + r.off, n, &g, werr, sizeof werr)) != 0) {
            snprintf(err, errlen, "the saved global model: %s", werr);
            goto out;
        }
        c->rule = g.rule; /* the fleet rule it carried */
        rc = FMQ_EFORMAT;
        if (g.version != version || strcmp(g.run, run) != 0) {
            snprintf(err, errlen, "the saved global model is v%llu of run %s, the state v%llu",
                     (unsigned long long)g.version, g.run, (unsigned long long)version);
            goto out;
        }
        r.off += n;
    }
    if (layout >= 2) {
        get(&r, &n, sizeof n);
        if (r.bad || n > STATE_MAX_JSON || n > r.n - r.off) {
            snprintf(err, errlen, "truncated (metrics)");
            goto out;
        }
        if (n) {
            if (!(json = malloc(n + 1))) {
                rc = FMQ_ENOMEM;
                goto out;
            }
            memcpy(json, r.p + r.off, n);
            json[n] = 0;
            if (strlen(json) != n) {
                snprintf(err, errlen, "metrics hold a NUL byte");
                goto out;
            }
            r.off += n;
        }
    }
    if (r.off != r.n) {
        snprintf(err, errlen, "%zu bytes after the end", r.n - r.off);
        goto out;
    }
    /* whole and consistent: take it */
    memcpy(c->run, run, sizeof run);
    c->version = c->saved_version = version;
    c->round = round;
    c->phase = phase;
    c->dp_rounds = dp_rounds;
    memcpy(c->dp_rdp, rdp, sizeof rdp);
    if (hm) memcpy(c->opt.m, m, dim * sizeof *m);
    if (hv) memcpy(c->opt.v, v, dim * sizeof *v);
    c->opt.t = (long)t;
    for (int i = 0; i < nag; i++) { /* accepted = aggregated = confirmed-or-confirmable */
        ag[i].last_base = ag[i].rcpt_base = ag[i].app_base;
        ag[i].last_seq = ag[i].rcpt_seq = ag[i].app_seq;
    }
    memcpy(c->agents, ag, (size_t)nag * sizeof *ag);
    c->nagents = nag;
    free(c->round_json);
    c->round_json = json;
    json = NULL;
    rc = 0;
out:
    free(json);
    free(ag);
    free(m);
    free(v);
    return rc;
}

/* Returns 0 when a state was loaded, 1 when there is none, an error when it cannot be used. */
int coord_state_load(struct coord *c)
{
    FILE *f;
    uint8_t *buf = NULL;
    long len = -1;
    char err[256];
    int rc = FMQ_EIO;

    if (!c->cfg.state_file[0]) return 1;
    if (!(f = fopen(c->cfg.state_file, "rb"))) {
        if (errno == ENOENT) return 1;
        fmq_log(FMQ_LOG_ERROR, "%s: %s", c->cfg.state_file, strerror(errno));
        return FMQ_EIO;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc(len > 0 ? (size_t)len : 1)) && fread(buf, 1, (size_t)len, f) == (size_t)len)
        rc = coord_state_decode(c, buf, (size_t)len, err, sizeof err);
    else
        snprintf(err, sizeof err, "cannot read: %s", strerror(errno));
    fclose(f);
    free(buf);
    if (rc != 0) {
        fmq_log(FMQ_LOG_ERROR, "%s: %s", c->cfg.state_file, err);
        return rc;
    }
    fmq_log(FMQ_LOG_INFO, "%s: resumed run %s at v%llu (round %llu, %d agents known)",
            c->cfg.state_file, c->run, (unsigned long long)c->version, (unsigned long long)c->round,
            c->nagents);
    return 0;
}

static unsigned long long json_version(const char *s)
{
    const char *p = strstr(s, "\"version\":");
    return p ? strtoull(p + 10, NULL, 10) : 0;
}

int coord_metrics_recover(struct coord *c)
{
    char tail[16384], *nl, *last;
    struct stat st;
    FILE *f;
    long from;
    size_t n;
    unsigned long long have = 0, saved;

    if (!c->cfg.metrics_file[0]) return 0;
    if (!(f = fopen(c->cfg.metrics_file, "r+"))) return errno == ENOENT ? 0 : FMQ_EIO;
    if (fstat(fileno(f), &st) != 0) goto fail;
    from = st.st_size > (off_t)sizeof tail - 1 ? (long)(st.st_size - (off_t)sizeof tail + 1) : 0;
    if (fseek(f, from, SEEK_SET) != 0) goto fail;
    n = fread(tail, 1, sizeof tail - 1, f);
    tail[n] = 0;
    if (n && tail[n - 1] != '\n') { /* torn by a crash mid-write: cut after the last whole line */
        nl = strrchr(tail, '\n');
        if (nl || from == 0) {
            off_t keep = nl ? (off_t)from + (nl + 1 - tail) : 0;
            fmq_log(FMQ_LOG_WARN, "%s: dropped a torn last line (%lld bytes)", c->cfg.metrics_file,
                    (long long)(st.st_size - keep));
            if (ftruncate(fileno(f), keep) != 0) goto fail;
            if (nl)
                nl[1] = 0;
            else
                tail[0] = 0;
            n = strlen(tail);
        }
    }
    if (n && tail[n - 1] == '\n') tail[--n] = 0;
    last = strrchr(tail, '\n');
    last = last ? last + 1 : tail;
    if (*last) have = json_version(last);
    saved = c->round_json ? json_version(c->round_json) : 0;
    if (saved > have) { /* saved with the state, lost to a crash before it was written */
        fseek(f, 0, SEEK_END);
        fprintf(f, "%s\n", c->round_json);
        fmq_log(FMQ_LOG_INFO, "%s: wrote the metrics of v%llu, saved with the state",
                c->cfg.metrics_file, saved);
    }
    fclose(f);
    return 0;
fail:
    fmq_log(FMQ_LOG_ERROR, "%s: %s", c->cfg.metrics_file, strerror(errno));
    fclose(f);
    return FMQ_EIO;
}
