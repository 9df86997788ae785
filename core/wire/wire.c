/* msgpack envelopes (schemas/wire.md): encoders over msgpack-c's packer into a reused buffer,
 * decoders that run fmq_wire_check first, then msgpack_unpack into a reused zone, then read each
 * field by name with its type, size and finiteness checked. Float arrays travel as BIN in
 * little-endian IEEE 754 whatever the host order. */
#include "fedmq/wire.h"
#include "fedmq/tokenize.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fmq_buf_free(struct fmq_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

int fmq_buf_set(struct fmq_buf *b, const void *p, size_t n)
{
    if (b->cap < n) {
        uint8_t *q = realloc(b->data, n);
        if (!q) return FMQ_ENOMEM;
        b->data = q;
        b->cap = n;
    }
    if (n) memcpy(b->data, p, n);
    b->len = n;
    return 0;
}

static int buf_write(void *data, const char *p, size_t n)
{
    struct fmq_buf *b = data;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        uint8_t *nd;
        while (cap < b->len + n) cap *= 2;
        if (!(nd = realloc(b->data, cap))) return -1;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int fmq_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= FMQ_ID_MAX) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

void fmq_client_plan_default(struct fmq_client_plan *c)
{
    memset(c, 0, sizeof *c);
    c->codec = FMQ_CODEC_DENSE_F32;
    c->ratio = 0.01f;
    c->block = FMQ_CODEC_BLOCK_DEFAULT;
    c->alpha = 0.9f;
    c->beta = 2.0f;
    c->delta_perf = 0.005f;
    c->eval_every = 20;
    c->warmup = 5;
    c->max_uploads = 1;
    c->report = 1;
    c->ids = 1;
    c->envelope = FMQ_WIRE_VERSION;
}

/* ---- encoding ---- */

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pk_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pk_str(pk, k);
    pk_str(pk, v);
}

static void pk_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pk_kv_f64(msgpack_packer *pk, const char *k, double v)
{
    pk_str(pk, k);
    msgpack_pack_double(pk, v);
}

static void pk_kv_f32(msgpack_packer *pk, const char *k, float v)
{
    pk_str(pk, k);
    msgpack_pack_float(pk, v);
}

/* BIN of n little-endian float32 values; written in chunks, no heap copy. */
static void pk_f32s(msgpack_packer *pk, const float *v, size_t n)
{
    uint8_t tmp[1024];
    msgpack_pack_bin(pk, n * 4);
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k < sizeof tmp; i++, k += 4) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            tmp[k] = (uint8_t)u;
            tmp[k + 1] = (uint8_t)(u >> 8);
            tmp[k + 2] = (uint8_t)(u >> 16);
            tmp[k + 3] = (uint8_t)(u >> 24);
        }
        msgpack_pack_bin_body(pk, tmp, k);
    }
}

static void pk_f64s(msgpack_packer *pk, const double *v, size_t n)
{
    uint8_t tmp[1024];
    msgpack_pack_bin(pk, n * 8);
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k < sizeof tmp; i++, k += 8) {
            uint64_t u;
            memcpy(&u, &v[i], 8);
            for (int b = 0; b < 8; b++) tmp[k + b] = (uint8_t)(u >> (8 * b));
        }
        msgpack_pack_bin_body(pk, tmp, k);
    }
}

static void pk_header_v(msgpack_packer *pk, size_t nfields, const char *type, int version)
{
    msgpack_pack_map(pk, nfields);
    pk_kv_u64(pk, "v", (uint64_t)version);
    pk_kv_str(pk, "type", type);
}

static void pk_header(msgpack_packer *pk, size_t nfields, const char *type)
{
    pk_header_v(pk, nfields, type, FMQ_WIRE_VERSION);
}

static int finish(struct fmq_buf *out, size_t start_len)
{
    /* buf_write failures leave len short of what was packed; detect by re-check */
    return fmq_wire_check(out->data, out->len, FMQ_WIRE_MAX_DEPTH, NULL) == 0 &&
                   out->len > start_len
               ? 0
               : FMQ_ENOMEM;
}

static const char *const ch_key[FMQ_NCH] = {"sup", "nov"};

/* {"n": benign flows, "sup": [5 x f32], "nov": [5 x f32]}, present channels only */
static void pk_sketch(msgpack_packer *pk, const struct fmq_sketch *s)
{
    int k = 0;
    for (int c = 0; c < FMQ_NCH; c++) k += (s->channels & FMQ_CH_BIT(c)) != 0;
    msgpack_pack_map(pk, 1 + (size_t)k);
    pk_kv_u64(pk, "n", s->n);
    for (int c = 0; c < FMQ_NCH; c++)
        if (s->channels & FMQ_CH_BIT(c)) {
            pk_str(pk, ch_key[c]);
            pk_f32s(pk, s->q[c], FMQ_SKETCH_LEVELS);
        }
}

/* {"budget", "version", "sites", "sup": [thr, cap], "nov": [thr, cap]} */
static void pk_rule(msgpack_packer *pk, const struct fmq_rule *r)
{
    int k = 0;
    for (int c = 0; c < FMQ_NCH; c++) k += (r->channels & FMQ_CH_BIT(c)) != 0;
    msgpack_pack_map(pk, 3 + (size_t)k);
    pk_kv_f32(pk, "budget", r->budget);
    pk_kv_u64(pk, "version", r->version);
    pk_kv_u64(pk, "sites", r->sites);
    for (int c = 0; c < FMQ_NCH; c++)
        if (r->channels & FMQ_CH_BIT(c)) {
            float tc[2] = {r->thr[c], r->cap[c]};
            pk_str(pk, ch_key[c]);
            pk_f32s(pk, tc, 2);
        }
}

/* Update keys: envelope 1 spells them out; the compact envelope 2 uses a letter or two and puts
 * the tensor's keys at the top level (about 25 bytes less per update). "n" is the same in both. */
struct upd_keys {
    const char *base, *seq, *ts, *metrics, *stats, *codec, *dim, *data;
};
static const struct upd_keys upd_keys[2] = {
    {"base", "seq", "ts", "metrics", "stats", "codec", "dim", "data"},
    {"b", "s", "t", "m", "st", "c", "d", "x"}};

