/* Coordinator settings: `key = value` from a file or --key flags (deploy/coordinator.conf.example
 * documents each), shared by fedmq-coordinator and the in-process simulator fedmq-sim. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "fedmq/config.h"
#include "fedmq/version.h"

/* Strategy parameters given in the config override the chosen strategy's defaults whatever
 * their order, so they are collected here (NAN = not given) and applied after parsing. */
static struct {
    double eta, eta_l, beta_1, beta_2, tau, server_lr, server_momentum, proximal_mu, uniform;
} over = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN},
  overs_none = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};

void coord_cfg_finish(struct coord_cfg *c)
{
    struct fmq_strategy_params *p = &c->sp;
    fmq_strategy_defaults(c->strategy, p);
    if (!isnan(over.eta)) p->eta = over.eta;
    if (!isnan(over.eta_l)) p->eta_l = over.eta_l;
    if (!isnan(over.beta_1)) p->beta_1 = over.beta_1;
    if (!isnan(over.beta_2)) p->beta_2 = over.beta_2;
    if (!isnan(over.tau)) p->tau = over.tau;
    if (!isnan(over.server_lr)) p->server_lr = over.server_lr;
    if (!isnan(over.server_momentum)) p->server_momentum = over.server_momentum;
    if (!isnan(over.proximal_mu)) p->proximal_mu = over.proximal_mu;
    if (!isnan(over.uniform)) p->uniform = over.uniform > 0;
    over = overs_none; /* the next configuration starts afresh */
}
const char *const coord_bool_keys[] = {
    "check",         "sensing",    "tls_verify_hostname",   "stochastic_rounding",
    "agent_metrics", "update_ids", "gsfs_staleness_weight", "gsfs_informativeness",
    "gsfs_memory",   "giot_head",  "calib_round",           "summary",
    "secure_agg",    NULL};

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

