/* Wire tests: the committed golden vectors (schemas/vectors/MANIFEST) decode to the expected
 * result, valid ones match today's encoder byte for byte and carry the sample values, and
 * random byte mutations never crash a decoder or get a non-finite value through. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fedmq/wire.h"
#include "sample_msgs.h"
#include "test_util.h"

static uint8_t *load(const char *name, size_t *n)
{
    char path[512];
    FILE *f;
    uint8_t *b;
    long sz;
    snprintf(path, sizeof path, VEC_DIR "%s.msgpack", name);
    if (!(f = fopen(path, "rb"))) { /* a JSON vector (the status) */
        snprintf(path, sizeof path, VEC_DIR "%s.json", name);
        f = fopen(path, "rb");
    }
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, 0, SEEK_END);
    sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t)sz + 1);
    CU_ASSERT_FATAL(fread(b, 1, (size_t)sz, f) == (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static int code_of(const char *s)
{
    static const struct {
        const char *n;
        int c;
    } t[] = {{"OK", 0},
             {"EFORMAT", FMQ_EFORMAT},
             {"EVERSION", FMQ_EVERSION},
             {"ETYPE", FMQ_ETYPE},
             {"EDIM", FMQ_EDIM},
             {"ERANGE", FMQ_ERANGE},
             {"ETOOBIG", FMQ_ETOOBIG},
             {"EINVAL", FMQ_EINVAL}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].n, s) == 0) return t[i].c;
    return 999;
}

/* Decodes with the named decoder into scratch storage; returns the result code. */
static int decode_as(struct fmq_wire_dec *d, const char *decoder, const uint8_t *b, size_t n,
                     char *err)
{
    static float delta[64];
    static struct fmq_moments mo;
    if (strcmp(decoder, "update") == 0) {
        struct fmq_update u = {0};
        u.delta = delta;
        u.delta_cap = 64;
        u.stats = &mo;
        return fmq_wire_decode_update(d, b, n, 0, &u, err, 256);
    }
    if (strcmp(decoder, "global-giot") == 0) {
        struct fmq_gpt gm = {0};
        struct fmq_global g = {0};
        int rc;
        g.gpt = &gm;
        rc = fmq_wire_decode_global(d, b, n, &g, err, 256);
        fmq_gpt_free(&gm);
        return rc;
    }
    if (strcmp(decoder, "global") == 0) {
        struct fmq_model m = {0};
        struct fmq_global g = {0};
        int rc;
        g.model = &m;
        rc = fmq_wire_decode_global(d, b, n, &g, err, 256);
        fmq_model_free(&m);
        return rc;
    }
    struct fmq_status s;
    return fmq_wire_decode_status(d, b, n, &s, err, 256);
}

static void test_manifest(void)
{
    FILE *f = fopen(VEC_DIR "MANIFEST", "r");
    char line[256], name[96], decoder[32], expect[32], err[256];
    struct fmq_wire_dec d;
    int seen = 0, bad = 0;
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(fmq_wire_dec_init(&d) == 0);
    while (fgets(line, sizeof line, f)) {
        size_t n;
        uint8_t *b;
        int rc;
        if (line[0] == '#' || sscanf(line, "%95s %31s %31s", name, decoder, expect) != 3) continue;
        b = load(name, &n);
        err[0] = 0;
        rc = decode_as(&d, decoder, b, n, err);
        if (rc != code_of(expect)) {
            fprintf(stderr, "\n  %s: got %d (%s), expected %s\n", name, rc, err, expect);
            CU_FAIL("vector result differs from MANIFEST");
        }
        if (rc != 0) {
            CU_ASSERT(err[0] != 0); /* every rejection says why */
            bad++;
        }
        free(b);
        seen++;
    }
    fclose(f);
    fmq_wire_dec_free(&d);
    CU_ASSERT(seen >= 20);
    CU_ASSERT(bad >= 15);
}

