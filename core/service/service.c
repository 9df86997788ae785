/* Signals, log file and systemd notifications for the daemons (see service.h). Handlers only
 * set flags: the daemon's loop reads them every turn (at most 200 ms apart) and does the work
 * on its own thread. sd_notify is a no-op outside systemd ($NOTIFY_SOCKET unset). */
#include "fedmq/service.h"

#include "fedmq/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef FMQ_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static volatile sig_atomic_t stop_flag, reload_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    reload_flag = 1;
}

/* No SA_RESTART needed: every wait in the daemons is a timed one. */
static void handle(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

void fmq_service_init(void)
{
    handle(SIGHUP, on_hup);
    handle(SIGPIPE, SIG_IGN);
}

void fmq_service_catch_stop(void)
{
    handle(SIGTERM, on_stop);
    handle(SIGINT, on_stop);
}

const volatile sig_atomic_t *fmq_service_stop_flag(void)
{
    return &stop_flag;
}

int fmq_service_stopping(void)
{
    return stop_flag != 0;
}

int fmq_service_take_reload(void)
{
    if (!reload_flag) return 0;
    reload_flag = 0;
    return 1;
}

int fmq_service_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fmq_log(FMQ_LOG_ERROR, "%s: cannot open log file: %s", path, strerror(errno));
        return FMQ_EIO;
    }
    fflush(stderr);
    if (fd != STDERR_FILENO) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            int e = errno;
            close(fd);
            fmq_log(FMQ_LOG_ERROR, "%s: cannot log there: %s", path, strerror(e));
            return FMQ_EIO;
        }
        close(fd);
    }
    return 0;
}

#ifdef FMQ_HAVE_SYSTEMD
static double watchdog_every = -1; /* seconds between pings; 0 = no watchdog; -1 = not asked */
static double last_ping;

void fmq_service_ready(const char *status)
{
    if (status)
        sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    else
        sd_notify(0, "READY=1");
}

void fmq_service_status(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", buf);
}

void fmq_service_alive(void)
{
    double now = fmq_mono();
    if (watchdog_every < 0) {
        uint64_t usec = 0;
        watchdog_every = sd_watchdog_enabled(0, &usec) > 0 ? (double)usec / 2e6 : 0;
    }
    if (watchdog_every <= 0 || now - last_ping < watchdog_every) return;
    last_ping = now;
    sd_notify(0, "WATCHDOG=1");
}

void fmq_service_reloading(int begin)
{
    sd_notify(0, begin ? "RELOADING=1" : "READY=1");
}

void fmq_service_stopping_notify(void)
{
    sd_notify(0, "STOPPING=1");
}

int fmq_service_has_systemd(void)
{
    return 1;
}
#else
void fmq_service_ready(const char *status)
{
    (void)status;
}

void fmq_service_status(const char *fmt, ...)
{
    (void)fmt;
}

void fmq_service_alive(void) {}

void fmq_service_reloading(int begin)
{
    (void)begin;
}

void fmq_service_stopping_notify(void) {}

int fmq_service_has_systemd(void)
{
    return 0;
}
#endif
