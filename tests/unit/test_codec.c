/* Codec tests: half-precision conversion against known bit patterns, round-trip error bounds of
 * every codec, top-k keeps exactly the largest magnitudes, the error-feedback invariant (what was
 * sent plus the residual equals what was accumulated), payload sizes, and hostile payloads
 * rejected with the right code. */
#include <math.h>
#include <string.h>

#include "fedmq/codec.h"
#include "fedmq/wire.h"
#include "test_util.h"

enum { DIM = 3137 };

static void fill(float *x, uint32_t n, uint64_t seed)
{
    struct fmq_rng r;
    fmq_rng_seed(&r, seed, 9);
    for (uint32_t i = 0; i < n; i++) x[i] = (float)(fmq_rng_normal(&r) * 0.01 * (1 + i % 7));
}

static void test_f16(void)
{
    CU_ASSERT_EQUAL(fmq_f32_to_f16(1.0f), 0x3c00);
    CU_ASSERT_EQUAL(fmq_f32_to_f16(-2.0f), 0xc000);
    CU_ASSERT_EQUAL(fmq_f32_to_f16(65504.0f), 0x7bff);
    CU_ASSERT_EQUAL(fmq_f32_to_f16(1e6f), 0x7bff); /* saturates, never Inf */
    CU_ASSERT_EQUAL(fmq_f32_to_f16(NAN), 0x7bff);
    CU_ASSERT_EQUAL(fmq_f32_to_f16(0.1f), 0x2e66);
    CU_ASSERT_EQUAL(fmq_f32_to_f16(5.960464477539063e-08f), 0x0001); /* smallest subnormal */
    CU_ASSERT_EQUAL(fmq_f32_to_f16(0.0f), 0x0000);
    CU_ASSERT_DOUBLE_EQUAL(fmq_f16_to_f32(0x3555), 0.333251953125, 0);
    for (int i = 1; i < 2000; i++) {
        float x = (float)i * 0.0173f - 17.0f;
        float y = fmq_f16_to_f32(fmq_f32_to_f16(x));
        CU_ASSERT(fabsf(y - x) <= fabsf(x) * 0.00049f + 6e-8f); /* 2^-11 relative */
    }
}

static double roundtrip(int codec, double ratio, int stochastic, float *x, float *y, size_t *bytes)
{
    struct fmq_codec_opts o;
    struct fmq_codec_ws w;
    struct fmq_buf b = {0};
    float sent[DIM];
    char err[200];
    double maxerr = 0;
    fmq_codec_opts_default(&o);
    o.codec = codec;
    o.ratio = ratio;
    o.stochastic = stochastic;
    CU_ASSERT_FATAL(fmq_codec_ws_init(&w, DIM, 3) == 0);
    CU_ASSERT_FATAL(fmq_codec_encode(&o, &w, x, &b, sent) == 0);
    CU_ASSERT_FATAL(fmq_codec_decode(codec, b.data, b.len, DIM, y, err, sizeof err) == 0);
    /* the encoder's own account of what it sent is what the decoder reads */
    CU_ASSERT(memcmp(sent, y, sizeof sent) == 0);
    for (int i = 0; i < DIM; i++) maxerr = fmax(maxerr, fabs((double)y[i] - x[i]));
    *bytes = b.len;
    fmq_buf_free(&b);
    fmq_codec_ws_free(&w);
    return maxerr;
}

static void test_dense_bounds(void)
{
    static float x[DIM], y[DIM];
    size_t bytes;
    float mx = 0;
    fill(x, DIM, 1);
    for (int i = 0; i < DIM; i++) mx = fmaxf(mx, fabsf(x[i]));
    CU_ASSERT_EQUAL(roundtrip(FMQ_CODEC_DENSE_F32, 1, 0, x, y, &bytes), 0);
    CU_ASSERT_EQUAL(bytes, DIM * 4);
    CU_ASSERT(roundtrip(FMQ_CODEC_DENSE_F16, 1, 0, x, y, &bytes) <= mx * 0.00049 + 1e-7);
    CU_ASSERT_EQUAL(bytes, DIM * 2);
    /* nearest rounding: at most half a quantization step (block max / 127 / 2) */
    CU_ASSERT(roundtrip(FMQ_CODEC_DENSE_I8, 1, 0, x, y, &bytes) <= mx / 254.0 * 1.0001);
    CU_ASSERT_EQUAL(bytes, 2 + ((DIM + 63) / 64) * 4 + DIM);
    /* stochastic: at most one step, and unbiased on average */
    CU_ASSERT(roundtrip(FMQ_CODEC_DENSE_I8, 1, 1, x, y, &bytes) <= mx / 127.0 * 1.0001);
}