static void test_valid_vectors_match_encoder(void)
{
    struct fmq_buf b = {0};
    struct fmq_update u;
    struct fmq_moments mo;
    struct fmq_global g;
    struct fmq_model m;
    struct fmq_status s;
    size_t n;
    uint8_t *v;

    sample_update(&u);
    CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
    v = load("update_valid", &n);
    CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
    free(v);
    sample_stats_update(&u, &mo);
    CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
    v = load("update_stats_valid", &n);
    CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
    free(v);
    sample_update(&u);
    u.compact = 1;
    u.no_metrics = 1;
    CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
    v = load("update_compact_valid", &n);
    CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
    free(v);
    CU_ASSERT_FATAL(sample_global(&g, &m) == 0);
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    v = load("global_valid", &n);
    CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
    free(v);
    fmq_model_free(&m);
    sample_status(&s);
    CU_ASSERT_FATAL(fmq_wire_encode_status(&s, &b) == 0);
    v = load("status_json_valid", &n);
    CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
    free(v);
    CU_ASSERT_FATAL(fmq_wire_encode_status_msgpack(&s, &b) == 0);
    v = load("status_valid", &n);
    CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
    free(v);
    fmq_buf_free(&b);
}

static void test_roundtrip_values(void)
{
    struct fmq_buf b = {0};
    struct fmq_wire_dec d;
    struct fmq_update u, o;
    struct fmq_moments mo, mo2;
    struct fmq_global g, g2 = {0};
    struct fmq_model m, m2 = {0}, other = {0};
    struct fmq_status s, s2;
    float delta[8];
    char err[256], type[16];

    CU_ASSERT_FATAL(fmq_wire_dec_init(&d) == 0);
    sample_update(&u);
    CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
    memset(&o, 0, sizeof o);
    o.delta = delta;
    o.delta_cap = 8;
    o.stats = &mo2;
    CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 4, &o, err, sizeof err) == 0);
    CU_ASSERT_STRING_EQUAL(o.agent, "agent-1");
    CU_ASSERT_EQUAL(o.base_version, 3);
    CU_ASSERT_EQUAL(o.seq, 7);
    CU_ASSERT_EQUAL(o.n_examples, 1000);
    CU_ASSERT_EQUAL(o.dim, 4);
    CU_ASSERT_EQUAL(o.has_stats, 0);
    CU_ASSERT(memcmp(delta, sample_delta, sizeof sample_delta) == 0);
    CU_ASSERT_DOUBLE_EQUAL(o.metrics.f1, 0.5, 1e-7);
    /* the model's dimension is enforced */
    CU_ASSERT_EQUAL(fmq_wire_decode_update(&d, b.data, b.len, 5, &o, err, sizeof err), FMQ_EDIM);
    o.delta_cap = 3;
    CU_ASSERT_EQUAL(fmq_wire_decode_update(&d, b.data, b.len, 0, &o, err, sizeof err), FMQ_EDIM);
    CU_ASSERT(fmq_wire_peek(&d, b.data, b.len, type, err, sizeof err) == 0);
    CU_ASSERT_STRING_EQUAL(type, "update");

    /* a lean update (client.report 0): no metrics map, 50-odd bytes fewer, the rest intact */
    {
        size_t full = b.len;
        u.no_metrics = 1;
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        CU_ASSERT(b.len + 40 < full);
        o.delta_cap = 8;
        CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 4, &o, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(o.no_metrics, 1);
        CU_ASSERT_EQUAL(o.metrics.n_val, 0);
        CU_ASSERT_EQUAL(o.seq, 7);
        CU_ASSERT(memcmp(delta, sample_delta, sizeof sample_delta) == 0);
        u.no_metrics = 0;
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 4, &o, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(o.no_metrics, 0);
    }

    /* without ids (client.ids 0) the topic names agent and task; with them they must match it */
    {
        static const uint8_t only_agent[] = {0x84, 0xa1, 'v', 0x01, 0xa4, 't', 'y',  'p',  'e',
                                             0xa6, 'u',  'p', 'd',  'a',  't', 'e',  0xa5, 'a',
                                             'g',  'e',  'n', 't',  0xa1, 'x', 0xa1, 'n',  0x01};
        size_t full = b.len;
        u.no_ids = 1;
        strcpy(u.agent, "a/b"); /* not encoded, so not checked */
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        CU_ASSERT_EQUAL(b.len + strlen("agentagent-1taskiot23") + 4, full);
        CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 4, &o, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(o.no_ids, 1);
        CU_ASSERT_STRING_EQUAL(o.agent, "");
        CU_ASSERT(memcmp(delta, sample_delta, sizeof sample_delta) == 0);
        CU_ASSERT_FATAL(
            fmq_update_topic_ids(&o, "fedmq/site/task-1/update/gw-7", err, sizeof err) == 0);
        CU_ASSERT_STRING_EQUAL(o.agent, "gw-7");
        CU_ASSERT_STRING_EQUAL(o.task, "task-1");
        CU_ASSERT_EQUAL(fmq_update_topic_ids(&o, "task-1/update/", err, sizeof err), FMQ_EFORMAT);
        CU_ASSERT_EQUAL(fmq_update_topic_ids(&o, "update/gw-7", err, sizeof err), FMQ_EFORMAT);
        CU_ASSERT_EQUAL(fmq_update_topic_ids(&o, "f/task-1/model/gw-7", err, sizeof err),
                        FMQ_EFORMAT);
        CU_ASSERT(strstr(err, "f/task-1/model/gw-7") != NULL);
        u.no_ids = 0;
        strcpy(u.agent, "agent-1");
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        CU_ASSERT_EQUAL(b.len, full);
        CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 4, &o, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(o.no_ids, 0);
        CU_ASSERT_EQUAL(fmq_update_topic_ids(&o, "r/iot23/update/agent-1", err, sizeof err), 0);
        CU_ASSERT_EQUAL(fmq_update_topic_ids(&o, "r/iot23/update/agent-2", err, sizeof err),
                        FMQ_EINVAL);
        CU_ASSERT(strstr(err, "update.agent") != NULL);
        CU_ASSERT_EQUAL(fmq_update_topic_ids(&o, "r/task-2/update/agent-1", err, sizeof err),
                        FMQ_EINVAL);
        CU_ASSERT(strstr(err, "update.task") != NULL);
        /* one of the two alone is malformed: the missing one is named */
        CU_ASSERT_EQUAL(
            fmq_wire_decode_update(&d, only_agent, sizeof only_agent, 4, &o, err, sizeof err),
            FMQ_EFORMAT);
        CU_ASSERT(strstr(err, "task") != NULL);
    }

    /* the compact envelope (client.envelope 2): a letter per key, no ids, the same values */
    {
        size_t lean;
        u.no_metrics = 1;
        u.no_ids = 1;
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        lean = b.len;
        u.no_ids = 0; /* compact implies it */
        u.compact = 1;
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        CU_ASSERT(b.len + 20 <= lean);
        CU_ASSERT_EQUAL(b.data[3], FMQ_WIRE_UPDATE_COMPACT); /* 0x8N, 0xa1 'v', then the version */
        memset(&o, 0, sizeof o);
        o.delta = delta;
        o.delta_cap = 8;
        o.stats = &mo2;
        CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 4, &o, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(o.compact, 1);
        CU_ASSERT_EQUAL(o.no_ids, 1);
        CU_ASSERT_EQUAL(o.base_version, 3);
        CU_ASSERT_EQUAL(o.seq, 7);
        CU_ASSERT_EQUAL(o.n_examples, 1000);
        CU_ASSERT_DOUBLE_EQUAL(o.ts, 1700000000.5, 0);
        CU_ASSERT_EQUAL(o.codec, FMQ_CODEC_DENSE_F32);
        CU_ASSERT(memcmp(delta, sample_delta, sizeof sample_delta) == 0);
        CU_ASSERT_EQUAL(fmq_wire_decode_update(&d, b.data, b.len, 5, &o, err, sizeof err),
                        FMQ_EDIM);
        CU_ASSERT(strstr(err, "update.d:") != NULL); /* the key as it is on the wire */
        u.no_metrics = 0;                            /* with metrics */
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 4, &o, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(o.no_metrics, 0);
        CU_ASSERT_EQUAL(o.metrics.n_val, 200);
        sample_stats_update(&u, &mo); /* and a statistics update */
        u.compact = 1;
        CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
        CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 0, &o, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(o.has_stats, 1);
        CU_ASSERT_EQUAL(o.codec, FMQ_CODEC_NONE);
        CU_ASSERT_DOUBLE_EQUAL(mo2.mean[5], 2.5, 0);
        sample_update(&u);
    }

    sample_stats_update(&u, &mo);
    CU_ASSERT_FATAL(fmq_wire_encode_update(&u, &b) == 0);
    o.delta_cap = 8;
    CU_ASSERT_FATAL(fmq_wire_decode_update(&d, b.data, b.len, 0, &o, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(o.has_stats, 1);
    CU_ASSERT_EQUAL(o.codec, FMQ_CODEC_NONE);
    CU_ASSERT_DOUBLE_EQUAL(mo2.mean[5], 2.5, 0);

    CU_ASSERT_FATAL(sample_global(&g, &m) == 0);
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    g2.model = &m2;
    CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(g2.version, 4);
    CU_ASSERT_EQUAL(g2.phase, FMQ_PHASE_TRAIN);
    CU_ASSERT_EQUAL(m2.nparams, m.nparams);
    CU_ASSERT(memcmp(m2.params, m.params, m.nparams * sizeof(float)) == 0);
    CU_ASSERT(memcmp(m2.norm_std, m.norm_std, FMQ_FEAT_DIM * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(m2.has_norm, 1);
    /* a model of another shape is refused, not reshaped */
    {
        struct fmq_model_config c = m.cfg;
        c.hidden[0] = 8;
        CU_ASSERT_FATAL(fmq_model_init(&other, &c) == 0);
        g2.model = &other;
        CU_ASSERT_EQUAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err), FMQ_EDIM);
    }
    sample_status(&s);
    CU_ASSERT_FATAL(fmq_wire_encode_status(&s, &b) == 0);
    CU_ASSERT_FATAL(fmq_wire_decode_status(&d, b.data, b.len, &s2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(b.data[0], '{'); /* JSON, as dashboards read it */
    CU_ASSERT_EQUAL(s2.alerts, 17);
    CU_ASSERT_STRING_EQUAL(s2.state, "online");
    CU_ASSERT_DOUBLE_EQUAL(s2.ts, s.ts, 1e-6);
    CU_ASSERT_STRING_EQUAL(s2.calib, s.calib);
    CU_ASSERT_FATAL(fmq_wire_encode_status_msgpack(&s, &b) == 0); /* the older form */
    CU_ASSERT_FATAL(fmq_wire_decode_status(&d, b.data, b.len, &s2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(s2.alerts, 17);
    /* encoders refuse ids that are not safe topic levels */
    strcpy(s.agent, "a/b");
    CU_ASSERT_EQUAL(fmq_wire_encode_status(&s, &b), FMQ_EINVAL);
    fmq_model_free(&m);
    fmq_model_free(&m2);
    fmq_model_free(&other);
    fmq_buf_free(&b);
    fmq_wire_dec_free(&d);
}

static void test_client_plan_and_selection(void)
{
    static const char sel[2][FMQ_ID_MAX] = {"site-x", "agent-1"};
    struct fmq_buf b = {0};
    struct fmq_wire_dec d;
    struct fmq_global g, g2;
    struct fmq_model m, m2 = {0};
    char err[256];
    CU_ASSERT_FATAL(fmq_wire_dec_init(&d) == 0);
    CU_ASSERT_FATAL(sample_global(&g, &m) == 0);
    g.client.codec = FMQ_CODEC_TOPK_I8;
    g.client.ratio = 0.02f;
    g.client.gsfs = 1;
    g.client.proximal_mu = 0.5f;
    g.client.lr = 0.0316f;
    g.selected = sel;
    g.nselected = 2;
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    memset(&g2, 0, sizeof g2);
    g2.model = &m2;
    g2.self = "agent-1";
    CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(g2.client.codec, FMQ_CODEC_TOPK_I8);
    CU_ASSERT_DOUBLE_EQUAL(g2.client.ratio, 0.02, 1e-7);
    CU_ASSERT_EQUAL(g2.client.gsfs, 1);
    CU_ASSERT_EQUAL(g2.client.report, 1); /* absent from the message: the default */
    CU_ASSERT_EQUAL(g2.client.ids, 1);
    CU_ASSERT_DOUBLE_EQUAL(g2.client.proximal_mu, 0.5, 1e-7);
    CU_ASSERT_EQUAL(g2.nselected, 2);
    CU_ASSERT_EQUAL(g2.self_selected, 1);
    g2.self = "agent-2";
    CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(g2.self_selected, 0);
    CU_ASSERT_EQUAL(g2.has_self_plan, 0);
    {
        struct fmq_agent_plan plans[2] = {{"site-x", FMQ_CODEC_DENSE_F16, 1.0f, 0},
                                          {"agent-2", FMQ_CODEC_TOPK_I8, 0.01f, 1.5f}};
        g.plans = plans;
        g.nplans = 2;
        CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
        CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
        CU_ASSERT_EQUAL(g2.has_self_plan, 1);
        CU_ASSERT_EQUAL(g2.self_plan.codec, FMQ_CODEC_TOPK_I8);
        CU_ASSERT_DOUBLE_EQUAL(g2.self_plan.time_budget, 1.5, 1e-6);
    }
    g.plans = NULL; /* the plans above are out of scope */
    g.nplans = 0;
    g.client.report = 0;
    g.client.ids = 0;
    g.client.codec = FMQ_CODEC_TOPK_SIGN;
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(g2.client.report, 0);
    CU_ASSERT_EQUAL(g2.client.ids, 0);
    CU_ASSERT_EQUAL(g2.client.envelope, FMQ_WIRE_VERSION); /* absent: 1 */
    g.client.envelope = FMQ_WIRE_UPDATE_COMPACT;
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(g2.client.envelope, FMQ_WIRE_UPDATE_COMPACT);
    g.client.envelope = 3; /* no such envelope: refused, named */
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    CU_ASSERT_EQUAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err), FMQ_ERANGE);
    CU_ASSERT(strstr(err, "envelope") != NULL);
    g.client.envelope = 0;
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    CU_ASSERT_EQUAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err), FMQ_ERANGE);
    CU_ASSERT_EQUAL(g2.client.codec, FMQ_CODEC_TOPK_SIGN);
    fmq_model_free(&m);
    fmq_model_free(&m2);
    fmq_buf_free(&b);
    fmq_wire_dec_free(&d);
}

static void test_giot_global(void)
{
    struct fmq_buf b = {0};
    struct fmq_wire_dec d;
    struct fmq_global g, g2;
    struct fmq_gpt m, m2 = {0}, other = {0};
    char err[256];
    size_t n;
    uint8_t *v;
    CU_ASSERT_FATAL(fmq_wire_dec_init(&d) == 0);
    CU_ASSERT_FATAL(sample_giot_global(&g, &m) == 0);
    CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
    v = load("global_giot_valid", &n); /* the committed vector is today's encoding */
    CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
    free(v);
    memset(&g2, 0, sizeof g2);
    g2.gpt = &m2;
    CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(g2.kind, FMQ_MODEL_GIOT);
    CU_ASSERT_EQUAL(g2.giot_context, 2);
    CU_ASSERT_EQUAL(m2.nparams, m.nparams);
    CU_ASSERT(memcmp(m2.params, m.params, m.nparams * sizeof(float)) == 0);
    /* a model of another shape is refused, not reshaped */
    {
        struct fmq_gpt_config c = m.cfg;
        c.channels = 16;
        CU_ASSERT_FATAL(fmq_gpt_init(&other, &c) == 0);
        g2.gpt = &other;
        CU_ASSERT_EQUAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err), FMQ_EDIM);
    }
    /* adapter mode: rank, alpha and the adapters travel; a decoder holding a full model of the
     * same config gains adapters, one holding another rank refuses */
    {
        struct fmq_gpt m3 = {0}, r8 = {0};
        CU_ASSERT_FATAL(fmq_gpt_lora_init(&m, 2, 4.0f, 9) == 0);
        for (size_t i = 0; i < m.lora_n; i++) m.lora[i] = (float)i / 1000.0f;
        CU_ASSERT_FATAL(fmq_wire_encode_global(&g, &b) == 0);
        v = load("global_giot_lora_valid", &n);
        CU_ASSERT(n == b.len && memcmp(v, b.data, n) == 0);
        free(v);
        g2.gpt = &m3;
        CU_ASSERT_FATAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err) == 0);
        CU_ASSERT(m3.lora_rank == 2 && m3.lora_alpha == 4.0f && m3.lora_n == m.lora_n);
        CU_ASSERT(memcmp(m3.lora, m.lora, m.lora_n * sizeof(float)) == 0);
        CU_ASSERT(memcmp(m3.params, m.params, m.nparams * sizeof(float)) == 0);
        CU_ASSERT_FATAL(fmq_gpt_copy(&r8, &m3) == 0);
        CU_ASSERT_FATAL(fmq_gpt_lora_init(&r8, 3, 4.0f, 1) == 0);
        g2.gpt = &r8;
        CU_ASSERT_EQUAL(fmq_wire_decode_global(&d, b.data, b.len, &g2, err, sizeof err), FMQ_EDIM);
        CU_ASSERT(strstr(err, "lora_rank") != NULL);
        fmq_gpt_free(&m3);
        fmq_gpt_free(&r8);
    }
    fmq_gpt_free(&m);
    fmq_gpt_free(&m2);
    fmq_gpt_free(&other);
    fmq_buf_free(&b);
    fmq_wire_dec_free(&d);
}

