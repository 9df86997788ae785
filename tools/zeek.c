/* fedmq-zeek: follows a site's live Zeek conn.log (TSV or JSON, as Zeek writes it) and publishes
 * every record as one Zeek-style JSON object on sensors/<site>/<device>/conn, as a service.
 *
 * - Live: a line is read once it is whole (the writer may be mid-line); at the end of the file
 *   it polls every --poll seconds.
 * - Rotation: when the path names another file (Zeek renamed conn.log and opened a new one) or
 *   the file shrank (copytruncate), the old file is read to its end first, then the new one
 *   from its start.
 * - Back-pressure: a publish the client cannot buffer waits (nothing is dropped); while the
 *   broker is away the follower stops reading.
 * - A persisted offset (--state FILE): the device and inode of the file and the byte offset and
 *   line after the last record the broker confirmed (QoS 1), written atomically (a temporary
 *   file, fsync, rename) at most every --commit-interval seconds and at a stop. A restart
 *   resumes there: after a stop (SIGTERM, which waits for the broker's confirmations) nothing is
 *   sent twice and nothing is lost; after a crash the records between the last commit and the
 *   crash are sent again (at least once), never lost. A file rotated while the follower was
 *   down is found again by its inode in the log's directory and read to its end first; when it
 *   is gone (moved or compressed elsewhere), its unread tail is reported lost, with its size.
 * Usage: fedmq-zeek --site NAME --log PATH [--state FILE] [--broker URI] [options] */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fedmq/config.h"
#include "fedmq/connlog.h"
#include "fedmq/mq.h"
#include "fedmq/version.h"

/* Offsets of published records not yet confirmed: more than the publish loop lets wait. */
#define RING 8192
#define MAX_WAITING 4096

struct opts {
    char broker[256];
    char client_id[64];
    struct fmq_tls_cfg tls;
    char topic[256]; /* template with {site} and {device} */
    char site[64];
    char log[512];
    char state[512]; /* "" = no persisted offset */
    int with_labels;
    int qos;
    double poll;            /* seconds between looks at a file with nothing new */
    double commit_interval; /* seconds between state writes */
    double confirm_timeout; /* seconds a stop waits for the broker's confirmations */
};

/* Where a restart resumes: which file (device, inode) and how far into it. */
struct pos {
    unsigned long long dev, ino;
    long long off;
    long line;
};

/* One published record's end in its file, until the broker confirms it. */
struct sent {
    struct pos p;
};

static const char usage[] =
    "usage: fedmq-zeek --site NAME --log PATH [--state FILE] [--broker URI]\n"
    "       [--topic TEMPLATE] [--qos 0|1] [--with-labels] [--poll S]\n"
    "       [--commit-interval S] [--confirm-timeout S] [--client-id ID]\n"
    "       [--tls-ca FILE --tls-cert FILE --tls-key FILE] [--config FILE]\n"
    "Follows Zeek's live conn.log (TSV or JSON) across rotation and publishes each\n"
    "record on TEMPLATE (sensors/{site}/{device}/conn; {device} is id.orig_h).\n"
    "--state keeps the offset the broker confirmed, so a restart resumes there.\n";

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static const char *const bools[] = {"with_labels", "tls_verify_hostname", NULL};