/* The 4-bit and sign codecs: every value as the layout says, Rice-coded indices, and the
 * few-hundred-byte budget they exist for. */
static void test_small_value_codecs(void)
{
    static float x[DIM], y[DIM];
    size_t bytes_i8, bytes_i4, bytes_sign;
    fill(x, DIM, 4);
    /* ratio 1: pure quantization. int4, nearest: half a step of block max / 7 */
    {
        double mx = 0;
        for (int i = 0; i < 64; i++) mx = fmax(mx, fabs(x[i]));
        CU_ASSERT(roundtrip(FMQ_CODEC_TOPK_I4, 1, 0, x, y, &bytes_i4) > 0);
        for (int i = 0; i < 64; i++) CU_ASSERT(fabs((double)y[i] - x[i]) <= mx / 14 * 1.0001);
    }
    /* sign: each value is +-(the mean magnitude of its block of 64 selected values) */
    roundtrip(FMQ_CODEC_TOPK_SIGN, 1, 0, x, y, &bytes_sign);
    {
        double mean = 0;
        for (int i = 64; i < 128; i++) mean += fabs(x[i]) / 64;
        for (int i = 64; i < 128; i++) {
            CU_ASSERT_DOUBLE_EQUAL(fabs(y[i]), mean, 1e-6);
            CU_ASSERT((y[i] < 0) == (x[i] < 0));
        }
    }
    /* k = dim: varint 2 bytes, Rice r = 0 (every gap 0: one bit each), 50 blocks of scale + bits */
    CU_ASSERT_EQUAL(bytes_sign, 2 + 1 + (DIM + 7) / 8 + 2 + ((DIM + 63) / 64) * 4 + (DIM / 64) * 8 +
                                    ((DIM % 64) + 7) / 8);
    /* 4% of 3137 = 126 values: Rice indices and small values keep the payload small */
    roundtrip(FMQ_CODEC_TOPK_I8, 0.04, 0, x, y, &bytes_i8);
    roundtrip(FMQ_CODEC_TOPK_I4, 0.04, 0, x, y, &bytes_i4);
    roundtrip(FMQ_CODEC_TOPK_SIGN, 0.04, 0, x, y, &bytes_sign);
    CU_ASSERT(bytes_i8 >= 1 + 126 + 2 + 2 * 4 + 126);            /* varint indices, a byte each */
    CU_ASSERT(bytes_i4 <= 1 + 1 + 126 * 8 / 8 + 2 + 2 * 4 + 63); /* <= 8 bits per index */
    CU_ASSERT(bytes_sign <= 1 + 1 + 126 + 2 + 2 * 4 + 16);
    CU_ASSERT(bytes_sign < bytes_i4 && bytes_i4 < bytes_i8);
    /* top-k still keeps exactly the largest magnitudes */
    {
        float min_kept = INFINITY, max_dropped = 0;
        int k = 0;
        for (int i = 0; i < DIM; i++)
            if (y[i] != 0) {
                k++;
                min_kept = fminf(min_kept, fabsf(x[i]));
            } else
                max_dropped = fmaxf(max_dropped, fabsf(x[i]));
        CU_ASSERT_EQUAL(k, 126);
        CU_ASSERT(min_kept >= max_dropped);
    }
}