int coord_cfg_set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    struct coord_cfg *c = ud;
    long l;
    int rc;

    if (!*k) {
        snprintf(err, errlen, "unexpected argument");
        return FMQ_EINVAL;
    }
    if (fmq_tls_cfg_set(&c->tls, k, v, &rc)) return rc;
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
        else if (!strcmp(v, "giot"))
            c->model.kind = FMQ_MODEL_GIOT;
        else {
            snprintf(err, errlen, "expected mlp, logreg or giot");
            return FMQ_EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "strategy")) {
        if (fmq_strategy_parse(v, &c->strategy) == 0) return 0;
        snprintf(err, errlen,
                 "expected fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad, "
                 "fedopt or gsfs");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "eta")) return fmq_parse_double(v, 1e-9, 100, &over.eta);
    if (!strcmp(k, "eta_l")) return fmq_parse_double(v, 0, 10, &over.eta_l);
    if (!strcmp(k, "beta_1")) return fmq_parse_double(v, 0, 0.9999, &over.beta_1);
    if (!strcmp(k, "beta_2")) return fmq_parse_double(v, 0, 0.9999, &over.beta_2);
    if (!strcmp(k, "tau")) return fmq_parse_double(v, 0, 10, &over.tau);
    if (!strcmp(k, "server_lr")) return fmq_parse_double(v, 1e-6, 100, &over.server_lr);
    if (!strcmp(k, "server_momentum")) return fmq_parse_double(v, 0, 0.9999, &over.server_momentum);
    if (!strcmp(k, "proximal_mu")) return fmq_parse_double(v, 0, 100, &over.proximal_mu);
    if (!strcmp(k, "fraction_fit")) return fmq_parse_double(v, 0.001, 1, &c->fraction_fit);
    if (!strcmp(k, "codec")) {
        if (fmq_codec_parse(v, &c->plan.codec) == 0) return 0;
        snprintf(err, errlen,
                 "expected dense-f32, dense-f16, dense-i8, topk-f32, topk-f16 or topk-i8");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "topk_ratio")) return fmq_parse_float(v, 1e-6, 1, &c->plan.ratio);
    if (!strcmp(k, "int8_block")) return fmq_parse_int(v, 8, 4096, &c->plan.block);
    if (!strcmp(k, "stochastic_rounding")) return fmq_parse_bool(v, &c->plan.stochastic);
    if (!strcmp(k, "agent_metrics")) return fmq_parse_bool(v, &c->plan.report);
    if (!strcmp(k, "personalise")) {
        if (!strcmp(v, "none"))
            c->plan.personal = FMQ_PERSONAL_NONE;
        else if (!strcmp(v, "finetune"))
            c->plan.personal = FMQ_PERSONAL_FINETUNE;
        else {
            snprintf(err, errlen, "expected none or finetune");
            return FMQ_EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "update_ids")) return fmq_parse_bool(v, &c->plan.ids);
    if (!strcmp(k, "update_envelope"))
        return fmq_parse_int(v, FMQ_WIRE_VERSION, FMQ_WIRE_UPDATE_COMPACT, &c->plan.envelope);
    if (!strcmp(k, "gsfs_alpha")) return fmq_parse_float(v, 0, 0.9999, &c->plan.alpha);
    if (!strcmp(k, "gsfs_beta")) return fmq_parse_float(v, 0, 100, &c->plan.beta);
    if (!strcmp(k, "gsfs_delta_perf")) return fmq_parse_float(v, 0, 1, &c->plan.delta_perf);
    if (!strcmp(k, "gsfs_eval_every")) return fmq_parse_int(v, 1, 100000, &c->plan.eval_every);
    if (!strcmp(k, "gsfs_warmup")) return fmq_parse_int(v, 0, 100000, &c->plan.warmup);
    if (!strcmp(k, "gsfs_max_uploads")) return fmq_parse_int(v, 0, 100000, &c->plan.max_uploads);
    if (!strcmp(k, "gsfs_quorum")) return fmq_parse_double(v, 0.01, 1, &c->gsfs.quorum);
    if (!strcmp(k, "gsfs_quorum_examples"))
        return fmq_parse_double(v, 0, 1, &c->gsfs.quorum_examples);
    if (!strcmp(k, "gsfs_freq_window")) return fmq_parse_int(v, 1, 100000, &c->gsfs.freq_window);
    if (!strcmp(k, "gsfs_max_staleness")) return fmq_parse_int(v, 0, 1000, &c->gsfs.max_staleness);
    if (!strcmp(k, "gsfs_staleness_weight")) return fmq_parse_bool(v, &c->gsfs.staleness_weight);
    if (!strcmp(k, "gsfs_informativeness")) return fmq_parse_bool(v, &c->gsfs.informativeness);
    if (!strcmp(k, "gsfs_outlier_norm")) return fmq_parse_double(v, 1, 1000, &c->gsfs.outlier_norm);
    if (!strcmp(k, "gsfs_min_cosine")) return fmq_parse_double(v, -1, 1, &c->gsfs.min_cosine);
    if (!strcmp(k, "sensing")) return fmq_parse_bool(v, &c->sensing);
    if (!strcmp(k, "sensing_upload_share"))
        return fmq_parse_double(v, 0.01, 1, &c->sensing_p.upload_share);
    if (!strcmp(k, "sensing_margin")) return fmq_parse_double(v, 0, 0.9, &c->sensing_p.margin);
    if (!strcmp(k, "gsfs_memory")) return fmq_parse_bool(v, &c->gsfs.memory);
    if (!strcmp(k, "gsfs_weighting")) {
        if (!strcmp(v, "frequency"))
            c->gsfs.weight_examples = 0;
        else if (!strcmp(v, "frequency-examples"))
            c->gsfs.weight_examples = 1;
        else {
            snprintf(err, errlen, "expected frequency or frequency-examples");
            return FMQ_EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "weighting")) {
        if (!strcmp(v, "examples"))
            over.uniform = 0;
        else if (!strcmp(v, "uniform"))
            over.uniform = 1;
        else {
            snprintf(err, errlen, "expected examples or uniform");
            return FMQ_EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "hidden")) return parse_hidden(&c->model, v, err, errlen);
    if (!strcmp(k, "giot_layers")) return fmq_parse_int(v, 1, 64, &c->giot.layers);
    if (!strcmp(k, "giot_heads")) return fmq_parse_int(v, 1, 64, &c->giot.heads);
    if (!strcmp(k, "giot_channels")) return fmq_parse_int(v, 4, 4096, &c->giot.channels);
    if (!strcmp(k, "giot_context")) return fmq_parse_int(v, 1, 64, &c->giot_context);
    if (!strcmp(k, "robust")) {
        if (fmq_robust_parse(v, &c->robust) == 0) return 0;
        snprintf(err, errlen,
                 "expected none, clip, median, trimmed-mean, multi-krum, krum-filter, geomedian or "
                 "geomed-filter");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "secure_agg")) return fmq_parse_bool(v, &c->secure_agg);
    if (!strcmp(k, "secagg_threshold")) return fmq_parse_double(v, 0.5, 1, &c->secagg_threshold);
    if (!strcmp(k, "secagg_min")) return fmq_parse_long(v, 2, FMQ_SECAGG_MAX_N, &c->secagg_min);
    if (!strcmp(k, "secagg_timeout")) return fmq_parse_double(v, 0.1, 3600, &c->secagg_timeout);
    if (!strcmp(k, "secagg_clip")) return fmq_parse_double(v, 1e-3, 1e3, &c->secagg_clip);
    if (!strcmp(k, "dp_clip")) return fmq_parse_double(v, 0, 1e6, &c->dp_clip);
    if (!strcmp(k, "dp_noise")) return fmq_parse_double(v, 0, 1e3, &c->dp_noise);
    if (!strcmp(k, "dp_delta")) return fmq_parse_double(v, 1e-12, 0.1, &c->dp_delta);
    if (!strcmp(k, "dp_epsilon_max")) return fmq_parse_double(v, 0, 1e6, &c->dp_epsilon_max);
    if (!strcmp(k, "robust_clip")) return fmq_parse_double(v, 1.0, 1000, &c->robust_clip);
    if (!strcmp(k, "robust_trim")) return fmq_parse_double(v, 0, 0.49, &c->robust_trim);
    if (!strcmp(k, "robust_f")) return fmq_parse_double(v, 0, 0.49, &c->robust_f);
    if (!strcmp(k, "robust_krum_tau")) return fmq_parse_double(v, 1.0, 1e6, &c->robust_krum_tau);
    if (!strcmp(k, "robust_krum_cosine")) return fmq_parse_double(v, -1, 0.99, &c->robust_krum_cos);
    if (!strcmp(k, "robust_majority")) return fmq_parse_double(v, 0.5, 1, &c->robust_majority);
    if (!strcmp(k, "count_cap")) {
        if ((rc = fmq_parse_double(v, 0, 1e6, &c->count_cap)) == 0 && c->count_cap > 0 &&
            c->count_cap < 1) {
            snprintf(err, errlen, "0 (off) or at least 1 (x the round's median count)");
            return FMQ_EINVAL;
        }
        return rc;
    }
    if (!strcmp(k, "max_update_norm")) return fmq_parse_double(v, 0, 1e30, &c->max_update_norm);
    if (!strcmp(k, "max_step_norm")) return fmq_parse_double(v, 0, 1e30, &c->max_step_norm);
    if (!strcmp(k, "giot_head")) return fmq_parse_bool(v, &c->giot_head);
    if (!strcmp(k, "giot_lr")) return fmq_parse_double(v, 1e-7, 1, &c->giot_lr);
    if (!strcmp(k, "lora_rank")) return fmq_parse_int(v, 0, 256, &c->lora_rank);
    if (!strcmp(k, "lora_alpha")) return fmq_parse_float(v, 1e-3f, 1e4f, &c->lora_alpha);
    if (!strcmp(k, "init_model")) return fmq_config_str(c->init_model, sizeof c->init_model, v);
    if (!strcmp(k, "state_file")) return fmq_config_str(c->state_file, sizeof c->state_file, v);
    if (!strcmp(k, "model_out")) return fmq_config_str(c->model_out, sizeof c->model_out, v);
    if (!strcmp(k, "eval_max")) return fmq_parse_long(v, 0, 100000000, &c->eval_max);
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
    if (!strcmp(k, "round_interval")) return fmq_parse_double(v, 0, 86400 * 7, &c->round_interval);
    if (!strcmp(k, "republish")) return fmq_parse_double(v, 0, 86400, &c->republish);
    if (!strcmp(k, "resume_wait")) return fmq_parse_double(v, 0, 600, &c->resume_wait);
    if (!strcmp(k, "silent_rounds")) return fmq_parse_long(v, 0, 1000000, &c->silent_rounds);
    if (!strcmp(k, "threshold")) return fmq_parse_double(v, 0, 1, &c->threshold);
    if (!strcmp(k, "fp_budget")) return fmq_parse_double(v, 1e-6, 0.5, &c->fp_budget);
    if (!strcmp(k, "calib_round")) return fmq_parse_bool(v, &c->calib_round);
    if (!strcmp(k, "rule_min_benign")) return fmq_parse_long(v, 1, 100000000, &c->rule_min_benign);
    if (!strcmp(k, "test_from")) return fmq_parse_double(v, 0, 0.999, &c->test_from);
    if (!strcmp(k, "test")) {
        if (c->ntest == COORD_MAX_TEST) {
            snprintf(err, errlen, "at most %d test files", COORD_MAX_TEST);
            return FMQ_EINVAL;
        }
        return fmq_config_str(c->test[c->ntest++], sizeof c->test[0], v);
    }
    if (!strcmp(k, "log_level")) return fmq_log_level_parse(v, &c->log_level);
    if (!strcmp(k, "log_file")) return fmq_config_str(c->log_file, sizeof c->log_file, v);
    if (!strcmp(k, "summary")) return fmq_parse_bool(v, &c->summary);
    snprintf(err, errlen,
             "unknown setting (see fedmq-coordinator(1) and %s/coordinator.conf.example)",
             FMQ_CONFIG_DIR);
    return FMQ_EINVAL;
}
