/* fedmq-coordinator entry point: configuration from file and flags, signals, the loop. It exits
 * 0 after `rounds` training rounds (0 = run until SIGINT/SIGTERM). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "fedmq/config.h"

static volatile sig_atomic_t stop;
static int check_only;
static const char *const bool_keys[] = {"check", NULL};

static void on_signal(int sig)
{
    stop = 1;
}

static int parse_hidden(struct fmq_model_config *m, const char *v, char *err, size_t errlen)
{
    char tmp[128], *save = NULL, *tok;
    long l;
    if (fmq_config_str(tmp, sizeof tmp, v)) return FMQ_EINVAL;
    m->n_hidden = 0;
    for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (m->n_hidden == FMQ_MLP_MAXHIDDEN || fmq_parse_long(tok, 1, 4096, &l)) {
            snprintf(err, errlen, "expected up to %d comma-separated widths in [1,4096]",
                     FMQ_MLP_MAXHIDDEN);
            return FMQ_EINVAL;
        }
        m->hidden[m->n_hidden++] = (int)l;
    }
    return 0;
}

static int set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    struct coord_cfg *c = ud;
    long l;
    int rc;

    if (!*k) {
        snprintf(err, errlen, "unexpected argument");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "check")) return fmq_parse_bool(v, &check_only);
    if (!strcmp(k, "broker")) return fmq_config_str(c->broker, sizeof c->broker, v);
    if (!strcmp(k, "task")) return fmq_config_str(c->task, sizeof c->task, v);
    if (!strcmp(k, "topic_root")) return fmq_config_str(c->root, sizeof c->root, v);
    if (!strcmp(k, "client_id")) return fmq_config_str(c->client_id, sizeof c->client_id, v);
    if (!strcmp(k, "metrics_file"))
        return fmq_config_str(c->metrics_file, sizeof c->metrics_file, v);
    if (!strcmp(k, "model")) {
        if (!strcmp(v, "mlp"))
            c->model.kind = FMQ_MODEL_MLP;
        else if (!strcmp(v, "logreg"))
            c->model.kind = FMQ_MODEL_LOGREG, c->model.n_hidden = 0;
        else {
            snprintf(err, errlen, "expected mlp or logreg");
            return FMQ_EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "weighting")) {
        if (!strcmp(v, "examples"))
            c->uniform = 0;
        else if (!strcmp(v, "uniform"))
            c->uniform = 1;
        else {
            snprintf(err, errlen, "expected examples or uniform");
            return FMQ_EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "hidden")) return parse_hidden(&c->model, v, err, errlen);
    if (!strcmp(k, "window")) return fmq_parse_int(v, 1, FMQ_FEAT_MAXWIN, &c->model.window);
    if (!strcmp(k, "seed")) {
        rc = fmq_parse_long(v, 0, 0x7fffffffL, &l);
        c->seed = (uint64_t)l;
        return rc;
    }
    if (!strcmp(k, "rounds")) return fmq_parse_long(v, 0, 1000000, &c->rounds);
    if (!strcmp(k, "min_participants"))
        return fmq_parse_long(v, 1, COORD_MAX_AGENTS, &c->min_participants);
    if (!strcmp(k, "expected_agents"))
        return fmq_parse_long(v, 0, COORD_MAX_AGENTS, &c->expected_agents);
    if (!strcmp(k, "deadline")) return fmq_parse_double(v, 0.1, 86400, &c->deadline);
    if (!strcmp(k, "server_lr")) return fmq_parse_double(v, 1e-6, 100, &c->server_lr);
    if (!strcmp(k, "threshold")) return fmq_parse_double(v, 0, 1, &c->threshold);
    if (!strcmp(k, "test_from")) return fmq_parse_double(v, 0, 0.999, &c->test_from);
    if (!strcmp(k, "test")) {
        if (c->ntest == COORD_MAX_TEST) {
            snprintf(err, errlen, "at most %d test files", COORD_MAX_TEST);
            return FMQ_EINVAL;
        }
        return fmq_config_str(c->test[c->ntest++], sizeof c->test[0], v);
    }
    if (!strcmp(k, "log_level")) return fmq_log_level_parse(v, &c->log_level);
    snprintf(err, errlen, "unknown setting (see deploy/coordinator.conf.example)");
    return FMQ_EINVAL;
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
               "       [--model mlp|logreg] [--hidden 32,16] [--rounds N] [--deadline S]\n"
               "       [--min-participants N] [--expected-agents N] [--test FILE]...\n"
               "settings are documented in deploy/coordinator.conf.example\n");
        return 0;
    }
    if (fmq_config_args(argc, argv, bool_keys, set, &cfg) != 0) return 2;
    fmq_log_use_stderr("fedmq-coordinator", cfg.log_level);
    if (check_only) {
        if (!fmq_id_valid(cfg.task) || fmq_model_config_check(&cfg.model) != 0) {
            fmq_log(FMQ_LOG_ERROR, "invalid task name or model configuration");
            return 2;
        }
        printf("config ok: task %s, broker %s, model %s (%zu parameters), rounds %ld, "
               "deadline %.1f s, min participants %ld, %d test file(s)\n",
               cfg.task, cfg.broker, cfg.model.kind == FMQ_MODEL_MLP ? "mlp" : "logreg",
               fmq_model_param_count(&cfg.model), cfg.rounds, cfg.deadline, cfg.min_participants,
               cfg.ntest);
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