static void test_stochastic_unbiased(void)
{
    struct fmq_codec_opts o;
    struct fmq_codec_ws w;
    struct fmq_buf b = {0};
    float x[64], y[64];
    double mean = 0;
    char err[100];
    for (int i = 0; i < 64; i++) x[i] = i == 0 ? 1.0f : 0.3f / 127.0f; /* 0.3 of a step */
    fmq_codec_opts_default(&o);
    o.codec = FMQ_CODEC_DENSE_I8;
    o.stochastic = 1;
    CU_ASSERT_FATAL(fmq_codec_ws_init(&w, 64, 11) == 0);
    for (int t = 0; t < 4000; t++) {
        CU_ASSERT_FATAL(fmq_codec_encode(&o, &w, x, &b, NULL) == 0);
        CU_ASSERT_FATAL(fmq_codec_decode(o.codec, b.data, b.len, 64, y, err, sizeof err) == 0);
        mean += y[5];
    }
    mean /= 4000;
    CU_ASSERT_DOUBLE_EQUAL(mean, 0.3 / 127.0, 0.03 / 127.0);
    fmq_buf_free(&b);
    fmq_codec_ws_free(&w);
}

static void test_topk_selection(void)
{
    static float x[DIM], y[DIM];
    size_t bytes;
    int k = 0;
    float min_kept = INFINITY, max_dropped = 0;
    fill(x, DIM, 2);
    roundtrip(FMQ_CODEC_TOPK_F32, 0.01, 0, x, y, &bytes);
    for (int i = 0; i < DIM; i++) {
        if (y[i] != 0) {
            k++;
            CU_ASSERT_EQUAL(y[i], x[i]);
            min_kept = fminf(min_kept, fabsf(x[i]));
        } else
            max_dropped = fmaxf(max_dropped, fabsf(x[i]));
    }
    CU_ASSERT_EQUAL(k, 32); /* ceil(0.01 * 3137) */
    CU_ASSERT(min_kept >= max_dropped);
    CU_ASSERT(bytes < 32 * 4 + 3 * 32 + 2);
    /* topk-i8 at 1%: the few-hundred-byte update */
    roundtrip(FMQ_CODEC_TOPK_I8, 0.01, 0, x, y, &bytes);
    CU_ASSERT(bytes <= 1 + 2 * 32 + 2 + 4 + 32);
    /* ratio 1 keeps everything */
    CU_ASSERT_EQUAL(roundtrip(FMQ_CODEC_TOPK_F32, 1.0, 0, x, y, &bytes), 0);
}

static void test_error_feedback_invariant(void)
{
    static float d[DIM], total[DIM], sent_sum[DIM], y[DIM];
    struct fmq_codec_opts o;
    struct fmq_codec_ws w;
    struct fmq_ef ef;
    struct fmq_buf b = {0};
    char err[100];
    fmq_codec_opts_default(&o);
    o.codec = FMQ_CODEC_TOPK_I8;
    o.ratio = 0.02;
    CU_ASSERT_FATAL(fmq_codec_ws_init(&w, DIM, 5) == 0 && fmq_ef_init(&ef, DIM) == 0);
    memset(total, 0, sizeof total);
    memset(sent_sum, 0, sizeof sent_sum);
    for (int step = 0; step < 25; step++) {
        o.codec = step % 3 == 0   ? FMQ_CODEC_TOPK_I8
                  : step % 3 == 1 ? FMQ_CODEC_TOPK_SIGN
                                  : FMQ_CODEC_TOPK_I4;
        fill(d, DIM, 100 + (uint64_t)step);
        CU_ASSERT_FATAL(fmq_ef_encode(&ef, &o, &w, d, &b) == 0);
        CU_ASSERT_FATAL(fmq_codec_decode(o.codec, b.data, b.len, DIM, y, err, sizeof err) == 0);
        for (int i = 0; i < DIM; i++) {
            total[i] += d[i];
            sent_sum[i] += y[i];
        }
    }
    /* nothing lost, only delayed: sent + residual == accumulated */
    for (int i = 0; i < DIM; i++)
        CU_ASSERT_DOUBLE_EQUAL(sent_sum[i] + ef.residual[i], total[i], 1e-4);
    fmq_ef_free(&ef);
    fmq_codec_ws_free(&w);
    fmq_buf_free(&b);
}