int fmq_wire_encode_update(const struct fmq_update *u, struct fmq_buf *out)
{
    const struct upd_keys *k = &upd_keys[u->compact ? 1 : 0];
    int ids = !u->no_ids && !u->compact, tensor = u->codec != FMQ_CODEC_NONE;
    msgpack_packer pk;

    if (ids && (!fmq_id_valid(u->agent) || !fmq_id_valid(u->task))) return FMQ_EINVAL;
    if (u->codec < FMQ_CODEC_NONE || u->codec > FMQ_CODEC_LAST) return FMQ_EINVAL;
    if (u->codec != FMQ_CODEC_NONE && !u->tensor && u->codec != FMQ_CODEC_DENSE_F32)
        return FMQ_EINVAL;
    if (u->codec == FMQ_CODEC_NONE && !u->has_stats && !u->has_sketch) return FMQ_EINVAL;
    out->len = 0;
    msgpack_packer_init(&pk, out, buf_write);
    /* stats and tensor are each sent only when present: absent means nil */
    pk_header_v(&pk,
                6 + 2 * ids + !u->no_metrics + (u->has_stats ? 1 : 0) + (u->has_sketch ? 1 : 0) +
                    tensor * (u->compact ? 3 : 1),
                "update", u->compact ? FMQ_WIRE_UPDATE_COMPACT : FMQ_WIRE_VERSION);
    if (ids) { /* else the topic names them: 40-60 bytes less per update */
        pk_kv_str(&pk, "agent", u->agent);
        pk_kv_str(&pk, "task", u->task);
    }
    pk_kv_u64(&pk, k->base, u->base_version);
    pk_kv_u64(&pk, k->seq, u->seq);
    pk_kv_u64(&pk, "n", u->n_examples);
    pk_kv_f64(&pk, k->ts, u->ts);
    if (!u->no_metrics) {
        pk_str(&pk, k->metrics);
        msgpack_pack_map(&pk, 4 + (u->sps > 0) + (u->trigger > 0));
        pk_kv_f32(&pk, "loss", u->metrics.loss);
        pk_kv_f32(&pk, "acc", u->metrics.accuracy);
        pk_kv_f32(&pk, "f1", u->metrics.f1);
        pk_kv_u64(&pk, "n_val", u->metrics.n_val);
        if (u->sps > 0) pk_kv_f32(&pk, "sps", u->sps);
        if (u->trigger > 0) pk_kv_u64(&pk, "trigger", (uint64_t)u->trigger);
    }
    if (u->has_stats) {
        int bn = u->has_benign && u->benign && u->benign->n > 0;
        pk_str(&pk, k->stats);
        msgpack_pack_map(&pk, 3 + (size_t)bn);
        pk_kv_f64(&pk, "n", u->stats->n);
        pk_str(&pk, "mean");
        pk_f64s(&pk, u->stats->mean, FMQ_FEAT_DIM);
        pk_str(&pk, "m2");
        pk_f64s(&pk, u->stats->m2, FMQ_FEAT_DIM);
        if (bn) { /* the benign rows alone: the fleet's benign profile (model.h) */
            pk_str(&pk, "benign");
            msgpack_pack_map(&pk, 3);
            pk_kv_f64(&pk, "n", u->benign->n);
            pk_str(&pk, "mean");
            pk_f64s(&pk, u->benign->mean, FMQ_FEAT_DIM);
            pk_str(&pk, "m2");
            pk_f64s(&pk, u->benign->m2, FMQ_FEAT_DIM);
        }
    }
    if (u->has_sketch) {
        pk_str(&pk, "q");
        pk_sketch(&pk, &u->sketch);
    }
    if (tensor) {
        if (!u->compact) {
            pk_str(&pk, "tensor");
            msgpack_pack_map(&pk, 3);
        }
        pk_kv_str(&pk, k->codec, fmq_codec_name(u->codec));
        pk_kv_u64(&pk, k->dim, u->dim);
        pk_str(&pk, k->data);
        if (u->tensor) {
            msgpack_pack_bin(&pk, u->tensor_len);
            msgpack_pack_bin_body(&pk, u->tensor, u->tensor_len);
        } else
            pk_f32s(&pk, u->delta, u->dim);
    }
    return finish(out, 0);
}

static void pk_model(msgpack_packer *pk, const struct fmq_model *m)
{
    const struct fmq_model_config *c = &m->cfg;
    msgpack_pack_map(pk, 5);
    pk_kv_str(pk, "kind", c->kind == FMQ_MODEL_MLP ? "mlp" : "logreg");
    pk_kv_u64(pk, "in", (uint64_t)c->in_dim);
    pk_str(pk, "hidden");
    msgpack_pack_array(pk, (size_t)c->n_hidden);
    for (int i = 0; i < c->n_hidden; i++) msgpack_pack_uint32(pk, (uint32_t)c->hidden[i]);
    pk_kv_u64(pk, "feat", (uint64_t)c->feat_version);
    pk_kv_u64(pk, "window", (uint64_t)c->window);
}

static void pk_giot(msgpack_packer *pk, const struct fmq_gpt *m, int context)
{
    const struct fmq_gpt_config *c = &m->cfg;
    msgpack_pack_map(pk, m->lora_rank ? 11 : 9);
    pk_kv_str(pk, "kind", "giot");
    pk_kv_u64(pk, "vocab", (uint64_t)c->vocab);
    pk_kv_u64(pk, "seq", (uint64_t)c->max_seq);
    pk_kv_u64(pk, "layers", (uint64_t)c->layers);
    pk_kv_u64(pk, "heads", (uint64_t)c->heads);
    pk_kv_u64(pk, "channels", (uint64_t)c->channels);
    pk_kv_u64(pk, "classes", (uint64_t)c->classes);
    pk_kv_u64(pk, "context", (uint64_t)context);
    pk_kv_u64(pk, "tok", FMQ_TOK_VERSION);
    if (m->lora_rank) { /* adapter mode: the "adapters" field carries them */
        pk_kv_u64(pk, "lora_rank", (uint64_t)m->lora_rank);
        pk_kv_f32(pk, "lora_alpha", m->lora_alpha);
    }
}

int fmq_wire_encode_global(const struct fmq_global *g, struct fmq_buf *out)
{
    msgpack_packer pk;
    const struct fmq_model *m = g->model;
    const struct fmq_gpt *gm = g->gpt;

    if (!fmq_id_valid(g->task) || (!(m && m->params) && !(gm && gm->params))) return FMQ_EINVAL;
    out->len = 0;
    msgpack_packer_init(&pk, out, buf_write);
    if (!fmq_id_valid(g->run)) return FMQ_EINVAL;
    pk_header(&pk,
              (!(m && m->params) && gm->lora_rank ? 16 : 15) + (g->rule.channels != 0) +
                  (m && m->params && m->has_prof),
              "global");
    pk_kv_str(&pk, "task", g->task);
    pk_kv_str(&pk, "run", g->run);
    pk_kv_u64(&pk, "version", g->version);
    pk_kv_u64(&pk, "round", g->round);
    pk_kv_str(&pk, "phase",
              g->phase == FMQ_PHASE_STATS   ? "stats"
              : g->phase == FMQ_PHASE_CALIB ? "calib"
                                            : "train");
    pk_kv_str(&pk, "strategy", g->strategy);
    pk_kv_f64(&pk, "ts", g->ts);
    pk_str(&pk, "model");
    if (!(m && m->params))
        pk_giot(&pk, gm, g->giot_context);
    else
        pk_model(&pk, m);
    pk_str(&pk, "norm");
    if (m && m->params && m->has_norm) {
        msgpack_pack_map(&pk, 2);
        pk_str(&pk, "mean");
        pk_f32s(&pk, m->norm_mean, (size_t)m->cfg.in_dim);
        pk_str(&pk, "std");
        pk_f32s(&pk, m->norm_std, (size_t)m->cfg.in_dim);
    } else
        msgpack_pack_nil(&pk);
    if (m && m->params && m->has_prof) { /* the benign profile: the novelty channel */
        pk_str(&pk, "profile");
        msgpack_pack_map(&pk, 2);
        pk_str(&pk, "mean");
        pk_f32s(&pk, m->prof_mean, (size_t)m->cfg.in_dim);
        pk_str(&pk, "std");
        pk_f32s(&pk, m->prof_std, (size_t)m->cfg.in_dim);
    }
    pk_str(&pk, "client");
    /* report, ids and envelope only when not the default: older vectors hold */
    msgpack_pack_map(&pk, 13 + !g->client.report + !g->client.ids +
                              (g->client.envelope != FMQ_WIRE_VERSION) + (g->client.personal != 0) +
                              (g->client.secagg != 0));
    pk_kv_f32(&pk, "lr", g->client.lr);
    pk_kv_f32(&pk, "proximal_mu", g->client.proximal_mu);
    pk_kv_str(&pk, "codec", fmq_codec_name(g->client.codec));
    pk_kv_f32(&pk, "ratio", g->client.ratio);
    pk_kv_u64(&pk, "block", (uint64_t)g->client.block);
    pk_kv_u64(&pk, "stochastic", (uint64_t)g->client.stochastic);
    pk_kv_u64(&pk, "gsfs", (uint64_t)g->client.gsfs);
    pk_kv_f32(&pk, "alpha", g->client.alpha);
    pk_kv_f32(&pk, "beta", g->client.beta);
    pk_kv_f32(&pk, "delta_perf", g->client.delta_perf);
    pk_kv_u64(&pk, "eval_every", (uint64_t)g->client.eval_every);
    pk_kv_u64(&pk, "warmup", (uint64_t)g->client.warmup);
    pk_kv_u64(&pk, "max_uploads", (uint64_t)g->client.max_uploads);
    if (!g->client.report) pk_kv_u64(&pk, "report", 0);
    if (!g->client.ids) pk_kv_u64(&pk, "ids", 0);
    if (g->client.envelope != FMQ_WIRE_VERSION)
        pk_kv_u64(&pk, "envelope", (uint64_t)g->client.envelope);
    if (g->client.personal) pk_kv_u64(&pk, "personal", (uint64_t)g->client.personal);
    if (g->client.secagg) pk_kv_u64(&pk, "secagg", 1);
    pk_str(&pk, "selected");
    if (g->nselected > 0 && g->selected) {
        msgpack_pack_array(&pk, (size_t)g->nselected);
        for (int i = 0; i < g->nselected; i++) pk_str(&pk, g->selected[i]);
    } else
        msgpack_pack_nil(&pk);
    pk_str(&pk, "plan");
    if (g->nplans > 0 && g->plans) {
        msgpack_pack_map(&pk, (size_t)g->nplans);
        for (int i = 0; i < g->nplans; i++) {
            pk_str(&pk, g->plans[i].agent);
            msgpack_pack_map(&pk, 3);
            pk_kv_str(&pk, "codec", fmq_codec_name(g->plans[i].codec));
            pk_kv_f32(&pk, "ratio", g->plans[i].ratio);
            pk_kv_f32(&pk, "time_budget", g->plans[i].time_budget);
        }
    } else
        msgpack_pack_nil(&pk);
    if (g->rule.channels) { /* absent until the coordinator has sketches */
        pk_str(&pk, "rule");
        pk_rule(&pk, &g->rule);
    }
    pk_str(&pk, "params");
    if (m && m->params)
        pk_f32s(&pk, m->params, m->nparams);
    else
        pk_f32s(&pk, gm->params, gm->nparams);
    if (!(m && m->params) && gm->lora_rank) {
        pk_str(&pk, "adapters");
        pk_f32s(&pk, gm->lora, gm->lora_n);
    }
    return finish(out, 0);
}