static int set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    struct opts *o = ud;
    long l;
    int rc;
    if (!*k) {
        snprintf(err, errlen, "unexpected argument (the log is --log PATH)");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "broker")) return fmq_config_str(o->broker, sizeof o->broker, v);
    if (!strcmp(k, "client_id")) return fmq_config_str(o->client_id, sizeof o->client_id, v);
    if (fmq_tls_cfg_set(&o->tls, k, v, &rc)) return rc;
    if (!strcmp(k, "topic")) return fmq_config_str(o->topic, sizeof o->topic, v);
    if (!strcmp(k, "site")) return fmq_config_str(o->site, sizeof o->site, v);
    if (!strcmp(k, "log")) return fmq_config_str(o->log, sizeof o->log, v);
    if (!strcmp(k, "state")) return fmq_config_str(o->state, sizeof o->state, v);
    if (!strcmp(k, "with_labels")) return fmq_parse_bool(v, &o->with_labels);
    if (!strcmp(k, "poll")) return fmq_parse_double(v, 0.01, 60, &o->poll);
    if (!strcmp(k, "commit_interval")) return fmq_parse_double(v, 0, 3600, &o->commit_interval);
    if (!strcmp(k, "confirm_timeout")) return fmq_parse_double(v, 0.1, 86400, &o->confirm_timeout);
    if (!strcmp(k, "qos")) {
        rc = fmq_parse_long(v, 0, 1, &l);
        o->qos = (int)l;
        return rc;
    }
    snprintf(err, errlen, "unknown option (see --help)");
    return FMQ_EINVAL;
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The state file: "fedmq-zeek 1 DEV INO OFFSET LINE\n". 0, or FMQ_EOF when there is none. */
static int state_read(const char *path, struct pos *p)
{
    FILE *f = fopen(path, "r");
    int n;
    if (!f) {
        if (errno == ENOENT) return FMQ_EOF;
        fmq_log(FMQ_LOG_ERROR, "%s: cannot read the offset: %s", path, strerror(errno));
        return FMQ_EIO;
    }
    n = fscanf(f, "fedmq-zeek 1 %llu %llu %lld %ld", &p->dev, &p->ino, &p->off, &p->line);
    fclose(f);
    if (n != 4 || p->off < 0 || p->line < 0) {
        fmq_log(FMQ_LOG_ERROR,
                "%s: not a fedmq-zeek offset file (expected 'fedmq-zeek 1 DEV INO "
                "OFFSET LINE'); remove it to start from the log's beginning",
                path);
        return FMQ_EFORMAT;
    }
    return 0;
}

/* Atomically: a temporary file beside it, fsync, rename, then the directory. */
static int state_write(const char *path, const struct pos *p)
{
    char tmp[600], dir[512];
    char *slash;
    FILE *f;
    int fd, ok;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "w"))) {
        fmq_log(FMQ_LOG_ERROR, "%s: cannot write the offset: %s", tmp, strerror(errno));
        return FMQ_EIO;
    }
    ok = fprintf(f, "fedmq-zeek 1 %llu %llu %lld %ld\n", p->dev, p->ino, p->off, p->line) > 0;
    ok = fflush(f) == 0 && ok && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        fmq_log(FMQ_LOG_ERROR, "%s: cannot write the offset: %s", path, strerror(errno));
        unlink(tmp);
        return FMQ_EIO;
    }
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    if ((fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY)) >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

/* A file in the log's directory with this device and inode (the log, rotated while we were
 * down), into out. */
static int find_inode(const char *log, const struct pos *p, char *out, size_t cap)
{
    char dir[512];
    char *slash;
    DIR *d;
    struct dirent *e;
    int found = 0;
    snprintf(dir, sizeof dir, "%s", log);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    if (!(d = opendir(dir))) return 0;
    while (!found && (e = readdir(d))) {
        struct stat st;
        if ((size_t)snprintf(out, cap, "%s/%s", dir, e->d_name) >= cap) continue;
        found = stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
                (unsigned long long)st.st_dev == p->dev && (unsigned long long)st.st_ino == p->ino;
    }
    closedir(d);
    return found;
}

struct follower {
    struct opts *o;
    struct fmq_mq *mq;
    struct fmq_connlog r;
    int open;                /* r holds a file */
    struct pos cur;          /* the open file, after the last line read */
    struct sent ring[RING];  /* published records' ends, by publish number % RING */
    unsigned long long npub; /* records handed to the client */
    struct pos committed;    /* in the state file */
    double committed_at;
    unsigned long long published, failed;
};

/* Where the broker has confirmed everything before: the end of the newest confirmed record
 * (QoS 1 acknowledgements arrive in publish order on one connection). */
static int confirmed(struct follower *fw, struct pos *out)
{
    struct fmq_mq_stats st;
    unsigned long long acked;
    fmq_mq_get_stats(fw->mq, &st);
    acked = fw->o->qos ? st.acked : fw->npub;
    if (acked == 0 || acked > fw->npub) return 0;
    *out = fw->ring[(acked - 1) % RING].p;
    return 1;
}

static void commit(struct follower *fw, int force)
{
    struct pos p;
    if (!fw->o->state[0] || !confirmed(fw, &p)) return;
    if (p.dev == fw->committed.dev && p.ino == fw->committed.ino && p.off == fw->committed.off)
        return;
    if (!force && fmq_mono() - fw->committed_at < fw->o->commit_interval) return;
    if (state_write(fw->o->state, &p) == 0) {
        fw->committed = p;
        fw->committed_at = fmq_mono();
    }
}

/* Opens path for following, at p's offset when p names the same file; 0 or FMQ_EOF (not
 * readable yet: try later). */
