/* fedmq-coordinator entry point: configuration from file and flags, signals, the loop. It exits
 * 0 after `rounds` training rounds (0 = run until SIGINT/SIGTERM). As a service: SIGTERM/SIGINT
 * stop it in every state (also while the broker is not up yet: connecting retries forever),
 * SIGHUP reopens log_file and metrics_file; readiness and the watchdog go to systemd through
 * core/service (fedmq-coordinator.service). */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "coord.h"
#include "fedmq/config.h"
#include "fedmq/service.h"
#include "fedmq/version.h"

static int check_only;

static int set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    if (!strcmp(k, "check")) return fmq_parse_bool(v, &check_only);
    return coord_cfg_set(ud, k, v, err, errlen);
}

static void usage(void)
{
    printf("usage: fedmq-coordinator [--config FILE] [--broker URI] [--task NAME]\n"
           "       [--model mlp|logreg|giot] [--hidden 32,16] [--rounds N] [--deadline S]\n"
           "       [--min-participants N] [--expected-agents N] [--test FILE]...\n"
           "       [--state-file FILE] [--metrics-file FILE] [--log-file FILE]\n"
           "       [--log-level error|warn|info|debug] [--summary] [--check]\n"
           "       fedmq-coordinator --version | --help\n"
           "\n"
           "Runs federated training rounds for one task: publishes the global model, collects\n"
           "the agents' updates, aggregates them and scores each model on the --test logs.\n"
           "Every setting is a `key = value` line in the --config file or a --key value flag\n"
           "(later flags override the file); --check validates and prints them, then exits.\n"
           "The settings are documented in %s/coordinator.conf.example\n"
           "(coordinator-prod.conf.example: TLS and every defence) and in fedmq-coordinator(1).\n"
           "As a service: systemctl start fedmq-coordinator reads %s/coordinator.conf.\n"
           "--summary prints the round table to stdout on exit.\n"
           "Signals: SIGTERM/SIGINT stop (exit 0); SIGHUP reopens log_file and metrics_file.\n"
           "Exit: 0 done or stopped, 1 cannot start, 2 bad configuration.\n",
           FMQ_CONFIG_DIR, FMQ_CONFIG_DIR);
}

/* SIGHUP: what can change without a restart (the log and metrics files) is reopened. */
static void reload(struct coord *c, const struct coord_cfg *cfg)
{
    fmq_service_reloading(1);
    if (cfg->log_file[0] && fmq_service_log_file(cfg->log_file) == 0)
        fmq_log(FMQ_LOG_INFO, "SIGHUP: reopened log file %s", cfg->log_file);
    coord_reopen(c);
    if (!cfg->log_file[0] && !cfg->metrics_file[0])
        fmq_log(FMQ_LOG_INFO, "SIGHUP: no log or metrics file to reopen (settings change with "
                              "a restart)");
    fmq_service_reloading(0);
}