int fmq_wire_encode_status_msgpack(const struct fmq_status *s, struct fmq_buf *out)
{
    msgpack_packer pk;

    if (!fmq_id_valid(s->agent) || !fmq_id_valid(s->task)) return FMQ_EINVAL;
    out->len = 0;
    msgpack_packer_init(&pk, out, buf_write);
    pk_header(&pk, 12 + (s->calib[0] != 0), "status");
    pk_kv_str(&pk, "agent", s->agent);
    pk_kv_str(&pk, "task", s->task);
    pk_kv_str(&pk, "state", s->state);
    pk_kv_u64(&pk, "model", s->model_version);
    pk_kv_u64(&pk, "flows", s->flows);
    pk_kv_u64(&pk, "labelled", s->labelled);
    pk_kv_u64(&pk, "buffered", s->buffered);
    pk_kv_u64(&pk, "alerts", s->alerts);
    pk_kv_u64(&pk, "bad", s->bad);
    if (s->calib[0]) pk_kv_str(&pk, "calib", s->calib);
    pk_kv_f64(&pk, "ts", s->ts);
    return finish(out, 0);
}

/* ---- decoding ---- */

int fmq_wire_dec_init(struct fmq_wire_dec *d)
{
    d->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    return d->zone ? 0 : FMQ_ENOMEM;
}

void fmq_wire_dec_free(struct fmq_wire_dec *d)
{
    if (d->zone) msgpack_zone_free(d->zone);
    d->zone = NULL;
}

struct rd {
    char *err;
    size_t errlen;
    const char *msg; /* message type for error text */
};

static int fail(struct rd *r, int rc, const char *field, const char *what)
{
    snprintf(r->err, r->errlen, "%s.%s: %s", r->msg, field, what);
    return rc;
}

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static int rd_u64(struct rd *r, const msgpack_object *map, const char *key, uint64_t max,
                  uint64_t *out)
{
    const msgpack_object *o = get(map, key);
    if (!o) return fail(r, FMQ_EFORMAT, key, "missing");
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail(r, FMQ_ETYPE, key, "not an unsigned integer");
    if (o->via.u64 > max) return fail(r, FMQ_ERANGE, key, "too large");
    *out = o->via.u64;
    return 0;
}

static int rd_f64(struct rd *r, const msgpack_object *map, const char *key, double *out)
{
    const msgpack_object *o = get(map, key);
    if (!o) return fail(r, FMQ_EFORMAT, key, "missing");
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        *out = o->via.f64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = (double)o->via.i64;
    else
        return fail(r, FMQ_ETYPE, key, "not a number");
    if (!isfinite(*out)) return fail(r, FMQ_ERANGE, key, "not finite");
    return 0;
}

static int rd_str(struct rd *r, const msgpack_object *map, const char *key, char *out, size_t cap,
                  int is_id)
{
    const msgpack_object *o = get(map, key);
    if (!o) return fail(r, FMQ_EFORMAT, key, "missing");
    if (o->type != MSGPACK_OBJECT_STR) return fail(r, FMQ_ETYPE, key, "not a string");
    if (o->via.str.size >= cap) return fail(r, FMQ_ERANGE, key, "too long");
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    if (strlen(out) != o->via.str.size) return fail(r, FMQ_EFORMAT, key, "holds a NUL byte");
    if (is_id && !fmq_id_valid(out)) return fail(r, FMQ_EFORMAT, key, "not a valid id");
    return 0;
}

/* Reads a BIN of n little-endian floats of width 4 or 8 into out (as float or double). */
static int rd_floats(struct rd *r, const msgpack_object *o, const char *key, size_t n, int width,
                     void *out)
{
    const uint8_t *p;
    if (!o) return fail(r, FMQ_EFORMAT, key, "missing");
    if (o->type != MSGPACK_OBJECT_BIN) return fail(r, FMQ_ETYPE, key, "not binary");
    if (o->via.bin.size != n * (size_t)width) {
        char what[96];
        snprintf(what, sizeof what, "%u bytes, expected %zu (%zu values)", o->via.bin.size,
                 n * (size_t)width, n);
        return fail(r, FMQ_EDIM, key, what);
    }
    p = (const uint8_t *)o->via.bin.ptr;
    for (size_t i = 0; i < n; i++, p += width) {
        uint64_t u = 0;
        for (int b = width - 1; b >= 0; b--) u = (u << 8) | p[b];
        if (width == 4) {
            uint32_t u32 = (uint32_t)u;
            float f;
            memcpy(&f, &u32, 4);
            if (!isfinite(f)) return fail(r, FMQ_ERANGE, key, "holds NaN or Inf");
            ((float *)out)[i] = f;
        } else {
            double f;
            memcpy(&f, &u, 8);
            if (!isfinite(f)) return fail(r, FMQ_ERANGE, key, "holds NaN or Inf");
            ((double *)out)[i] = f;
        }
    }
    return 0;
}

/* An optional sketch ("q" of an update): present channels finite and non-decreasing. */
static int rd_sketch(struct rd *r, const msgpack_object *o, struct fmq_sketch *s)
{
    const char *msg = r->msg;
    uint64_t n;
    int rc;
    memset(s, 0, sizeof *s);
    if (o->type != MSGPACK_OBJECT_MAP) return fail(r, FMQ_ETYPE, "q", "not a map");
    r->msg = "update.q";
    if ((rc = rd_u64(r, o, "n", UINT32_MAX, &n))) return rc;
    s->n = (uint32_t)n;
    for (int c = 0; c < FMQ_NCH; c++)
        if (get(o, ch_key[c])) {
            if ((rc = rd_floats(r, get(o, ch_key[c]), ch_key[c], FMQ_SKETCH_LEVELS, 4, s->q[c])))
                return rc;
            s->channels |= FMQ_CH_BIT(c);
        }
    /* an empty sketch (n 0, no channel) says the site has no benign labels to measure on */
    if ((s->n > 0 && !s->channels) || (s->n == 0 && s->channels) || fmq_sketch_check(s) != 0)
        return fail(r, FMQ_ERANGE, "q",
                    "channels do not match n, or quantiles out of order or "
                    "range");
    r->msg = msg;
    return 0;
}

