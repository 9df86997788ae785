/* Process plumbing the two daemons share when they run as services: signals (SIGTERM/SIGINT
 * stop, SIGHUP asks to reopen files), the log file, and systemd's notify protocol (READY=1,
 * STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1) through libsystemd's sd_notify when the build
 * found it (FMQ_HAVE_SYSTEMD), otherwise silent no-ops. Linked by fedmq-agent and
 * fedmq-coordinator only: the libraries, fedmq-sim and the broker plugin never touch signals. */
#ifndef FMQ_SERVICE_H
#define FMQ_SERVICE_H

#include <signal.h>

/* SIGHUP sets the reload flag and SIGPIPE is ignored from now on. Call first in main. */
void fmq_service_init(void);
/* SIGTERM and SIGINT set the stop flag from now on (before this, their default: exit at once). */
void fmq_service_catch_stop(void);
/* The stop flag (lives as long as the process; borrowed by loops that must end on SIGTERM). */
const volatile sig_atomic_t *fmq_service_stop_flag(void);
int fmq_service_stopping(void);
/* 1 once for every batch of SIGHUPs received since the last call, else 0. */
int fmq_service_take_reload(void);

/* Sends this process's stderr (where fmq_log_use_stderr writes) to path: opened for append,
 * created mode 0640. Call it again to reopen after logrotate moved the file away; on failure
 * the old destination stays and an error is logged. Returns 0 or FMQ_EIO. */
int fmq_service_log_file(const char *path);

/* systemd: the service is up (READY=1) with a status line (may be NULL). */
void fmq_service_ready(const char *status);
/* systemd STATUS= line, printf-style. */
void fmq_service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Watchdog keep-alive: call every loop turn; sends WATCHDOG=1 at most every half of
 * WatchdogSec (cheap otherwise, and nothing when the unit has no watchdog). */
void fmq_service_alive(void);
/* RELOADING=1 (begin, 1) or READY=1 (done, 0) around a SIGHUP's work. */
void fmq_service_reloading(int begin);
/* STOPPING=1: shutdown began. */
void fmq_service_stopping_notify(void);
/* 1 when built with libsystemd (Type=notify units), 0 otherwise. */
int fmq_service_has_systemd(void);

#endif