static void test_mutations_never_crash(void)
{
    static const char *names[] = {"update_valid",         "global_valid",
                                  "status_valid",         "update_stats_valid",
                                  "update_compact_valid", "status_json_valid"};
    static const char *decs[] = {"update", "global", "status", "update", "update", "status"};
    struct fmq_wire_dec d;
    struct fmq_rng r;
    char err[256];
    int accepted = 0, rejected = 0;
    CU_ASSERT_FATAL(fmq_wire_dec_init(&d) == 0);
    fmq_rng_seed(&r, 2024, 5);
    for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++) {
        size_t n;
        uint8_t *v = load(names[k], &n), *c = malloc(n);
        for (int it = 0; it < 3000; it++) {
            size_t len = n;
            memcpy(c, v, n);
            for (int j = 0; j < 1 + (int)fmq_rng_below(&r, 4); j++)
                c[fmq_rng_below(&r, (uint32_t)n)] = (uint8_t)fmq_rng_u32(&r);
            if (it % 5 == 0) len = fmq_rng_below(&r, (uint32_t)n + 1);
            if (decode_as(&d, decs[k], c, len, err) == 0)
                accepted++;
            else
                rejected++;
        }
        free(v);
        free(c);
    }
    CU_ASSERT(rejected > 1000);
    CU_ASSERT(accepted + rejected == 3000 * (int)(sizeof names / sizeof names[0]));
    fmq_wire_dec_free(&d);
}

