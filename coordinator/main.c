/* fedmq-coordinator entry point: configuration from file and flags, signals, the loop. It exits
 * 0 after `rounds` training rounds (0 = run until SIGINT/SIGTERM). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "coord.h"
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
    return coord_cfg_set(ud, k, v, err, errlen);
}

int main(int argc, char **argv)
{
    static struct coord c;
    struct coord_cfg cfg;
    int rc;

    coord_cfg_default(&cfg);
    fmq_log_use_stderr("fedmq-coordinator", FMQ_LOG_INFO);
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: fedmq-coordinator [--config FILE] [--broker URI] [--task NAME]\n"
               "       [--model mlp|logreg|giot] [--hidden 32,16] [--rounds N] [--deadline S]\n"
               "       [--min-participants N] [--expected-agents N] [--test FILE]...\n"
               "settings are documented in deploy/coordinator.conf.example\n");
        return 0;
    }
    if (fmq_config_args(argc, argv, coord_bool_keys, set, &cfg) != 0) return 2;
    coord_cfg_finish(&cfg);
    fmq_log_use_stderr("fedmq-coordinator", cfg.log_level);
    if (check_only) {
        struct fmq_gpt_config gc = cfg.giot;
        int giot = cfg.model.kind == FMQ_MODEL_GIOT;
        gc.vocab = fmq_tok_vocab_size();
        gc.max_seq = 1 + FMQ_TOK_PER_FLOW * cfg.giot_context;
        gc.classes = cfg.giot_head ? 2 : 0;
        if (!fmq_id_valid(cfg.task) ||
            (giot ? fmq_gpt_config_check(&gc) : fmq_model_config_check(&cfg.model)) != 0) {
            fmq_log(FMQ_LOG_ERROR, "invalid task name or model configuration");
            return 2;
        }
        if (giot)
            printf("GIoT: %d layers, %d heads, %d channels, context %d flows, %zu parameters%s\n",
                   gc.layers, gc.heads, gc.channels, cfg.giot_context, fmq_gpt_param_count(&gc),
                   cfg.lora_rank ? ", LoRA adapters only" : "");
        printf("config ok: task %s, broker %s, model %s (%zu parameters), rounds %ld, "
               "deadline %.1f s, min participants %ld, %d test file(s), strategy %s (server_lr %g "
               "momentum %g eta %g eta_l %g beta_1 %g beta_2 %g tau %g mu %g, %s weights), "
               "codec %s\n",
               cfg.task, cfg.broker,
               giot                              ? "giot"
               : cfg.model.kind == FMQ_MODEL_MLP ? "mlp"
                                                 : "logreg",
               giot ? fmq_gpt_param_count(&gc) : fmq_model_param_count(&cfg.model), cfg.rounds,
               cfg.deadline, cfg.min_participants, cfg.ntest, fmq_strategy_name(cfg.strategy),
               cfg.sp.server_lr, cfg.sp.server_momentum, cfg.sp.eta, cfg.sp.eta_l, cfg.sp.beta_1,
               cfg.sp.beta_2, cfg.sp.tau, cfg.sp.proximal_mu,
               cfg.sp.uniform ? "uniform" : "example-count", fmq_codec_name(cfg.plan.codec));
        printf("defences: robust %s, count cap %g x median, max update norm %g, max step norm "
               "%g, DP clip %g noise %g delta %g epsilon max %g\n",
               fmq_robust_name(cfg.robust), cfg.count_cap, cfg.max_update_norm, cfg.max_step_norm,
               cfg.dp_clip, cfg.dp_noise, cfg.dp_delta, cfg.dp_epsilon_max);
        return 0;
    }
    if ((rc = coord_init(&c, &cfg)) != 0) {
        fmq_log(FMQ_LOG_ERROR, "cannot start: %s", fmq_strerror(rc));
        coord_free(&c);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (coord_connect(&c) != 0) {
        coord_free(&c);
        return 1;
    }
    while (!stop && !c.done) coord_step(&c, 200);
    fmq_mq_flush(c.mq, 5.0);
    coord_print_summary(&c, stdout);
    fmq_log(FMQ_LOG_INFO,
            "stopped after %llu rounds at v%llu; up %llu B, down %llu B; peak RSS %ld kB",
            (unsigned long long)c.round, (unsigned long long)c.version,
            (unsigned long long)c.bytes_up_total, (unsigned long long)c.bytes_down_total,
            fmq_peak_rss_kb());
    coord_free(&c);
    return 0;
}
