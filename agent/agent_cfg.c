/* Agent settings: `key = value` from a file or --key flags (deploy/agent.conf.example documents
 * each), shared by fedmq-agent and the in-process simulator fedmq-sim. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "fedmq/config.h"
#include "fedmq/tokenize.h"
#include "fedmq/version.h"

const char *const agent_bool_keys[] = {
    "check",         "tls_verify_hostname",      "clean_session", "train",
    "calib_tighten", "calib_novelty_beyond_cap", "calib_union",   NULL};

int agent_cfg_set(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    struct agent_cfg *c = ud;
    long l;
    int rc;

    if (!*k) {
        snprintf(err, errlen, "unexpected argument");
        return FMQ_EINVAL;
    }
    if (fmq_tls_cfg_set(&c->tls, k, v, &rc)) return rc;
    if (!strcmp(k, "broker")) return fmq_config_str(c->broker, sizeof c->broker, v);
    if (!strcmp(k, "id")) return fmq_config_str(c->id, sizeof c->id, v);
    if (!strcmp(k, "task")) return fmq_config_str(c->task, sizeof c->task, v);
    if (!strcmp(k, "topic_root")) return fmq_config_str(c->root, sizeof c->root, v);
    if (!strcmp(k, "sensors")) {
        if (c->nsensors == AGENT_MAX_SENSORS) {
            snprintf(err, errlen, "at most %d sensor filters", AGENT_MAX_SENSORS);
            return FMQ_EINVAL;
        }
        return fmq_config_str(c->sensors[c->nsensors++], sizeof c->sensors[0], v);
    }
    if (!strcmp(k, "buffer")) return fmq_parse_long(v, 10, 10000000, &c->buffer);
    if (!strcmp(k, "min_train")) return fmq_parse_long(v, 2, 10000000, &c->min_train);
    if (!strcmp(k, "max_devices")) return fmq_parse_long(v, 1, 1000000, &c->max_devices);
    if (!strcmp(k, "val_fraction")) return fmq_parse_double(v, 0.0, 0.9, &c->val_fraction);
    if (!strcmp(k, "threshold")) return fmq_parse_double(v, 0.0, 1.0, &c->threshold);
    if (!strcmp(k, "status_interval")) return fmq_parse_double(v, 0.1, 3600, &c->status_interval);
    if (!strcmp(k, "stop_drain")) return fmq_parse_double(v, 0, 600, &c->stop_drain);
    if (!strcmp(k, "update_retry")) return fmq_parse_double(v, 0, 86400, &c->update_retry);
    if (!strcmp(k, "epochs")) return fmq_parse_int(v, 1, 1000, &c->train_opts.epochs);
    if (!strcmp(k, "batch")) return fmq_parse_int(v, 1, 65536, &c->train_opts.batch);
    if (!strcmp(k, "max_steps")) return fmq_parse_long(v, 0, 100000000, &c->train_opts.max_steps);
    if (!strcmp(k, "seed")) {
        rc = fmq_parse_long(v, 0, 0x7fffffffL, &l);
        c->train_opts.seed = (uint64_t)l;
        return rc;
    }
    if (!strcmp(k, "lr")) return fmq_parse_float(v, 1e-7, 10, &c->train_opts.lr);
    if (!strcmp(k, "momentum")) return fmq_parse_float(v, 0, 0.999, &c->train_opts.momentum);
    if (!strcmp(k, "weight_decay")) return fmq_parse_float(v, 0, 1, &c->train_opts.weight_decay);
    if (!strcmp(k, "pos_weight")) return fmq_parse_float(v, 0, 1000, &c->train_opts.pos_weight);
    if (!strcmp(k, "optimizer")) {
        if (!strcmp(v, "adam"))
            c->train_opts.optim = FMQ_OPT_ADAM;
        else if (!strcmp(v, "sgd"))
            c->train_opts.optim = FMQ_OPT_SGD;
        else {
            snprintf(err, errlen, "expected adam or sgd");
            return FMQ_EINVAL;
        }
        return 0;
    }
    if (!strcmp(k, "clean_session")) return fmq_parse_bool(v, &c->clean_session);
    if (!strcmp(k, "train")) return fmq_parse_bool(v, &c->train);
    if (!strcmp(k, "calib_min_flows")) return fmq_parse_long(v, 0, 10000000, &c->calib.min_flows);
    if (!strcmp(k, "calib_min_span")) return fmq_parse_double(v, 0, 86400 * 30, &c->calib.min_span);
    if (!strcmp(k, "calib_window")) return fmq_parse_long(v, 10, 1000000, &c->calib.window);
    if (!strcmp(k, "calib_every")) return fmq_parse_long(v, 1, 1000000, &c->calib.every);
    if (!strcmp(k, "calib_max_step")) return fmq_parse_double(v, 0, 100, &c->calib.max_step);
    if (!strcmp(k, "calib_rise_period"))
        return fmq_parse_double(v, 1, 86400 * 365, &c->calib.rise_period);
    if (!strcmp(k, "calib_min_eligible"))
        return fmq_parse_long(v, 1, 1000000, &c->calib.min_eligible);
    if (!strcmp(k, "calib_tighten")) return fmq_parse_bool(v, &c->calib.tighten);
    if (!strcmp(k, "calib_novelty_beyond_cap"))
        return fmq_parse_bool(v, &c->calib.novelty_beyond_cap);
    if (!strcmp(k, "calib_union")) return fmq_parse_bool(v, &c->calib.union_levels);
    if (!strcmp(k, "calib_confidence")) return fmq_parse_double(v, 0, 0.999, &c->calib.confidence);
    if (!strcmp(k, "calib_exclude")) {
        if (!strcmp(v, "fleet") || !strcmp(v, "in_use")) {
            c->calib.exclude_in_use = !strcmp(v, "in_use");
            return 0;
        }
        snprintf(err, errlen, "expected fleet or in_use");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "calib_spikes")) {
        static const char *const names[] = {"off", "fleet", "below"};
        for (int i = FMQ_SPIKE_OFF; i <= FMQ_SPIKE_BELOW; i++)
            if (!strcmp(v, names[i])) {
                c->calib.spikes = i;
                return 0;
            }
        snprintf(err, errlen, "expected off, fleet or below");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "giot_steps")) return fmq_parse_long(v, 1, 1000000, &c->learn.giot_steps);
    if (!strcmp(k, "giot_batch")) return fmq_parse_int(v, 1, 1024, &c->learn.giot_batch);
    if (!strcmp(k, "giot_cls_weight")) return fmq_parse_float(v, 0, 100, &c->learn.giot_cls_weight);
    if (!strcmp(k, "giot_cls_balance"))
        return fmq_parse_float(v, 0, 0.9f, &c->learn.giot_cls_balance);
    if (!strcmp(k, "giot_lr")) return fmq_parse_float(v, 1e-7, 1, &c->learn.giot_lr);
    if (!strcmp(k, "fp_budget")) return fmq_parse_double(v, 1e-6, 0.5, &c->calib.budget);
    if (!strcmp(k, "giot_val_max")) return fmq_parse_long(v, 1, 1000000, &c->giot_val_max);
    if (!strcmp(k, "predict_rate")) return fmq_parse_double(v, 0, 1e6, &c->learn.predict_rate);
    if (!strcmp(k, "explain_fields"))
        return fmq_parse_int(v, 1, FMQ_TOK_PER_FLOW, &c->learn.explain_fields);
    if (!strcmp(k, "dp_clip")) return fmq_parse_double(v, 0, 1e6, &c->dp_clip);
    if (!strcmp(k, "dp_noise")) return fmq_parse_double(v, 0, 1e3, &c->dp_noise);
    if (!strcmp(k, "attack")) {
        if (agent_attack_parse(v, &c->attack) == 0) return 0;
        snprintf(err, errlen,
                 "expected none, sign-flip, scale, label-flip, noise, alie, "
                 "model-replacement, huge-count, huge-values, stats-poison, "
                 "stats-extreme or secagg-forge");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "secagg_drop")) { /* test mode */
        static const char *const at[] = {"none", "keys", "shares", "masked"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, at[i])) {
                c->secagg_drop = i;
                return 0;
            }
        snprintf(err, errlen, "expected none, keys, shares or masked");
        return FMQ_EINVAL;
    }
    if (!strcmp(k, "attack_scale")) return fmq_parse_double(v, 0, 1e35, &c->attack_scale);
    if (!strcmp(k, "attack_count")) {
        rc = fmq_parse_long(v, 0, 1L << 40, &l);
        c->attack_count = (uint64_t)l;
        return rc;
    }
    if (!strcmp(k, "attack_seed")) {
        rc = fmq_parse_long(v, 0, 0x7fffffffL, &l);
        c->attack_seed = (uint64_t)l;
        return rc;
    }
    if (!strcmp(k, "simulate_uplink_bps"))
        return fmq_parse_double(v, 0, 1e12, &c->simulate_uplink_bps);
    if (!strcmp(k, "log_level")) return fmq_log_level_parse(v, &c->log_level);
    if (!strcmp(k, "log_file")) return fmq_config_str(c->log_file, sizeof c->log_file, v);
    snprintf(err, errlen, "unknown setting (see fedmq-agent(1) and %s/agent.conf.example)",
             FMQ_CONFIG_DIR);
    return FMQ_EINVAL;
}
