/* fedmq-agent entry point: configuration from file and flags, signal handling, the loop.
 * Usage: fedmq-agent --id NAME [--config FILE] [--broker URI] [--sensors FILTER]... */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "fedmq/config.h"

static volatile sig_atomic_t stop;
static int check_only;

static void on_signal(int sig)
{
    stop = 1;
}

static int set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    if (!strcmp(k, "check")) return fmq_parse_bool(v, &check_only);
    return agent_cfg_set(ud, k, v, err, errlen);
}

int main(int argc, char **argv)
{
    static struct agent a;
    struct agent_cfg cfg;
    char prefix[96];
    int rc;

    agent_cfg_default(&cfg);
    fmq_log_use_stderr("fedmq-agent", FMQ_LOG_INFO);
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: fedmq-agent --id NAME [--config FILE] [--broker URI] [--task NAME]\n"
               "       [--sensors FILTER]... [--threshold P] [--buffer N] [--min-train N]\n"
               "       [--epochs N] [--batch N] [--lr X] [--optimizer adam|sgd] [--seed N]\n"
               "settings are documented in deploy/agent.conf.example\n");
        return 0;
    }
    if (fmq_config_args(argc, argv, agent_bool_keys, set, &cfg) != 0) return 2;
    if (check_only) {
        if (!fmq_id_valid(cfg.id) || !fmq_id_valid(cfg.task)) {
            fmq_log(FMQ_LOG_ERROR, "id and task must be 1-63 characters of [A-Za-z0-9._-]");
            return 2;
        }
        printf("config ok: id %s, task %s, broker %s, %d sensor filter(s) (first %s), "
               "buffer %ld, threshold %.3f, %s lr %g, %d epochs, batch %d\n",
               cfg.id, cfg.task, cfg.broker, cfg.nsensors ? cfg.nsensors : 1,
               cfg.nsensors ? cfg.sensors[0] : "sensors/+/+/conn", cfg.buffer, cfg.threshold,
               cfg.train_opts.optim == FMQ_OPT_ADAM ? "adam" : "sgd", cfg.train_opts.lr,
               cfg.train_opts.epochs, cfg.train_opts.batch);
        return 0;
    }
    snprintf(prefix, sizeof prefix, "fedmq-agent[%s]", cfg.id);
    fmq_log_use_stderr(prefix, cfg.log_level);
    if ((rc = agent_init(&a, &cfg)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot start: %s", fmq_strerror(rc));
        agent_free(&a);
        return 1;
    }
    agent_set_stop(&a, &stop);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if ((rc = agent_connect(&a)) != 0) {
        agent_free(&a);
        return 1;
    }
    while (!stop) agent_step(&a, 200);
    agent_publish_status(&a, "offline");
    fmq_mq_flush(a.mq, 2.0);
    fmq_log(FMQ_LOG_INFO,
            "stopped: %llu flows (%llu labelled), %llu alerts, %llu updates, %llu bad messages, "
            "peak RSS %ld kB",
            (unsigned long long)a.flows, (unsigned long long)a.labelled,
            (unsigned long long)a.alerts, (unsigned long long)a.updates, (unsigned long long)a.bad,
            fmq_peak_rss_kb());
    agent_free(&a);
    return 0;
}