/* An optional fleet rule ("rule" of a global model): budget in (0, 0.5], each channel's
 * threshold and cap finite with thr <= cap, measured on no later version than this one. */
static int rd_rule(struct rd *r, const msgpack_object *o, uint64_t version, struct fmq_rule *rule)
{
    const char *msg = r->msg;
    uint64_t v;
    double b;
    int rc;
    memset(rule, 0, sizeof *rule);
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_MAP) return fail(r, FMQ_ETYPE, "rule", "not a map");
    r->msg = "global.rule";
    if ((rc = rd_f64(r, o, "budget", &b)) ||
        (rc = rd_u64(r, o, "version", version, &rule->version)) ||
        (rc = rd_u64(r, o, "sites", UINT32_MAX, &v)))
        return rc;
    if (!(b > 0) || b > 0.5) return fail(r, FMQ_ERANGE, "budget", "not in (0, 0.5]");
    rule->budget = (float)b;
    rule->sites = (uint32_t)v;
    for (int c = 0; c < FMQ_NCH; c++)
        if (get(o, ch_key[c])) {
            float tc[2];
            if ((rc = rd_floats(r, get(o, ch_key[c]), ch_key[c], 2, 4, tc))) return rc;
            if (tc[0] > tc[1] || fabsf(tc[1]) > 1e6f)
                return fail(r, FMQ_ERANGE, ch_key[c], "threshold above its cap or out of range");
            rule->thr[c] = tc[0];
            rule->cap[c] = tc[1];
            rule->channels |= FMQ_CH_BIT(c);
        }
    r->msg = msg;
    return 0;
}

/* Size cap, structural check, unpack, version first (1, or 2 for updates; *version, if not
 * NULL, says which), type. */
static int open_msg(struct fmq_wire_dec *d, const uint8_t *buf, size_t len, const char *want,
                    msgpack_object *root, char *type, struct rd *r, int *version)
{
    size_t where = 0, off = 0;
    int rc;
    msgpack_unpack_return ur;
    const msgpack_object_kv *kv;

    if (len > FMQ_WIRE_MAX_PAYLOAD) {
        snprintf(r->err, r->errlen, "%s: %zu bytes exceeds the %u byte limit", r->msg, len,
                 FMQ_WIRE_MAX_PAYLOAD);
        return FMQ_ETOOBIG;
    }
    if ((rc = fmq_wire_check(buf, len, FMQ_WIRE_MAX_DEPTH, &where)) != 0) {
        snprintf(r->err, r->errlen, "%s: malformed msgpack near byte %zu of %zu", r->msg, where,
                 len);
        return rc;
    }
    msgpack_zone_clear(d->zone);
    ur = msgpack_unpack((const char *)buf, len, &off, d->zone, root);
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        snprintf(r->err, r->errlen, "%s: msgpack unpack failed (%d)", r->msg, (int)ur);
        return FMQ_EFORMAT;
    }
    if (root->type != MSGPACK_OBJECT_MAP || root->via.map.size < 2) {
        snprintf(r->err, r->errlen, "%s: not a map", r->msg);
        return FMQ_ETYPE;
    }
    kv = &root->via.map.ptr[0];
    if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != 1 ||
        kv->key.via.str.ptr[0] != 'v')
        return fail(r, FMQ_EFORMAT, "v", "the first key is not \"v\"");
    if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail(r, FMQ_ETYPE, "v", "not an unsigned integer");
    if (kv->val.via.u64 != FMQ_WIRE_VERSION && kv->val.via.u64 != FMQ_WIRE_UPDATE_COMPACT) {
        char what[80];
        snprintf(what, sizeof what, "version %llu, this build reads %d (and %d for updates)",
                 (unsigned long long)kv->val.via.u64, FMQ_WIRE_VERSION, FMQ_WIRE_UPDATE_COMPACT);
        return fail(r, FMQ_EVERSION, "v", what);
    }
    if ((rc = rd_str(r, root, "type", type, 16, 0)) != 0) return rc;
    if (kv->val.via.u64 == FMQ_WIRE_UPDATE_COMPACT && strcmp(type, "update") != 0)
        return fail(r, FMQ_EVERSION, "v", "version 2 is for updates only");
    if (version) *version = (int)kv->val.via.u64;
    if (want && strcmp(type, want) != 0) {
        char what[64];
        snprintf(what, sizeof what, "is \"%s\", expected \"%s\"", type, want);
        return fail(r, FMQ_ETYPE, "type", what);
    }
    return 0;
}

/* Topic levels from the end: <agent>, "update", <task>; the root before them may have several. */
int fmq_update_topic_ids(struct fmq_update *u, const char *topic, char *err, size_t errlen)
{
    const char *lv[3], *e = topic + strlen(topic);
    char agent[FMQ_ID_MAX], task[FMQ_ID_MAX];
    size_t n[3];

    for (int i = 0; i < 3; i++) { /* lv[i] starts level i from the end, n[i] bytes long */
        const char *s = e;
        while (s > topic && s[-1] != '/') s--;
        if (i < 2 && s == topic) goto bad; /* fewer than three levels */
        lv[i] = s;
        n[i] = (size_t)(e - s);
        e = s - 1;
    }
    if (n[1] != 6 || memcmp(lv[1], "update", 6) != 0 || n[0] >= sizeof agent || n[2] >= sizeof task)
        goto bad;
    memcpy(agent, lv[0], n[0]), agent[n[0]] = 0;
    memcpy(task, lv[2], n[2]), task[n[2]] = 0;
    if (!fmq_id_valid(agent) || !fmq_id_valid(task)) goto bad;
    if (u->no_ids) {
        memcpy(u->agent, agent, n[0] + 1);
        memcpy(u->task, task, n[2] + 1);
        return 0;
    }
    if (strcmp(u->agent, agent) != 0) {
        snprintf(err, errlen, "update.agent: \"%s\" differs from the topic's \"%s\"", u->agent,
                 agent);
        return FMQ_EINVAL;
    }
    if (strcmp(u->task, task) != 0) {
        snprintf(err, errlen, "update.task: \"%s\" differs from the topic's \"%s\"", u->task, task);
        return FMQ_EINVAL;
    }
    return 0;
bad:
    snprintf(err, errlen, "topic \"%.200s\" is not <root>/<task>/update/<agent> with valid ids",
             topic);
    return FMQ_EFORMAT;
}

int fmq_wire_peek(struct fmq_wire_dec *d, const uint8_t *buf, size_t len, char *type, char *err,
                  size_t errlen)
{
    struct rd r = {err, errlen, "message"};
    msgpack_object root;
    return open_msg(d, buf, len, NULL, &root, type, &r, NULL);
}