static int open_at(struct follower *fw, const char *path, const struct pos *p)
{
    struct stat st;
    int rc = fmq_connlog_open_follow(&fw->r, path);
    if (rc != 0) return rc;
    if (fstat(fileno(fw->r.f), &st) != 0) {
        fmq_connlog_close(&fw->r);
        return FMQ_EIO;
    }
    fw->open = 1;
    fw->cur.dev = (unsigned long long)st.st_dev;
    fw->cur.ino = (unsigned long long)st.st_ino;
    fw->cur.off = fmq_connlog_offset(&fw->r);
    fw->cur.line = fw->r.lineno;
    if (p && p->dev == fw->cur.dev && p->ino == fw->cur.ino && p->off > fw->cur.off) {
        if (fmq_connlog_seek(&fw->r, p->off, p->line) != 0) {
            fmq_log(FMQ_LOG_WARN,
                    "%s: the saved offset %lld is past the end (%lld bytes): the file was "
                    "truncated; reading it from the start",
                    path, p->off, (long long)st.st_size);
        } else {
            fw->cur.off = p->off;
            fw->cur.line = p->line;
        }
    }
    fmq_log(FMQ_LOG_INFO, "following %s from byte %lld (line %ld)", path, fw->cur.off,
            fw->cur.line - fw->r.has_pending);
    return 0;
}

/* Publishes one record, waiting while the client's buffer is full or too much is unconfirmed.
 * 0, or -1 when a stop or a lost broker ends the wait. */
static int publish(struct follower *fw, const struct fmq_flow *fl)
{
    char json[4096], topic[512];
    double since = fmq_mono();
    int n = fmq_flow_to_json(fl, fw->o->with_labels, json, sizeof json), rc;
    if (n < 0) {
        fw->failed++;
        return 0;
    }
    fmq_sensor_topic(fw->o->topic, fw->o->site, fl->orig_h, topic, sizeof topic);
    for (;;) {
        if (fw->o->qos && fmq_mq_pending(fw->mq) >= MAX_WAITING)
            rc = FMQ_EFULL;
        else
            rc = fmq_mq_publish(fw->mq, topic, json, (size_t)n, fw->o->qos, 0);
        if (rc != FMQ_EFULL) break;
        if (stop) return -1;
        commit(fw, 0);
        if (fmq_mono() - since > 5) { /* say so, once in a while, while the broker is away */
            fmq_log(FMQ_LOG_WARN,
                    "the broker confirms nothing: %d publishes waiting; reading "
                    "paused",
                    fmq_mq_pending(fw->mq));
            since = fmq_mono();
        }
        nap(0.002);
    }
    if (rc != 0) {
        fw->failed++;
        return 0;
    }
    fw->ring[fw->npub % RING].p = fw->cur;
    fw->npub++;
    fw->published++;
    return 0;
}

/* The file the path names now differs from the open one (rotated), or the open one shrank. */
static int rotated(struct follower *fw, int *truncated)
{
    struct stat now, mine;
    *truncated = 0;
    if (fstat(fileno(fw->r.f), &mine) == 0 && (long long)mine.st_size < fw->cur.off) {
        *truncated = 1;
        return 1;
    }
    if (stat(fw->o->log, &now) != 0) return 0; /* renamed, the new one not there yet */
    return (unsigned long long)now.st_ino != fw->cur.ino ||
           (unsigned long long)now.st_dev != fw->cur.dev;
}