static int dec(int codec, const char *bytes, size_t n, uint32_t dim)
{
    float out[16];
    char err[200] = "";
    int rc = fmq_codec_decode(codec, (const uint8_t *)bytes, n, dim, out, err, sizeof err);
    if (rc) CU_ASSERT(err[0] != 0);
    return rc;
}

static void test_hostile_payloads(void)
{
    { /* masked words: copied bit for bit (a NaN pattern too), exactly dim x 4 bytes */
        float out[2];
        uint32_t w[2];
        char err[128];
        CU_ASSERT_EQUAL(fmq_codec_decode(FMQ_CODEC_MASKED,
                                         (const uint8_t *)"\x01\0\0\0\0\0\xc0\x7f", 8, 2, out, err,
                                         sizeof err),
                        0);
        memcpy(w, out, sizeof w);
        CU_ASSERT(w[0] == 1 && w[1] == 0x7fc00000u);
        CU_ASSERT_EQUAL(dec(FMQ_CODEC_MASKED, "\0\0\0\0", 4, 2), FMQ_EFORMAT);
        CU_ASSERT_EQUAL(dec(FMQ_CODEC_MASKED, "\0\0\0\0\0", 5, 1), FMQ_EFORMAT);
    }
    /* dense */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_F32, "\0\0\x80\x3f", 4, 1), 0);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_F32, "\0\0\x80\x3f", 4, 2), FMQ_EDIM);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_F32, "\0\0\xc0\x7f", 4, 1), FMQ_ERANGE);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_F16, "\x00\x7c", 2, 1), FMQ_ERANGE); /* Inf */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_I8, "\x08\x00\0\0\x80\x3f\x01", 7, 1), 0);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_I8, "\x04\x00\0\0\x80\x3f\x01", 7, 1), FMQ_EFORMAT);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_I8, "\x08\x00\0\0\x80\xbf\x01", 7, 1), FMQ_ERANGE);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_I8, "\x08\x00\0\0\x80\x3f\x80", 7, 1), FMQ_EFORMAT);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_DENSE_I8, "\x08\x00\0\0\x80\x3f\x01\x02", 8, 1), FMQ_EDIM);
    /* top-k: k=1, index 2, value 1.0f */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x01\x02\0\0\x80\x3f", 6, 4), 0);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x01\x04\0\0\x80\x3f", 6, 4), FMQ_EFORMAT);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x00", 1, 4), FMQ_EFORMAT);           /* k = 0 */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x05\0\0\0\0\0", 6, 4), FMQ_EFORMAT); /* k > dim */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x81\x00\x02\0\0\x80\x3f", 7, 4), FMQ_EFORMAT);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\xff\xff\xff\xff\xff\x01", 6, 4), FMQ_EFORMAT);
    /* two indices: 1 then gap 3 -> 5, outside dim 4 */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x02\x01\x03\0\0\x80\x3f\0\0\x80\x3f", 11, 4),
                    FMQ_EFORMAT);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x01\x02\0\0\x80", 5, 4), FMQ_EDIM); /* short */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_F32, "\x01\x02\0\0\xc0\x7f", 6, 4), FMQ_ERANGE);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_I8, "\x01\x02\x08\x00\0\0\x80\x3f\x05", 9, 4), 0);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_I8, "\x01\x02\x08\x00\0\0\x80\x3f", 8, 4), FMQ_EDIM);
    /* topk-sign, dim 4: k 1, Rice r 0, gap 2 as bits 1 1 0 (0x03), block 8, scale 1.0, sign */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00\x03\x08\x00\0\0\x80\x3f\x01", 10, 4), 0);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00\x03\x08\x00\0\0\x80\x3f\x02", 10, 4),
                    FMQ_EFORMAT); /* a sign bit beyond the one value */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x19\x03\x08\x00\0\0\x80\x3f\x01", 10, 4),
                    FMQ_EFORMAT); /* Rice parameter 25 */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00\x0b\x08\x00\0\0\x80\x3f\x01", 10, 4),
                    FMQ_EFORMAT); /* nonzero bits after the last index */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00\x0f\x08\x00\0\0\x80\x3f\x01", 10, 4),
                    FMQ_EFORMAT); /* index 4 in dim 4 */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00\xff\x08\x00\0\0\x80\x3f\x01", 10, 4),
                    FMQ_EFORMAT); /* unary run past dim */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00\x03\x0c\x00\0\0\x80\x3f\x01", 10, 4),
                    FMQ_EFORMAT); /* block 12: not whole bytes of signs */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00\x03\x08\x00\0\0\x80\x3f", 9, 4), FMQ_EDIM);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_SIGN, "\x01\x00", 2, 4), FMQ_EFORMAT); /* no index bits */
    /* topk-i4: the same index, value 7 x 1.0; -8 and padding nibbles are refused */
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_I4, "\x01\x00\x03\x08\x00\0\0\x80\x3f\x07", 10, 4), 0);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_I4, "\x01\x00\x03\x08\x00\0\0\x80\x3f\x08", 10, 4),
                    FMQ_EFORMAT);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_I4, "\x01\x00\x03\x08\x00\0\0\x80\x3f\x17", 10, 4),
                    FMQ_EFORMAT);
    CU_ASSERT_EQUAL(dec(FMQ_CODEC_TOPK_I4, "\x01\x00\x03\x08\x00\0\0\x80\xbf\x07", 10, 4),
                    FMQ_ERANGE); /* negative scale */
    {
        float out[4];
        char err[100];
        CU_ASSERT(fmq_codec_decode(FMQ_CODEC_TOPK_I4,
                                   (const uint8_t *)"\x01\x00\x03\x08\x00\0\0\x80\x3f\x0f", 10, 4,
                                   out, err, sizeof err) == 0);
        CU_ASSERT(out[2] == -1.0f && out[0] == 0 && out[1] == 0 && out[3] == 0);
        CU_ASSERT(fmq_codec_decode(FMQ_CODEC_TOPK_SIGN,
                                   (const uint8_t *)"\x01\x00\x03\x08\x00\0\0\x80\x3f\x01", 10, 4,
                                   out, err, sizeof err) == 0);
        CU_ASSERT(out[2] == -1.0f);
    }
    CU_ASSERT_EQUAL(dec(99, "", 0, 4), FMQ_EFORMAT);
}