int fmq_wire_decode_update(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                           uint32_t expected_dim, struct fmq_update *u, char *err, size_t errlen)
{
    struct rd r = {err, errlen, "update"};
    msgpack_object root;
    const msgpack_object *o, *t;
    char type[16], codec[24];
    const struct upd_keys *k;
    uint64_t v;
    int rc, version = 0;

    if ((rc = open_msg(d, buf, len, "update", &root, type, &r, &version)) != 0) return rc;
    u->compact = version == FMQ_WIRE_UPDATE_COMPACT;
    k = &upd_keys[u->compact];
    /* agent and task: both present, or both absent and named by the topic (client.ids 0, and
     * always in the compact envelope, which never reads them) */
    u->no_ids = u->compact || (!get(&root, "agent") && !get(&root, "task"));
    u->agent[0] = u->task[0] = 0;
    if ((!u->no_ids && ((rc = rd_str(&r, &root, "agent", u->agent, sizeof u->agent, 1)) ||
                        (rc = rd_str(&r, &root, "task", u->task, sizeof u->task, 1)))) ||
        (rc = rd_u64(&r, &root, k->base, UINT64_MAX, &u->base_version)) ||
        (rc = rd_u64(&r, &root, k->seq, UINT64_MAX, &u->seq)) ||
        (rc = rd_u64(&r, &root, "n", (uint64_t)1 << 40, &u->n_examples)) ||
        (rc = rd_f64(&r, &root, k->ts, &u->ts)))
        return rc;
    o = get(&root, k->metrics); /* absent or nil: the coordinator asked for none */
    u->no_metrics = !o || o->type == MSGPACK_OBJECT_NIL;
    u->metrics = (struct fmq_local_metrics){0, 0, 0, 0};
    u->sps = 0;
    u->trigger = 0;
    if (!u->no_metrics && o->type != MSGPACK_OBJECT_MAP)
        return fail(&r, FMQ_ETYPE, k->metrics, "not a map");
    r.msg = "update.metrics";
    if (!u->no_metrics) {
        double loss, acc, f1;
        if ((rc = rd_f64(&r, o, "loss", &loss)) || (rc = rd_f64(&r, o, "acc", &acc)) ||
            (rc = rd_f64(&r, o, "f1", &f1)) || (rc = rd_u64(&r, o, "n_val", UINT32_MAX, &v)))
            return rc;
        if (acc < 0 || acc > 1 || f1 < 0 || f1 > 1)
            return fail(&r, FMQ_ERANGE, "acc", "outside [0,1]");
        u->metrics = (struct fmq_local_metrics){(float)loss, (float)acc, (float)f1, v};
        u->sps = 0;
        u->trigger = 0;
        if (get(o, "sps")) {
            double sps;
            if ((rc = rd_f64(&r, o, "sps", &sps))) return rc;
            if (sps < 0 || sps > 1e12) return fail(&r, FMQ_ERANGE, "sps", "out of range");
            u->sps = (float)sps;
        }
        if (get(o, "trigger")) {
            if ((rc = rd_u64(&r, o, "trigger", 3, &v))) return rc;
            u->trigger = (int)v;
        }
    }
    r.msg = "update";
    o = get(&root, "q"); /* absent or nil: no sketch */
    u->has_sketch = o && o->type != MSGPACK_OBJECT_NIL;
    if (u->has_sketch && (rc = rd_sketch(&r, o, &u->sketch)) != 0) return rc;
    if (!u->has_sketch) memset(&u->sketch, 0, sizeof u->sketch);
    o = get(&root, k->stats); /* absent or nil: no statistics */
    u->has_stats = o && o->type != MSGPACK_OBJECT_NIL;
    if (u->has_stats) {
        if (o->type != MSGPACK_OBJECT_MAP) return fail(&r, FMQ_ETYPE, k->stats, "not a map");
        if (!u->stats) return fail(&r, FMQ_EINVAL, k->stats, "no storage given");
        r.msg = "update.stats";
        if ((rc = rd_f64(&r, o, "n", &u->stats->n))) return rc;
        if (u->stats->n < 1 || u->stats->n > 1e12) return fail(&r, FMQ_ERANGE, "n", "out of range");
        if ((rc = rd_floats(&r, get(o, "mean"), "mean", FMQ_FEAT_DIM, 8, u->stats->mean)) ||
            (rc = rd_floats(&r, get(o, "m2"), "m2", FMQ_FEAT_DIM, 8, u->stats->m2)))
            return rc;
        for (int i = 0; i < FMQ_FEAT_DIM; i++)
            if (u->stats->m2[i] < 0) return fail(&r, FMQ_ERANGE, "m2", "negative");
        u->has_benign = 0;
        if (get(o, "benign")) {
            const msgpack_object *b = get(o, "benign");
            if (b->type != MSGPACK_OBJECT_MAP) return fail(&r, FMQ_ETYPE, "benign", "not a map");
            if (!u->benign) return fail(&r, FMQ_EINVAL, "benign", "no storage given");
            r.msg = "update.stats.benign";
            if ((rc = rd_f64(&r, b, "n", &u->benign->n))) return rc;
            if (u->benign->n < 1 || u->benign->n > u->stats->n)
                return fail(&r, FMQ_ERANGE, "n", "not in [1, stats.n]");
            if ((rc = rd_floats(&r, get(b, "mean"), "mean", FMQ_FEAT_DIM, 8, u->benign->mean)) ||
                (rc = rd_floats(&r, get(b, "m2"), "m2", FMQ_FEAT_DIM, 8, u->benign->m2)))
                return rc;
            for (int i = 0; i < FMQ_FEAT_DIM; i++)
                if (u->benign->m2[i] < 0) return fail(&r, FMQ_ERANGE, "m2", "negative");
            u->has_benign = 1;
        }
        r.msg = "update";
    }
    /* absent or nil: no tensor; the compact envelope has its keys at the top level */
    t = u->compact ? (get(&root, k->codec) ? &root : NULL) : get(&root, "tensor");
    if (!t || t->type == MSGPACK_OBJECT_NIL) {
        if (!u->has_stats && !u->has_sketch)
            return fail(&r, FMQ_EFORMAT, u->compact ? k->codec : "tensor",
                        "nil without stats or sketch");
        u->codec = FMQ_CODEC_NONE;
        u->dim = 0;
        return 0;
    }
    if (t->type != MSGPACK_OBJECT_MAP) return fail(&r, FMQ_ETYPE, "tensor", "not a map");
    if (!u->compact) r.msg = "update.tensor";
    if ((rc = rd_str(&r, t, k->codec, codec, sizeof codec, 0))) return rc;
    if (fmq_codec_parse(codec, &u->codec) != 0)
        return fail(&r, FMQ_EFORMAT, k->codec, "unknown codec");
    if ((rc = rd_u64(&r, t, k->dim, FMQ_MODEL_MAXPARAMS, &v))) return rc;
    if (expected_dim && v != expected_dim) {
        char what[80];
        snprintf(what, sizeof what, "%llu does not match the model's %u parameters",
                 (unsigned long long)v, expected_dim);
        return fail(&r, FMQ_EDIM, k->dim, what);
    }
    if (v > u->delta_cap || !u->delta) return fail(&r, FMQ_EDIM, k->dim, "exceeds the buffer");
    u->dim = (uint32_t)v;
    if (!(o = get(t, k->data)) || o->type != MSGPACK_OBJECT_BIN)
        return fail(&r, FMQ_ETYPE, k->data, "missing or not binary");
    u->tensor_len = o->via.bin.size;
    rc = fmq_codec_decode(u->codec, (const uint8_t *)o->via.bin.ptr, o->via.bin.size, u->dim,
                          u->delta, r.err, r.errlen);
    if (rc != 0) {
        char inner[200];
        snprintf(inner, sizeof inner, "%s", r.err);
        snprintf(r.err, r.errlen, "update.tensor.data: %s", inner);
    }
    return rc;
}

