/* Crash-safe coordinator state (state_file): after every published global model the run id,
 * version, round and phase, the server optimizer's moments, the DP accountant, each agent's
 * last accepted sequence number and the global model envelope itself are written to a
 * temporary file, fsynced and renamed over the state file (then the directory is fsynced), so a
 * `kill -9` at any moment leaves either the previous or the new state, whole. A restarted
 * coordinator loads it, keeps the run id and republishes the same version: never an older one.
 * The file is for the same machine (host byte order) and carries an FNV-1a checksum; a corrupt
 * file stops the coordinator instead of silently starting a new run. GSFS pool contents and
 * submission frequencies are not kept (the pool refills within a round). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord.h"

#define STATE_MAGIC "FMQSTAT1"

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

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int write_atomic(const char *path, const uint8_t *p, size_t n)
{
    char tmp[300], dir[300];
    int fd, rc = 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0) return FMQ_EIO;
    for (size_t off = 0; off < n && rc == 0;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w <= 0) rc = FMQ_EIO;
        off += w > 0 ? (size_t)w : 0;
    }
    if (fsync(fd) != 0) rc = FMQ_EIO;
    if (close(fd) != 0) rc = FMQ_EIO;
    if (rc == 0 && rename(tmp, path) != 0) rc = FMQ_EIO;
    snprintf(dir, sizeof dir, "%s", path);
    if (rc == 0 && (fd = open(dirname(dir), O_RDONLY)) >= 0) { /* the rename itself, durable */
        fsync(fd);
        close(fd);
    }
    return rc;
}

int coord_state_save(struct coord *c, const uint8_t *model, size_t model_len)
{
    struct wbuf b = {0};
    uint32_t layout = 1;
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
        put(&b, &c->agents[i].last_seq, sizeof(uint64_t));
        put(&b, &c->agents[i].n_examples, sizeof(uint64_t));
        put(&b, &c->agents[i].updates, sizeof(uint64_t));
    }
    n = model_len;
    put(&b, &n, sizeof n);
    put(&b, model, model_len);
    sum = b.oom ? 0 : fnv(b.p, b.n);
    put(&b, &sum, sizeof sum);
    rc = b.oom ? FMQ_ENOMEM : write_atomic(c->cfg.state_file, b.p, b.n);
    if (rc) fmq_log(FMQ_LOG_ERROR, "%s: cannot save the coordinator state", c->cfg.state_file);
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
    if (r->bad || r->off + n > r->n) {
        r->bad = 1;
        memset(v, 0, n);
        return;
    }
    memcpy(v, r->p + r->off, n);
    r->off += n;
}

/* Returns 0 when a state was loaded, 1 when there is none, an error when it cannot be used. */
int coord_state_load(struct coord *c)
{
    FILE *f;
    uint8_t *buf = NULL;
    long len;
    struct rbuf r = {0};
    char magic[8], err[256];
    uint32_t layout;
    uint64_t dim, n, sum, version, round;
    int32_t phase, nag, hm, hv;
    int64_t t;
    int rc = FMQ_EFORMAT;

    if (!c->cfg.state_file[0]) return 1;
    if (!(f = fopen(c->cfg.state_file, "rb"))) {
        if (errno == ENOENT) return 1;
        fmq_log(FMQ_LOG_ERROR, "%s: %s", c->cfg.state_file, strerror(errno));
        return FMQ_EIO;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 16 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len)) && fread(buf, 1, (size_t)len, f) == (size_t)len) {
        r = (struct rbuf){buf, (size_t)len - 8, 0, 0};
        memcpy(&sum, buf + len - 8, 8);
        if (fnv(buf, (size_t)len - 8) != sum) r.bad = 1;
    } else
        r.bad = 1;
    fclose(f);
    get(&r, magic, 8);
    get(&r, &layout, sizeof layout);
    if (r.bad || memcmp(magic, STATE_MAGIC, 8) != 0 || layout != 1) {
        fmq_log(FMQ_LOG_ERROR, "%s: not a fedmq coordinator state, or damaged (checksum)",
                c->cfg.state_file);
        goto out;
    }
    get(&r, c->run, sizeof c->run);
    c->run[sizeof c->run - 1] = 0;
    get(&r, &version, sizeof version);
    get(&r, &round, sizeof round);
    get(&r, &phase, sizeof phase);
    get(&r, &c->dp_rounds, sizeof c->dp_rounds);
    get(&r, c->dp_rdp, sizeof c->dp_rdp);
    get(&r, &t, sizeof t);
    get(&r, &dim, sizeof dim);
    get(&r, &hm, sizeof hm);
    get(&r, &hv, sizeof hv);
    if (r.bad || dim != c->opt.dim || (hm && !c->opt.m) || (hv && !c->opt.v)) {
        fmq_log(FMQ_LOG_ERROR, "%s: saved for another model size or strategy", c->cfg.state_file);
        goto out;
    }
    if (hm) get(&r, c->opt.m, dim * sizeof(double));
    if (hv) get(&r, c->opt.v, dim * sizeof(double));
    c->opt.t = (long)t;
    get(&r, &nag, sizeof nag);
    for (int i = 0; !r.bad && i < nag && i < COORD_MAX_AGENTS; i++) {
        struct coord_agent *a = &c->agents[c->nagents++];
        memset(a, 0, sizeof *a);
        get(&r, a->id, FMQ_ID_MAX);
        a->id[FMQ_ID_MAX - 1] = 0;
        get(&r, &a->last_seq, sizeof a->last_seq);
        get(&r, &a->n_examples, sizeof a->n_examples);
        get(&r, &a->updates, sizeof a->updates);
    }
    get(&r, &n, sizeof n);
    if (r.bad || n > r.n - r.off) goto out;
    {
        struct fmq_global g = {0};
        g.model = c->kind == FMQ_MODEL_GIOT ? NULL : &c->model;
        g.gpt = c->kind == FMQ_MODEL_GIOT ? &c->gpt : NULL;
        if ((rc = fmq_wire_decode_global(&c->dec, r.p + r.off, n, &g, err, sizeof err)) != 0) {
            fmq_log(FMQ_LOG_ERROR, "%s: the saved global model: %s", c->cfg.state_file, err);
            goto out;
        }
        c->rule = g.rule; /* the fleet rule it carried */
    }
    c->version = version;
    c->round = round;
    c->phase = phase;
    rc = 0;
    fmq_log(FMQ_LOG_INFO, "%s: resumed run %s at v%llu (round %llu, %d agents known)",
            c->cfg.state_file, c->run, (unsigned long long)c->version, (unsigned long long)c->round,
            c->nagents);
out:
    free(buf);
    return rc;
}
