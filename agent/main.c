/* fedmq-agent entry point: configuration from file and flags, signals, the loop.
 * Usage: fedmq-agent --id NAME [--config FILE] [--broker URI] [--sensors FILTER]...
 * As a service: SIGTERM/SIGINT stop it in every state (also while the broker is not up yet:
 * connecting retries forever), SIGHUP reopens log_file; readiness and the watchdog go to
 * systemd through core/service (fedmq-agent@.service). */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "fedmq/config.h"
#include "fedmq/service.h"
#include "fedmq/version.h"

static int check_only;

static int set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    if (!strcmp(k, "check")) return fmq_parse_bool(v, &check_only);
    return agent_cfg_set(ud, k, v, err, errlen);
}

static void usage(void)
{
    printf("usage: fedmq-agent --id NAME [--config FILE] [--broker URI] [--task NAME]\n"
           "       [--sensors FILTER]... [--threshold P] [--buffer N] [--min-train N]\n"
           "       [--epochs N] [--batch N] [--lr X] [--optimizer adam|sgd] [--seed N]\n"
           "       [--log-file FILE] [--log-level error|warn|info|debug] [--check]\n"
           "       fedmq-agent --version | --help\n"
           "\n"
           "One fedmq site: scores the flows its Zeek sensors publish, trains on them when the\n"
           "coordinator asks, and sends model updates (never the flows) over MQTT.\n"
           "Every setting is a `key = value` line in the --config file or a --key value flag\n"
           "(later flags override the file); --check validates and prints them, then exits.\n"
           "The settings are documented in %s/agent.conf.example\n"
           "and in fedmq-agent(1). As a service: systemctl start fedmq-agent@SITE reads\n"
           "%s/agent-SITE.conf.\n"
           "Signals: SIGTERM/SIGINT stop (exit 0); SIGHUP reopens log_file.\n"
           "Exit: 0 stopped, 1 cannot start, 2 bad configuration.\n",
           FMQ_CONFIG_DIR, FMQ_CONFIG_DIR);
}

/* SIGHUP: what can change without a restart (today the log file) is reopened. */
static void reload(const struct agent_cfg *cfg)
{
    fmq_service_reloading(1);
    if (cfg->log_file[0] && fmq_service_log_file(cfg->log_file) == 0)
        fmq_log(FMQ_LOG_INFO, "SIGHUP: reopened log file %s", cfg->log_file);
    else
        fmq_log(FMQ_LOG_INFO, "SIGHUP: no log file to reopen (settings change with a restart)");
    fmq_service_reloading(0);
}

int main(int argc, char **argv)
{
    static struct agent a;
    struct agent_cfg cfg;
    struct fmq_mq_stats st;
    char prefix[96];
    int rc;

    fmq_service_init(); /* a SIGHUP from here on never kills the agent */
    agent_cfg_default(&cfg);
    fmq_log_use_stderr("fedmq-agent", FMQ_LOG_INFO);
    if (fmq_config_has_flag(argc, argv, "--help", "-h")) {
        usage();
        return 0;
    }
    if (fmq_config_has_flag(argc, argv, "--version", "-V")) {
        printf("fedmq-agent %s\n", FMQ_VERSION);
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
    if (cfg.log_file[0] && fmq_service_log_file(cfg.log_file) != 0) return 1;
    snprintf(prefix, sizeof prefix, "fedmq-agent[%s]", cfg.id);
    fmq_log_use_stderr(prefix, cfg.log_level);
    if ((rc = agent_init(&a, &cfg)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot start: %s", fmq_strerror(rc));
        agent_free(&a);
        return 1;
    }
    fmq_service_catch_stop();
    agent_set_stop(&a, fmq_service_stop_flag());
    /* Ready once configured: waiting for the broker is a normal state, not a failed start. */
    fmq_service_ready("connecting to the broker");
    while (!fmq_service_stopping() && (rc = agent_connect(&a, 0.5)) == FMQ_ETIMEOUT) {
        if (fmq_service_take_reload()) reload(&cfg);
        fmq_service_alive();
    }
    if (rc != 0 && !fmq_service_stopping()) {
        fmq_log(FMQ_LOG_ERROR, "cannot connect to %s: %s", cfg.broker, fmq_strerror(rc));
        agent_free(&a);
        return 1;
    }
    if (rc == 0) fmq_service_status("connected to %s", cfg.broker);
    while (!fmq_service_stopping()) {
        agent_step(&a, 200);
        if (fmq_service_take_reload()) reload(&cfg);
        fmq_service_alive();
    }
    fmq_service_stopping_notify();
    if (rc == 0 && a.cfg.stop_drain > 0) {
        size_t handled, left = agent_drain(&a, a.cfg.stop_drain, &handled);
        if (left)
            fmq_log(FMQ_LOG_WARN,
                    "stopping: %zu received messages left unhandled after stop_drain %.3g s "
                    "(%zu handled)",
                    left, a.cfg.stop_drain, handled);
        else if (handled)
            fmq_log(FMQ_LOG_INFO, "stopping: handled the %zu messages already received", handled);
    }
    if (rc == 0) {
        agent_publish_status(&a, "offline");
        /* acknowledgements cannot come while the link is down: do not wait for them then */
        if (fmq_mq_connected(a.mq)) fmq_mq_flush(a.mq, 2.0);
    }
    fmq_mq_get_stats(a.mq, &st);
    fmq_log(FMQ_LOG_INFO,
            "stopped: %llu flows (%llu labelled), %llu alerts, %llu updates, %llu bad messages, "
            "%llu publishes waited for the link, %llu dropped unsent; peak RSS %ld kB",
            (unsigned long long)a.flows, (unsigned long long)a.labelled,
            (unsigned long long)a.alerts, (unsigned long long)a.updates, (unsigned long long)a.bad,
            (unsigned long long)st.publish_waits, (unsigned long long)st.publish_dropped,
            fmq_peak_rss_kb());
    agent_free(&a);
    return 0;
}