static int rd_model_config(struct rd *r, const msgpack_object *o, struct fmq_model_config *c)
{
    char kind[16];
    uint64_t v;
    const msgpack_object *h;
    int rc;

    memset(c, 0, sizeof *c);
    if ((rc = rd_str(r, o, "kind", kind, sizeof kind, 0))) return rc;
    if (strcmp(kind, "mlp") == 0)
        c->kind = FMQ_MODEL_MLP;
    else if (strcmp(kind, "logreg") == 0)
        c->kind = FMQ_MODEL_LOGREG;
    else
        return fail(r, FMQ_EFORMAT, "kind", "unknown model kind");
    if ((rc = rd_u64(r, o, "in", 4096, &v))) return rc;
    c->in_dim = (int)v;
    if (!(h = get(o, "hidden")) || h->type != MSGPACK_OBJECT_ARRAY)
        return fail(r, FMQ_ETYPE, "hidden", "missing or not an array");
    if (h->via.array.size > FMQ_MLP_MAXHIDDEN)
        return fail(r, FMQ_ERANGE, "hidden", "too many layers");
    c->n_hidden = (int)h->via.array.size;
    for (int i = 0; i < c->n_hidden; i++) {
        const msgpack_object *e = &h->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 < 1 || e->via.u64 > 4096)
            return fail(r, FMQ_ERANGE, "hidden", "width not in [1,4096]");
        c->hidden[i] = (int)e->via.u64;
    }
    if ((rc = rd_u64(r, o, "feat", 1000, &v))) return rc;
    c->feat_version = (int)v;
    if ((rc = rd_u64(r, o, "window", FMQ_FEAT_MAXWIN, &v))) return rc;
    c->window = (int)v;
    if (fmq_model_config_check(c) != 0) return fail(r, FMQ_EINVAL, "model", "invalid config");
    return 0;
}

static int rd_f32_in(struct rd *r, const msgpack_object *o, const char *key, double lo, double hi,
                     float *out)
{
    double d;
    int rc = rd_f64(r, o, key, &d);
    if (rc) return rc;
    if (d < lo || d > hi) return fail(r, FMQ_ERANGE, key, "out of range");
    *out = (float)d;
    return 0;
}

static int rd_int_in(struct rd *r, const msgpack_object *o, const char *key, uint64_t hi, int *out)
{
    uint64_t v;
    int rc = rd_u64(r, o, key, hi, &v);
    if (rc == 0) *out = (int)v;
    return rc;
}

/* The client plan; a global model without one (older coordinators) means the defaults. */
static int rd_client(struct rd *r, const msgpack_object *o, struct fmq_client_plan *c)
{
    char codec[24];
    const char *msg = r->msg;
    int rc;
    fmq_client_plan_default(c);
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_MAP) return fail(r, FMQ_ETYPE, "client", "not a map");
    r->msg = "global.client";
    if ((rc = rd_f32_in(r, o, "lr", 0, 10, &c->lr)) ||
        (rc = rd_f32_in(r, o, "proximal_mu", 0, 100, &c->proximal_mu)) ||
        (rc = rd_str(r, o, "codec", codec, sizeof codec, 0)))
        return rc;
    if (fmq_codec_parse(codec, &c->codec) != 0 || c->codec == FMQ_CODEC_MASKED)
        return fail(r, FMQ_EFORMAT, "codec", "unknown codec");
    if ((rc = rd_f32_in(r, o, "ratio", 1e-6, 1, &c->ratio)) ||
        (rc = rd_int_in(r, o, "block", 4096, &c->block)) ||
        (rc = rd_int_in(r, o, "stochastic", 1, &c->stochastic)) ||
        (rc = rd_int_in(r, o, "gsfs", 1, &c->gsfs)) ||
        (rc = rd_f32_in(r, o, "alpha", 0, 1, &c->alpha)) ||
        (rc = rd_f32_in(r, o, "beta", 0, 100, &c->beta)) ||
        (rc = rd_f32_in(r, o, "delta_perf", 0, 1, &c->delta_perf)) ||
        (rc = rd_int_in(r, o, "eval_every", 100000, &c->eval_every)) ||
        (rc = rd_int_in(r, o, "warmup", 100000, &c->warmup)) ||
        (rc = rd_int_in(r, o, "max_uploads", 100000, &c->max_uploads)) ||
        (get(o, "report") && (rc = rd_int_in(r, o, "report", 1, &c->report))) ||
        (get(o, "ids") && (rc = rd_int_in(r, o, "ids", 1, &c->ids))) ||
        (get(o, "envelope") &&
         (rc = rd_int_in(r, o, "envelope", FMQ_WIRE_UPDATE_COMPACT, &c->envelope))) ||
        (get(o, "personal") &&
         (rc = rd_int_in(r, o, "personal", FMQ_PERSONAL_FINETUNE, &c->personal))) ||
        (get(o, "secagg") && (rc = rd_int_in(r, o, "secagg", 1, &c->secagg))))
        return rc;
    if (c->block < 8 || c->eval_every < 1)
        return fail(r, FMQ_ERANGE, "block", "block below 8 or eval_every 0");
    if (c->envelope < FMQ_WIRE_VERSION) return fail(r, FMQ_ERANGE, "envelope", "below 1");
    r->msg = msg;
    return 0;
}

static int rd_selected(struct rd *r, const msgpack_object *o, struct fmq_global *g)
{
    g->nselected = 0;
    g->self_selected = 1;
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > FMQ_MAX_SELECTED)
        return fail(r, FMQ_ETYPE, "selected", "not an array of at most 1024 ids");
    g->nselected = (int)o->via.array.size;
    g->self_selected = 0;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR || e->via.str.size >= FMQ_ID_MAX)
            return fail(r, FMQ_ETYPE, "selected", "holds a non-id");
        if (g->self && strlen(g->self) == e->via.str.size &&
            memcmp(g->self, e->via.str.ptr, e->via.str.size) == 0)
            g->self_selected = 1;
    }
    return 0;
}

/* Per-agent plans: validates every entry, keeps only the one for g->self. */
static int rd_plans(struct rd *r, const msgpack_object *o, struct fmq_global *g)
{
    const char *msg = r->msg;
    g->has_self_plan = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > FMQ_MAX_SELECTED)
        return fail(r, FMQ_ETYPE, "plan", "not a map of at most 1024 agents");
    r->msg = "global.plan";
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        struct fmq_agent_plan p;
        char codec[24];
        int rc;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 ||
            k->via.str.size >= FMQ_ID_MAX || v->type != MSGPACK_OBJECT_MAP)
            return fail(r, FMQ_ETYPE, "entry", "not id -> map");
        memset(&p, 0, sizeof p);
        memcpy(p.agent, k->via.str.ptr, k->via.str.size);
        if ((rc = rd_str(r, v, "codec", codec, sizeof codec, 0))) return rc;
        if (fmq_codec_parse(codec, &p.codec)) return fail(r, FMQ_EFORMAT, "codec", "unknown codec");
        if ((rc = rd_f32_in(r, v, "ratio", 1e-6, 1, &p.ratio)) ||
            (rc = rd_f32_in(r, v, "time_budget", 0, 86400, &p.time_budget)))
            return rc;
        if (g->self && strcmp(g->self, p.agent) == 0) {
            g->self_plan = p;
            g->has_self_plan = 1;
        }
    }
    r->msg = msg;
    return 0;
}

/* The GIoT part of a global model: config checked against this build's tokenizer, params into
 * g->gpt (allocated when empty, else the config must match). */
static int decode_giot(struct rd *r, const msgpack_object *root, const msgpack_object *o,
                       struct fmq_global *g)
{
    struct fmq_gpt_config c;
    uint64_t v[8];
    static const char *const keys[] = {"vocab",    "seq",     "layers",  "heads",
                                       "channels", "classes", "context", "tok"};
    const msgpack_object *nm;
    int rc;