static void test_check_limits(void)
{
    uint8_t big[8] = {0x92, 0x01, 0x02};
    size_t where;
    CU_ASSERT_EQUAL(fmq_wire_check(big, 3, 4, &where), 0);
    CU_ASSERT_EQUAL(fmq_wire_check(big, 2, 4, &where), FMQ_EFORMAT);
    CU_ASSERT_EQUAL(fmq_wire_check(big, (size_t)FMQ_WIRE_MAX_PAYLOAD + 1, 4, &where), FMQ_ETOOBIG);
    /* depth counts every level below the root: [[1]] has the scalar at depth 2 */
    big[0] = 0x91, big[1] = 0x91, big[2] = 0x01;
    CU_ASSERT_EQUAL(fmq_wire_check(big, 3, 2, &where), 0);
    CU_ASSERT_EQUAL(fmq_wire_check(big, 3, 1, &where), FMQ_EFORMAT);
}

/* Secure aggregation's messages: each step round-trips, a wrong data length, an unknown step,
 * a roster index outside the roster and truncations are refused; n 0 (the broker's check)
 * takes any roster of 2 to 255 agents. */
static void test_secagg_messages(void)
{
    static uint8_t data[FMQ_SECAGG_MAX_N * FMQ_SECAGG_CIPHER];
    struct fmq_wire_dec d;
    struct fmq_buf out = {0}, got_data = {0};
    struct fmq_secagg_msg m, got;
    char err[256];
    int steps[] = {FMQ_SA_KEYS,   FMQ_SA_SHARES, FMQ_SA_ANSWER,
                   FMQ_SA_ROSTER, FMQ_SA_INBOX,  FMQ_SA_SURVIVORS};
    size_t lens[] = {64,     5 * FMQ_SECAGG_CIPHER, 5 * FMQ_SECAGG_ANSWER,
                     5 * 64, 5 * FMQ_SECAGG_CIPHER, 5};
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 31 + 7);
    CU_ASSERT_FATAL(fmq_wire_dec_init(&d) == 0);
    for (int k = 0; k < 6; k++) {
        memset(&m, 0, sizeof m);
        m.step = steps[k];
        strcpy(m.run, "r1-abc");
        m.version = 42;
        m.phase = FMQ_PHASE_TRAIN;
        m.idx = 3, m.n = 5, m.t = 3, m.dim = 3137, m.frac_bits = 25, m.clip = 4, m.l2 = 2;
        m.data = data;
        m.len = lens[k];
        CU_ASSERT_FATAL(fmq_wire_encode_secagg(&m, &out) == 0);
        CU_ASSERT_EQUAL(
            fmq_wire_decode_secagg(&d, out.data, out.len, 5, &got, &got_data, err, sizeof err), 0);
        CU_ASSERT_EQUAL(got.step, m.step);
        CU_ASSERT_STRING_EQUAL(got.run, "r1-abc");
        CU_ASSERT_EQUAL(got.version, 42);
        CU_ASSERT_EQUAL(got.len, m.len);
        CU_ASSERT(memcmp(got.data, data, m.len) == 0);
        if (m.step == FMQ_SA_ROSTER)
            CU_ASSERT(got.n == 5 && got.idx == 3 && got.t == 3 && got.dim == 3137 &&
                      got.frac_bits == 25 && got.clip == 4 && got.l2 == 2);
        /* the broker's view: any roster size the length allows */
        CU_ASSERT_EQUAL(
            fmq_wire_decode_secagg(&d, out.data, out.len, 0, &got, &got_data, err, sizeof err), 0);
        if (m.step != FMQ_SA_KEYS && m.step != FMQ_SA_ROSTER) /* against a roster of 6 */
            CU_ASSERT_EQUAL(
                fmq_wire_decode_secagg(&d, out.data, out.len, 6, &got, &got_data, err, sizeof err),
                FMQ_EDIM);
        for (size_t cut = 0; cut < out.len; cut += 7) /* truncations */
            CU_ASSERT(fmq_wire_decode_secagg(&d, out.data, cut, 5, &got, &got_data, err,
                                             sizeof err) != 0);
        m.len = lens[k] - 1; /* one byte short of its step */
        CU_ASSERT_FATAL(fmq_wire_encode_secagg(&m, &out) == 0);
        CU_ASSERT(fmq_wire_decode_secagg(&d, out.data, out.len, 5, &got, &got_data, err,
                                         sizeof err) != 0);
    }
    m.step = FMQ_SA_ROSTER, m.len = 5 * 64, m.idx = 5; /* not in a roster of 5 */
    CU_ASSERT_FATAL(fmq_wire_encode_secagg(&m, &out) == 0);
    CU_ASSERT_EQUAL(
        fmq_wire_decode_secagg(&d, out.data, out.len, 0, &got, &got_data, err, sizeof err),
        FMQ_ERANGE);
    m.step = 9;
    CU_ASSERT_EQUAL(fmq_wire_encode_secagg(&m, &out), FMQ_EINVAL);
    fmq_buf_free(&out);
    fmq_buf_free(&got_data);
    fmq_wire_dec_free(&d);
}

int init_wire_tests(void)
{
    static const struct fmq_test t[] = {
        {"golden vectors (MANIFEST)", test_manifest},
        {"valid vectors match encoder", test_valid_vectors_match_encoder},
        {"round trip values", test_roundtrip_values},
        {"client plan and selection", test_client_plan_and_selection},
        {"giot global model", test_giot_global},
        {"random mutations never crash", test_mutations_never_crash},
        {"structural check limits", test_check_limits},
        {"secure aggregation messages", test_secagg_messages},
        {NULL, NULL}};
    return fmq_add_suite("wire", t);
}