static void test_random_payloads_never_crash(void)
{
    struct fmq_rng r;
    uint8_t buf[64];
    float out[40];
    char err[200];
    fmq_rng_seed(&r, 77, 1);
    for (int it = 0; it < 20000; it++) {
        size_t n = fmq_rng_below(&r, sizeof buf + 1);
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)fmq_rng_u32(&r);
        (void)fmq_codec_decode(1 + (int)fmq_rng_below(&r, FMQ_CODEC_LAST), buf, n,
                               1 + fmq_rng_below(&r, 40), out, err, sizeof err);
    }
    CU_PASS("no crash");
}

static void test_names(void)
{
    int c;
    for (int i = 1; i <= FMQ_CODEC_LAST; i++) {
        CU_ASSERT(fmq_codec_parse(fmq_codec_name(i), &c) == 0);
        CU_ASSERT_EQUAL(c, i);
    }
    CU_ASSERT_EQUAL(fmq_codec_parse("dense-f64", &c), FMQ_EINVAL);
}

int init_codec_tests(void)
{
    static const struct fmq_test t[] = {
        {"half precision", test_f16},
        {"dense error bounds", test_dense_bounds},
        {"int4 and sign values, Rice indices", test_small_value_codecs},
        {"stochastic rounding unbiased", test_stochastic_unbiased},
        {"top-k selection", test_topk_selection},
        {"error feedback invariant", test_error_feedback_invariant},
        {"hostile payloads", test_hostile_payloads},
        {"random payloads never crash", test_random_payloads_never_crash},
        {"names", test_names},
        {NULL, NULL}};
    return fmq_add_suite("codec", t);
}