/* Reads what the open file holds now; returns when it has nothing whole left. */
static int drain(struct follower *fw)
{
    struct fmq_flow fl;
    while (!stop && fmq_connlog_next(&fw->r, &fl) == 0) {
        fw->cur.off = fmq_connlog_offset(&fw->r);
        fw->cur.line = fw->r.lineno;
        if (publish(fw, &fl) != 0) return -1;
        commit(fw, 0);
    }
    if (!stop) { /* bad lines at the end move the offset too */
        fw->cur.off = fmq_connlog_offset(&fw->r);
        fw->cur.line = fw->r.lineno;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct follower fw;
    struct opts o;
    struct fmq_mq_opts mo;
    struct pos saved = {0};
    int have_saved = 0, rc = 1, waiting = 0;

    memset(&o, 0, sizeof o);
    strcpy(o.broker, "tcp://127.0.0.1:1883");
    fmq_tls_cfg_default(&o.tls);
    strcpy(o.topic, "sensors/{site}/{device}/conn");
    o.qos = 1;
    o.poll = 0.25;
    o.commit_interval = 1.0;
    o.confirm_timeout = 30.0;
    fmq_log_use_stderr("fedmq-zeek", FMQ_LOG_INFO);
    if ((rc = fmq_config_std_flags(argc, argv, "fedmq-zeek", FMQ_VERSION, usage, 1)) >= 0)
        return rc;
    if (fmq_config_args(argc, argv, bools, set, &o) != 0) return 2;
    if (!o.site[0] || !o.log[0]) {
        fmq_log(FMQ_LOG_ERROR, "--site and --log are required");
        return 2;
    }
    if (!o.client_id[0]) snprintf(o.client_id, sizeof o.client_id, "fedmq-zeek-%.50s", o.site);
    if (o.state[0]) {
        int s = state_read(o.state, &saved);
        if (s == 0)
            have_saved = 1;
        else if (s != FMQ_EOF)
            return 2;
    }
    fw.o = &o;
    fmq_mq_opts_default(&mo);
    mo.uri = o.broker;
    mo.tls = &o.tls;
    mo.client_id = o.client_id;
    mo.max_buffered = MAX_WAITING * 2;
    mo.drop_oldest = 0; /* a full buffer refuses and the publish waits: nothing is dropped */
    if (fmq_mq_create(&fw.mq, &mo)) return 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, SIG_IGN);
    while (!stop && (rc = fmq_mq_connect(fw.mq, 0.5)) == FMQ_ETIMEOUT) {
    }
    if (stop) goto done;
    if (rc != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot connect to %s: %s", o.broker, fmq_strerror(rc));
        goto done;
    }
    if (have_saved) {
        struct stat st;
        char old[1024];
        fw.committed = saved;
        if (stat(o.log, &st) == 0 && ((unsigned long long)st.st_ino != saved.ino ||
                                      (unsigned long long)st.st_dev != saved.dev)) {
            /* rotated while we were down: its unread tail first, when it is still here */
            if (find_inode(o.log, &saved, old, sizeof old) && open_at(&fw, old, &saved) == 0) {
                fmq_log(FMQ_LOG_INFO, "%s was rotated while stopped: reading %s to its end first",
                        o.log, old);
                if (drain(&fw) == 0) {
                    fmq_connlog_close(&fw.r);
                    fw.open = 0;
                }
            } else
                fmq_log(FMQ_LOG_WARN,
                        "%s was rotated while stopped and the old file (inode %llu) is not in "
                        "its directory any more: its records after byte %lld are not sent",
                        o.log, saved.ino, saved.off);
        }
    }
    while (!stop) {
        int truncated;
        if (!fw.open) {
            struct stat st;
            int orc;
            if (stat(o.log, &st) != 0) { /* not there yet (Zeek not started, mid-rotation) */
                if (!waiting++) fmq_log(FMQ_LOG_INFO, "waiting for %s: %s", o.log, strerror(errno));
                nap(o.poll);
                continue;
            }
            waiting = 0;
            orc = open_at(&fw, o.log, have_saved ? &saved : NULL);
            if (orc != 0) { /* no whole header yet, or not a conn.log (said once, by connlog) */
                nap(orc == FMQ_EOF ? o.poll : 5.0);
                continue;
            }
            have_saved = 0; /* the saved offset applies to the first file opened only */
        }
        if (drain(&fw) != 0) break;
        commit(&fw, 0);
        if (rotated(&fw, &truncated)) {
            drain(&fw); /* what the writer added before it moved on */
            fmq_log(FMQ_LOG_INFO, "%s %s after line %ld: following the new file", o.log,
                    truncated ? "was truncated" : "was rotated", fw.cur.line);
            fmq_connlog_close(&fw.r);
            fw.open = 0;
            continue;
        }
        nap(o.poll);
    }
    { /* a stop: wait for the broker's confirmations, then keep the offset they reach */
        double end = fmq_mono() + o.confirm_timeout;
        while (fmq_mq_pending(fw.mq) > 0 && fmq_mono() < end) nap(0.01);
        commit(&fw, 1);
    }
    rc = 0;
done:
    fmq_log(FMQ_LOG_INFO, "stopped: %llu records published, %llu not publishable; %d unconfirmed",
            fw.published, fw.failed, fw.mq ? fmq_mq_pending(fw.mq) : 0);
    if (fw.open) fmq_connlog_close(&fw.r);
    fmq_mq_destroy(fw.mq);
    return rc;
}