    if (!g->gpt) return fail(r, FMQ_EINVAL, "model", "a GIoT model, and no storage for it");
    r->msg = "global.model";
    for (int i = 0; i < 8; i++)
        if ((rc = rd_u64(r, o, keys[i], 1u << 20, &v[i])) != 0) return rc;
    c = (struct fmq_gpt_config){(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5]};
    if (v[7] != FMQ_TOK_VERSION || c.vocab != fmq_tok_vocab_size())
        return fail(r, FMQ_EVERSION, "tok", "another tokenizer version or vocabulary");
    if (fmq_gpt_config_check(&c) != 0 || v[6] < 1 || 1 + FMQ_TOK_PER_FLOW * v[6] > v[1])
        return fail(r, FMQ_EINVAL, "model", "invalid GIoT config or context");
    r->msg = "global";
    if (g->gpt->params) {
        if (memcmp(&c, &g->gpt->cfg, sizeof c) != 0)
            return fail(r, FMQ_EDIM, "model", "config differs from the model in use");
    } else if ((rc = fmq_gpt_init(g->gpt, &c)) != 0)
        return fail(r, rc, "model", "cannot allocate");
    if ((nm = get(root, "norm")) && nm->type != MSGPACK_OBJECT_NIL)
        return fail(r, FMQ_ETYPE, "norm", "a GIoT model has no normalisation");
    if (get(o, "lora_rank")) { /* adapter mode */
        uint64_t rank;
        double alpha;
        r->msg = "global.model";
        if ((rc = rd_u64(r, o, "lora_rank", 256, &rank)) ||
            (rc = rd_f64(r, o, "lora_alpha", &alpha)))
            return rc;
        if (rank < 1 || (int)rank > c.channels || alpha <= 0 || alpha > 1e4)
            return fail(r, FMQ_ERANGE, "lora_rank", "rank or alpha out of range");
        r->msg = "global";
        if (g->gpt->lora_rank == 0) {
            if ((rc = fmq_gpt_lora_init(g->gpt, (int)rank, (float)alpha, 0)) != 0)
                return fail(r, rc, "lora_rank", "cannot allocate");
        } else if (g->gpt->lora_rank != (int)rank)
            return fail(r, FMQ_EDIM, "lora_rank", "differs from the model in use");
        g->gpt->lora_alpha = (float)alpha;
        if ((rc = rd_floats(r, get(root, "adapters"), "adapters", g->gpt->lora_n, 4,
                            g->gpt->lora)) != 0)
            return rc;
    } else if (g->gpt->lora_rank)
        return fail(r, FMQ_EDIM, "lora_rank", "adapters expected, the message has none");
    g->kind = FMQ_MODEL_GIOT;
    g->giot_context = (int)v[6];
    if ((rc = rd_rule(r, get(root, "rule"), g->version, &g->rule)) != 0) return rc;
    if ((rc = rd_client(r, get(root, "client"), &g->client)) != 0) return rc;
    if ((rc = rd_selected(r, get(root, "selected"), g)) != 0) return rc;
    if ((rc = rd_plans(r, get(root, "plan"), g)) != 0) return rc;
    return rd_floats(r, get(root, "params"), "params", g->gpt->nparams, 4, g->gpt->params);
}

int fmq_wire_decode_global(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                           struct fmq_global *g, char *err, size_t errlen)
{
    struct rd r = {err, errlen, "global"};
    msgpack_object root;
    const msgpack_object *o;
    struct fmq_model_config cfg;
    struct fmq_model *m = g->model;
    char type[16], phase[16];
    int rc;

    if (!m && !g->gpt) return FMQ_EINVAL;
    if ((rc = open_msg(d, buf, len, "global", &root, type, &r, NULL)) != 0) return rc;
    if ((rc = rd_str(&r, &root, "task", g->task, sizeof g->task, 1)) ||
        (rc = rd_str(&r, &root, "run", g->run, sizeof g->run, 1)) ||
        (rc = rd_u64(&r, &root, "version", UINT64_MAX, &g->version)) ||
        (rc = rd_u64(&r, &root, "round", UINT64_MAX, &g->round)) ||
        (rc = rd_str(&r, &root, "phase", phase, sizeof phase, 0)) ||
        (rc = rd_str(&r, &root, "strategy", g->strategy, sizeof g->strategy, 0)) ||
        (rc = rd_f64(&r, &root, "ts", &g->ts)))
        return rc;
    if (strcmp(phase, "stats") == 0)
        g->phase = FMQ_PHASE_STATS;
    else if (strcmp(phase, "train") == 0)
        g->phase = FMQ_PHASE_TRAIN;
    else if (strcmp(phase, "calib") == 0)
        g->phase = FMQ_PHASE_CALIB;
    else
        return fail(&r, FMQ_EFORMAT, "phase", "not stats, train or calib");
    if (!(o = get(&root, "model")) || o->type != MSGPACK_OBJECT_MAP)
        return fail(&r, FMQ_ETYPE, "model", "missing or not a map");
    {
        const msgpack_object *k = get(o, "kind");
        if (k && k->type == MSGPACK_OBJECT_STR && k->via.str.size == 4 &&
            memcmp(k->via.str.ptr, "giot", 4) == 0)
            return decode_giot(&r, &root, o, g);
    }
    if (!m) return fail(&r, FMQ_EINVAL, "model", "an MLP or logistic model, and no storage for it");
    g->kind = 0;
    r.msg = "global.model";
    if ((rc = rd_model_config(&r, o, &cfg))) return rc;
    g->kind = cfg.kind;
    r.msg = "global";
    if (m->params) {
        if (memcmp(&cfg, &m->cfg, sizeof cfg) != 0)
            return fail(&r, FMQ_EDIM, "model", "config differs from the model in use");
    } else if ((rc = fmq_model_init(m, &cfg)) != 0)
        return fail(&r, rc, "model", "cannot allocate");
    if (!(o = get(&root, "norm"))) return fail(&r, FMQ_EFORMAT, "norm", "missing");
    if (o->type == MSGPACK_OBJECT_MAP) {
        r.msg = "global.norm";
        if ((rc = rd_floats(&r, get(o, "mean"), "mean", (size_t)cfg.in_dim, 4, m->norm_mean)) ||
            (rc = rd_floats(&r, get(o, "std"), "std", (size_t)cfg.in_dim, 4, m->norm_std)))
            return rc;
        for (int i = 0; i < cfg.in_dim; i++)
            if (!(m->norm_std[i] > 0)) return fail(&r, FMQ_ERANGE, "std", "not positive");
        m->has_norm = 1;
        r.msg = "global";
    } else if (o->type == MSGPACK_OBJECT_NIL) {
        m->has_norm = 0;
        for (int i = 0; i < cfg.in_dim; i++) m->norm_mean[i] = 0, m->norm_std[i] = 1;
    } else
        return fail(&r, FMQ_ETYPE, "norm", "not a map or nil");
    m->has_prof = 0;
    if ((o = get(&root, "profile")) && o->type != MSGPACK_OBJECT_NIL) {
        if (o->type != MSGPACK_OBJECT_MAP) return fail(&r, FMQ_ETYPE, "profile", "not a map");
        r.msg = "global.profile";
        if ((rc = rd_floats(&r, get(o, "mean"), "mean", (size_t)cfg.in_dim, 4, m->prof_mean)) ||
            (rc = rd_floats(&r, get(o, "std"), "std", (size_t)cfg.in_dim, 4, m->prof_std)))
            return rc;
        for (int i = 0; i < cfg.in_dim; i++)
            if (!(m->prof_std[i] > 0)) return fail(&r, FMQ_ERANGE, "std", "not positive");
        m->has_prof = 1;
        r.msg = "global";
    }
    if ((rc = rd_rule(&r, get(&root, "rule"), g->version, &g->rule)) != 0) return rc;
    if ((rc = rd_client(&r, get(&root, "client"), &g->client)) != 0) return rc;
    if ((rc = rd_selected(&r, get(&root, "selected"), g)) != 0) return rc;
    if ((rc = rd_plans(&r, get(&root, "plan"), g)) != 0) return rc;
    return rd_floats(&r, get(&root, "params"), "params", m->nparams, 4, m->params);
}