static int check(const struct coord_cfg *cfg)
{
    struct fmq_gpt_config gc = cfg->giot;
    int giot = cfg->model.kind == FMQ_MODEL_GIOT;
    gc.vocab = fmq_tok_vocab_size();
    gc.max_seq = 1 + FMQ_TOK_PER_FLOW * cfg->giot_context;
    gc.classes = cfg->giot_head ? 2 : 0;
    if (!fmq_id_valid(cfg->task) ||
        (giot ? fmq_gpt_config_check(&gc) : fmq_model_config_check(&cfg->model)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "invalid task name or model configuration");
        return 2;
    }
    if (giot)
        printf("GIoT: %d layers, %d heads, %d channels, context %d flows, %zu parameters%s\n",
               gc.layers, gc.heads, gc.channels, cfg->giot_context, fmq_gpt_param_count(&gc),
               cfg->lora_rank ? ", LoRA adapters only" : "");
    printf("config ok: task %s, broker %s, model %s (%zu parameters), rounds %ld, "
           "deadline %.1f s, min participants %ld, %d test file(s), strategy %s (server_lr %g "
           "momentum %g eta %g eta_l %g beta_1 %g beta_2 %g tau %g mu %g, %s weights), "
           "codec %s\n",
           cfg->task, cfg->broker,
           giot                               ? "giot"
           : cfg->model.kind == FMQ_MODEL_MLP ? "mlp"
                                              : "logreg",
           giot ? fmq_gpt_param_count(&gc) : fmq_model_param_count(&cfg->model), cfg->rounds,
           cfg->deadline, cfg->min_participants, cfg->ntest, fmq_strategy_name(cfg->strategy),
           cfg->sp.server_lr, cfg->sp.server_momentum, cfg->sp.eta, cfg->sp.eta_l, cfg->sp.beta_1,
           cfg->sp.beta_2, cfg->sp.tau, cfg->sp.proximal_mu,
           cfg->sp.uniform ? "uniform" : "example-count", fmq_codec_name(cfg->plan.codec));
    printf("defences: robust %s, count cap %g x median, max update norm %g, max step norm "
           "%g, DP clip %g noise %g delta %g epsilon max %g\n",
           fmq_robust_name(cfg->robust), cfg->count_cap, cfg->max_update_norm, cfg->max_step_norm,
           cfg->dp_clip, cfg->dp_noise, cfg->dp_delta, cfg->dp_epsilon_max);
    return 0;
}

int main(int argc, char **argv)
{
    static struct coord c;
    struct coord_cfg cfg;
    int rc;

    fmq_service_init(); /* a SIGHUP from here on never kills the coordinator */
    coord_cfg_default(&cfg);
    fmq_log_use_stderr("fedmq-coordinator", FMQ_LOG_INFO);
    if (fmq_config_has_flag(argc, argv, "--help", "-h")) {
        usage();
        return 0;
    }
    if (fmq_config_has_flag(argc, argv, "--version", "-V")) {
        printf("fedmq-coordinator %s\n", FMQ_VERSION);
        return 0;
    }
    if (fmq_config_args(argc, argv, coord_bool_keys, set, &cfg) != 0) return 2;
    coord_cfg_finish(&cfg);
    fmq_log_use_stderr("fedmq-coordinator", cfg.log_level);
    if (check_only) return check(&cfg);
    if (cfg.log_file[0] && fmq_service_log_file(cfg.log_file) != 0) return 1;
    if ((rc = coord_init(&c, &cfg)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot start: %s", fmq_strerror(rc));
        coord_free(&c);
        return 1;
    }
    fmq_service_catch_stop();
    /* Ready once configured: waiting for the broker is a normal state, not a failed start. */
    fmq_service_ready("connecting to the broker");
    while (!fmq_service_stopping() && (rc = coord_connect(&c, 0.5)) == FMQ_ETIMEOUT) {
        if (fmq_service_take_reload()) reload(&c, &cfg);
        fmq_service_alive();
    }
    if (rc != 0 && !fmq_service_stopping()) {
        fmq_log(FMQ_LOG_ERROR, "cannot connect to %s: %s", cfg.broker, fmq_strerror(rc));
        coord_free(&c);
        return 1;
    }
    if (rc == 0)
        fmq_service_status("connected to %s; round %llu", cfg.broker, (unsigned long long)c.round);
    while (!fmq_service_stopping() && !c.done) {
        coord_step(&c, 200);
        if (fmq_service_take_reload()) reload(&c, &cfg);
        fmq_service_alive();
    }
    fmq_service_stopping_notify();
    /* acknowledgements cannot come while the link is down: do not wait for them then */
    if (rc == 0 && fmq_mq_connected(c.mq)) fmq_mq_flush(c.mq, 5.0);
    if (cfg.summary) coord_print_summary(&c, stdout);
    fmq_log(FMQ_LOG_INFO,
            "stopped after %llu rounds at v%llu; up %llu B, down %llu B; peak RSS %ld kB",
            (unsigned long long)c.round, (unsigned long long)c.version,
            (unsigned long long)c.bytes_up_total, (unsigned long long)c.bytes_down_total,
            fmq_peak_rss_kb());
    coord_free(&c);
    return 0;
}