int fmq_wire_decode_status_msgpack(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                                   struct fmq_status *s, char *err, size_t errlen)
{
    struct rd r = {err, errlen, "status"};
    msgpack_object root;
    char type[16];
    int rc;

    if ((rc = open_msg(d, buf, len, "status", &root, type, &r, NULL)) != 0) return rc;
    if ((rc = rd_str(&r, &root, "agent", s->agent, sizeof s->agent, 1)) ||
        (rc = rd_str(&r, &root, "task", s->task, sizeof s->task, 1)) ||
        (rc = rd_str(&r, &root, "state", s->state, sizeof s->state, 0)) ||
        (rc = rd_u64(&r, &root, "model", UINT64_MAX, &s->model_version)) ||
        (rc = rd_u64(&r, &root, "flows", UINT64_MAX, &s->flows)) ||
        (rc = rd_u64(&r, &root, "labelled", UINT64_MAX, &s->labelled)) ||
        (rc = rd_u64(&r, &root, "buffered", UINT64_MAX, &s->buffered)) ||
        (rc = rd_u64(&r, &root, "alerts", UINT64_MAX, &s->alerts)) ||
        (rc = rd_u64(&r, &root, "bad", UINT64_MAX, &s->bad)) ||
        (rc = rd_f64(&r, &root, "ts", &s->ts)))
        return rc;
    s->calib[0] = 0;
    if (get(&root, "calib") && (rc = rd_str(&r, &root, "calib", s->calib, sizeof s->calib, 0)) != 0)
        return rc;
    return 0;
}

/* ---- secure aggregation's messages (schemas/wire.md, "secagg") ---- */

static const char *const sa_steps[] = {"",       "keys",  "shares",   "answer",
                                       "roster", "inbox", "survivors"};

const char *fmq_secagg_step_name(int step)
{
    return step >= FMQ_SA_KEYS && step <= FMQ_SA_SURVIVORS ? sa_steps[step] : "?";
}

int fmq_wire_encode_secagg(const struct fmq_secagg_msg *s, struct fmq_buf *out)
{
    msgpack_packer pk;
    int roster = s->step == FMQ_SA_ROSTER;
    if (s->step < FMQ_SA_KEYS || s->step > FMQ_SA_SURVIVORS || !fmq_id_valid(s->run) ||
        (s->len && !s->data))
        return FMQ_EINVAL;
    out->len = 0;
    msgpack_packer_init(&pk, out, buf_write);
    pk_header(&pk, 7 + 7 * roster, "secagg");
    pk_kv_str(&pk, "step", sa_steps[s->step]);
    pk_kv_str(&pk, "run", s->run);
    pk_kv_u64(&pk, "version", s->version);
    pk_kv_u64(&pk, "phase", (uint64_t)s->phase);
    if (roster) {
        pk_kv_u64(&pk, "idx", (uint64_t)s->idx);
        pk_kv_u64(&pk, "n", (uint64_t)s->n);
        pk_kv_u64(&pk, "t", (uint64_t)s->t);
        pk_kv_u64(&pk, "dim", s->dim);
        pk_kv_u64(&pk, "frac", (uint64_t)s->frac_bits);
        pk_kv_f32(&pk, "clip", s->clip);
        pk_kv_f32(&pk, "l2", s->l2);
    }
    pk_str(&pk, "data");
    msgpack_pack_bin(&pk, s->len);
    msgpack_pack_bin_body(&pk, s->data, s->len);
    return finish(out, 0);
}

/* The data's length each step must have, for n agents (roster: n is in the message). */
static size_t sa_len(int step, int n)
{
    switch (step) {
    case FMQ_SA_KEYS:
        return 2 * FMQ_SECAGG_KEY;
    case FMQ_SA_SHARES:
    case FMQ_SA_INBOX:
        return (size_t)n * FMQ_SECAGG_CIPHER;
    case FMQ_SA_ANSWER:
        return (size_t)n * FMQ_SECAGG_ANSWER;
    case FMQ_SA_ROSTER:
        return (size_t)n * 2 * FMQ_SECAGG_KEY;
    case FMQ_SA_SURVIVORS:
        return (size_t)n;
    }
    return 0;
}

int fmq_wire_decode_secagg(struct fmq_wire_dec *d, const uint8_t *buf, size_t len, int n,
                           struct fmq_secagg_msg *s, struct fmq_buf *data, char *err, size_t errlen)
{
    struct rd r = {err, errlen, "secagg"};
    msgpack_object root;
    const msgpack_object *o;
    char type[16], step[16];
    uint64_t v;
    int rc;

    memset(s, 0, sizeof *s);
    if (len > FMQ_WIRE_SA_MAX) {
        snprintf(err, errlen, "secagg: %zu bytes exceeds the %u byte limit", len,
                 (unsigned)FMQ_WIRE_SA_MAX);
        return FMQ_ETOOBIG;
    }
    if ((rc = open_msg(d, buf, len, "secagg", &root, type, &r, NULL)) != 0) return rc;
    if ((rc = rd_str(&r, &root, "step", step, sizeof step, 0)) != 0) return rc;
    for (int k = FMQ_SA_KEYS; k <= FMQ_SA_SURVIVORS && !s->step; k++)
        if (!strcmp(step, sa_steps[k])) s->step = k;
    if (!s->step) return fail(&r, FMQ_EFORMAT, "step", "unknown step");
    if ((rc = rd_str(&r, &root, "run", s->run, sizeof s->run, 1)) ||
        (rc = rd_u64(&r, &root, "version", FMQ_VERSION_MAX, &s->version)) ||
        (rc = rd_int_in(&r, &root, "phase", FMQ_PHASE_CALIB, &s->phase)))
        return rc;
    if (s->phase != FMQ_PHASE_STATS && s->phase != FMQ_PHASE_TRAIN)
        return fail(&r, FMQ_ERANGE, "phase", "not a statistics or training round");
    if (s->step == FMQ_SA_ROSTER) {
        if ((rc = rd_int_in(&r, &root, "n", FMQ_SECAGG_MAX_N, &s->n)) ||
            (rc = rd_int_in(&r, &root, "idx", FMQ_SECAGG_MAX_N, &s->idx)) ||
            (rc = rd_int_in(&r, &root, "t", FMQ_SECAGG_MAX_N, &s->t)) ||
            (rc = rd_u64(&r, &root, "dim", FMQ_MODEL_MAXPARAMS, &v)) ||
            (rc = rd_int_in(&r, &root, "frac", 30, &s->frac_bits)) ||
            (rc = rd_f32_in(&r, &root, "clip", 1e-6, 1e6, &s->clip)) ||
            (rc = rd_f32_in(&r, &root, "l2", 0, 1e6, &s->l2)))
            return rc;
        s->dim = (uint32_t)v;
        if (s->n < 2 || s->idx >= s->n || s->t < 2 || s->t > s->n || s->dim == 0)
            return fail(&r, FMQ_ERANGE, "n", "n, idx, t or dim out of range");
        n = s->n;
    }
    if (!(o = get(&root, "data")) || o->type != MSGPACK_OBJECT_BIN)
        return fail(&r, FMQ_ETYPE, "data", "missing or not binary");
    if (n == 0 && s->step != FMQ_SA_KEYS && s->step != FMQ_SA_ROSTER) { /* any roster size */
        size_t e = sa_len(s->step, 1);
        n = (int)(o->via.bin.size / e);
        if (o->via.bin.size % e) n = 0;
    }
    if (s->step != FMQ_SA_KEYS && (n < 2 || n > FMQ_SECAGG_MAX_N))
        return fail(&r, FMQ_EDIM, "data", "not the data of 2 to 255 agents");
    if (o->via.bin.size != sa_len(s->step, n)) {
        char what[96];
        snprintf(what, sizeof what, "%u bytes, the %s step of %d agents has %zu", o->via.bin.size,
                 step, n, sa_len(s->step, n));
        return fail(&r, FMQ_EDIM, "data", what);
    }
    if ((rc = fmq_buf_set(data, o->via.bin.ptr, o->via.bin.size)) != 0)
        return fail(&r, rc, "data", "out of memory");
    s->data = data->data;
    s->len = data->len;
    return 0;
}
