/* Update codecs (see codec.h). Payload layouts, all little-endian:
 *   dense-f32: dim x float32          dense-f16: dim x binary16
 *   dense-i8:  per block of `block` values: float32 scale, then the block's int8 values
 *              (block size is the first byte pair: uint16 block, then the blocks)
 *   topk-*:    varint k, k varint gaps (first index, then index - previous - 1), then the k
 *              values in f32 / f16 / the i8 block layout above.
 * Varints are LEB128, at most 5 bytes, minimal (no trailing zero continuation). */
#include "fedmq/codec.h"
#include "fedmq/wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"none",     "dense-f32", "dense-f16", "dense-i8",
                                    "topk-f32", "topk-f16",  "topk-i8"};

const char *fmq_codec_name(int c)
{
    return c >= 0 && c <= FMQ_CODEC_TOPK_I8 ? names[c] : "?";
}

int fmq_codec_parse(const char *name, int *codec)
{
    for (int i = 1; i <= FMQ_CODEC_TOPK_I8; i++)
        if (strcmp(name, names[i]) == 0) {
            *codec = i;
            return 0;
        }
    return FMQ_EINVAL;
}

void fmq_codec_opts_default(struct fmq_codec_opts *o)
{
    o->codec = FMQ_CODEC_DENSE_F32;
    o->ratio = 0.01;
    o->block = FMQ_CODEC_BLOCK_DEFAULT;
    o->stochastic = 0;
    o->seed = 1;
}

int fmq_codec_ws_init(struct fmq_codec_ws *w, uint32_t dim, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    if (dim == 0) return FMQ_EINVAL;
    w->dim = dim;
    w->idx = malloc(dim * sizeof *w->idx);
    w->tmp = malloc(dim * sizeof *w->tmp);
    fmq_rng_seed(&w->rng, seed, 0x636f646563ULL);
    if (!w->idx || !w->tmp) {
        fmq_codec_ws_free(w);
        return FMQ_ENOMEM;
    }
    return 0;
}

void fmq_codec_ws_free(struct fmq_codec_ws *w)
{
    free(w->idx);
    free(w->tmp);
    w->idx = NULL;
    w->tmp = NULL;
}

/* ---- half precision (IEEE 754-2008 binary16) ---- */

uint16_t fmq_f32_to_f16(float f)
{
    uint32_t x;
    uint16_t sign;
    int32_t e;
    uint32_t m;

    memcpy(&x, &f, 4);
    sign = (uint16_t)((x >> 16) & 0x8000u);
    e = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    m = x & 0x7fffffu;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7bffu); /* NaN/Inf: saturate */
    if (e >= 31) return (uint16_t)(sign | 0x7bffu);                    /* 65504 */
    if (e <= 0) {                                                      /* subnormal or zero */
        uint32_t shift, half, r;
        if (e < -10) return sign;
        m |= 0x800000u;
        shift = (uint32_t)(14 - e);
        half = 1u << (shift - 1);
        r = m >> shift;
        if ((m & ((1u << shift) - 1)) > half || ((m & ((1u << shift) - 1)) == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    {
        uint32_t r = ((uint32_t)e << 10) | (m >> 13), rest = m & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (r & 1))) r++; /* may carry into exponent */
        if (r >= 0x7c00u) r = 0x7bffu;
        return (uint16_t)(sign | r);
    }
}

float fmq_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu, x;
    float f;
    if (e == 0) {
        f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    if (e == 31)
        x = sign | 0x7f800000u | (m << 13);
    else
        x = sign | ((e - 15 + 127) << 23) | (m << 13);
    memcpy(&f, &x, 4);
    return f;
}

/* ---- byte writers ---- */

static int put(struct fmq_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        uint8_t *nd;
        while (cap < b->len + n) cap *= 2;
        if (!(nd = realloc(b->data, cap))) return FMQ_ENOMEM;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_f32(struct fmq_buf *b, float f)
{
    uint32_t u;
    uint8_t t[4];
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) t[i] = (uint8_t)(u >> (8 * i));
    return put(b, t, 4);
}

static int put_varint(struct fmq_buf *b, uint32_t v)
{
    uint8_t t[5];
    int n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    return put(b, t, (size_t)n);
}

/* Writes n values in the codec's value format; sent (if not NULL) gets what decodes. */
static int put_values(struct fmq_buf *b, int fmt, const float *v, uint32_t n, int block,
                      int stochastic, struct fmq_rng *rng, float *sent)
{
    int rc = 0;
    if (fmt == 32) {
        for (uint32_t i = 0; i < n && !rc; i++) {
            rc = put_f32(b, v[i]);
            if (sent) sent[i] = v[i];
        }
        return rc;
    }
    if (fmt == 16) {
        for (uint32_t i = 0; i < n && !rc; i++) {
            uint16_t h = fmq_f32_to_f16(v[i]);
            uint8_t t[2] = {(uint8_t)h, (uint8_t)(h >> 8)};
            rc = put(b, t, 2);
            if (sent) sent[i] = fmq_f16_to_f32(h);
        }
        return rc;
    }
    {
        uint8_t hdr[2] = {(uint8_t)block, (uint8_t)(block >> 8)};
        if ((rc = put(b, hdr, 2))) return rc;
    }
    for (uint32_t s = 0; s < n && !rc; s += (uint32_t)block) {
        uint32_t e = s + (uint32_t)block < n ? s + (uint32_t)block : n;
        float mx = 0, scale;
        for (uint32_t i = s; i < e; i++) mx = fmaxf(mx, fabsf(v[i]));
        scale = mx / 127.0f;
        if ((rc = put_f32(b, scale))) break;
        for (uint32_t i = s; i < e && !rc; i++) {
            float q = scale > 0 ? v[i] / scale : 0;
            int8_t c;
            q = stochastic ? floorf(q + (float)fmq_rng_uniform(rng)) : nearbyintf(q);
            c = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            rc = put(b, &c, 1);
            if (sent) sent[i] = (float)c * scale;
        }
    }
    return rc;
}

static int value_fmt(int codec)
{
    switch (codec) {
    case FMQ_CODEC_DENSE_F32:
    case FMQ_CODEC_TOPK_F32:
        return 32;
    case FMQ_CODEC_DENSE_F16:
    case FMQ_CODEC_TOPK_F16:
        return 16;
    case FMQ_CODEC_DENSE_I8:
    case FMQ_CODEC_TOPK_I8:
        return 8;
    }
    return 0;
}

static int is_topk(int codec)
{
    return codec >= FMQ_CODEC_TOPK_F32 && codec <= FMQ_CODEC_TOPK_I8;
}

/* The k largest magnitudes with a bounded min-heap (O(dim log k)); equal magnitudes prefer the
 * lower index, so the selection is deterministic. The result is sorted by index for gap coding. */
static int worse(const float *x, uint32_t a, uint32_t b) /* a ranks below b */
{
    float ma = fabsf(x[a]), mb = fabsf(x[b]);
    return ma < mb || (ma == mb && a > b);
}

static void sift_down(const float *x, uint32_t *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(x, h[l], h[m])) m = l;
        if (r < n && worse(x, h[r], h[m])) m = r;
        if (m == i) return;
        uint32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void select_topk(const float *x, uint32_t *h, uint32_t dim, uint32_t k)
{
    for (uint32_t i = 0; i < k; i++) h[i] = i;
    for (uint32_t i = k / 2; i-- > 0;) sift_down(x, h, k, i);
    for (uint32_t i = k; i < dim; i++)
        if (worse(x, h[0], i)) {
            h[0] = i;
            sift_down(x, h, k, 0);
        }
    qsort(h, k, sizeof *h, cmp_u32);
}

int fmq_codec_encode(const struct fmq_codec_opts *o, struct fmq_codec_ws *w, const float *x,
                     struct fmq_buf *out, float *sent)
{
    int fmt = value_fmt(o->codec), rc;
    uint32_t dim = w->dim;

    if (!fmt || (fmt == 8 && (o->block < 8 || o->block > 4096))) return FMQ_EINVAL;
    out->len = 0;
    if (!is_topk(o->codec))
        return put_values(out, fmt, x, dim, o->block, o->stochastic, &w->rng, sent);
    if (!(o->ratio > 0 && o->ratio <= 1)) return FMQ_EINVAL;
    {
        uint32_t k = (uint32_t)ceil(o->ratio * dim), prev = 0;
        if (k > dim) k = dim;
        select_topk(x, w->idx, dim, k);
        if ((rc = put_varint(out, k))) return rc;
        for (uint32_t i = 0; i < k; i++) {
            if ((rc = put_varint(out, i ? w->idx[i] - prev - 1 : w->idx[i]))) return rc;
            prev = w->idx[i];
            w->tmp[i] = x[w->idx[i]];
        }
        if ((rc = put_values(out, fmt, w->tmp, k, o->block, o->stochastic, &w->rng,
                             sent ? w->tmp : NULL)))
            return rc;
        if (sent) {
            memset(sent, 0, dim * sizeof *sent);
            for (uint32_t i = 0; i < k; i++) sent[w->idx[i]] = w->tmp[i];
        }
    }
    return 0;
}

/* ---- decoding ---- */

struct rd {
    const uint8_t *p, *end;
    char *err;
    size_t errlen;
    const char *codec;
};

static int fail_code(struct rd *r, int code, const char *what)
{
    snprintf(r->err, r->errlen, "%s payload: %s", r->codec, what);
    return code;
}

static int fail(struct rd *r, const char *what)
{
    return fail_code(r, FMQ_EFORMAT, what);
}

static int get_varint(struct rd *r, uint32_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 5; i++) {
        if (r->p >= r->end) return fail(r, "truncated varint");
        uint8_t c = *r->p++;
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            if (i > 0 && c == 0) return fail(r, "non-minimal varint");
            if (x > UINT32_MAX) return fail(r, "varint overflow");
            *v = (uint32_t)x;
            return 0;
        }
    }
    return fail(r, "varint longer than 5 bytes");
}

static float get_f32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Reads n values of format fmt into v (each at v[pos(i)] when idx is given). */
static int get_values(struct rd *r, int fmt, uint32_t n, float *out, const uint32_t *idx)
{
    size_t left = (size_t)(r->end - r->p);
    if (fmt == 32 || fmt == 16) {
        size_t w = fmt == 32 ? 4 : 2;
        if (left != n * w) return fail_code(r, FMQ_EDIM, "value bytes do not match the count");
        for (uint32_t i = 0; i < n; i++, r->p += w) {
            float f = w == 4 ? get_f32(r->p) : fmq_f16_to_f32((uint16_t)(r->p[0] | r->p[1] << 8));
            if (!isfinite(f)) return fail_code(r, FMQ_ERANGE, "NaN or Inf value");
            out[idx ? idx[i] : i] = f;
        }
        return 0;
    }
    {
        uint32_t block, nblocks;
        if (left < 2) return fail(r, "missing int8 block size");
        block = (uint32_t)(r->p[0] | r->p[1] << 8);
        r->p += 2;
        left -= 2;
        if (block < 8 || block > 4096) return fail(r, "int8 block size outside [8, 4096]");
        nblocks = (n + block - 1) / block;
        if (left != (size_t)nblocks * 4 + n)
            return fail_code(r, FMQ_EDIM, "int8 bytes do not match the count");
        for (uint32_t s = 0; s < n; s += block) {
            uint32_t e = s + block < n ? s + block : n;
            float scale = get_f32(r->p);
            r->p += 4;
            if (!isfinite(scale) || scale < 0) return fail_code(r, FMQ_ERANGE, "bad int8 scale");
            for (uint32_t i = s; i < e; i++) {
                int8_t c = (int8_t)*r->p++;
                if (c == -128) return fail(r, "int8 value -128 is not produced by the encoder");
                out[idx ? idx[i] : i] = (float)c * scale;
            }
        }
        return 0;
    }
}

int fmq_codec_decode(int codec, const uint8_t *p, size_t n, uint32_t dim, float *out, char *err,
                     size_t errlen)
{
    struct rd r = {p, p + n, err, errlen, fmq_codec_name(codec)};
    int fmt = value_fmt(codec);
    uint32_t k, prev = 0;

    if (!fmt) {
        snprintf(err, errlen, "unknown codec %d", codec);
        return FMQ_EFORMAT;
    }
    if (!is_topk(codec)) return get_values(&r, fmt, dim, out, NULL);
    memset(out, 0, dim * sizeof *out);
    if (get_varint(&r, &k)) return FMQ_EFORMAT;
    if (k == 0 || k > dim) return fail(&r, "k outside [1, dim]");
    if ((size_t)(r.end - r.p) < k) return fail(&r, "fewer bytes than k indices");
    {
        /* Two passes keep the decoder allocation-free: the first validates every index, the
         * second walks them again to place the values. */
        const uint8_t *start = r.p;
        for (uint32_t i = 0; i < k; i++) {
            uint32_t gap, at;
            if (get_varint(&r, &gap)) return FMQ_EFORMAT;
            at = i ? prev + 1 + gap : gap;
            if ((i && at <= prev) || at >= dim || (i && gap > dim))
                return fail(&r, "index out of range");
            prev = at;
        }
        /* values: decode into out at their positions, re-walking the indices */
        {
            struct rd iv = {start, r.p, err, errlen, r.codec};
            const uint8_t *vals = r.p;
            size_t left = (size_t)(r.end - vals);
            uint32_t block = 0, nblocks = 0;
            size_t need;
            if (fmt == 32)
                need = (size_t)k * 4;
            else if (fmt == 16)
                need = (size_t)k * 2;
            else {
                if (left < 2) return fail(&r, "missing int8 block size");
                block = (uint32_t)(vals[0] | vals[1] << 8);
                if (block < 8 || block > 4096) return fail(&r, "int8 block size outside [8, 4096]");
                nblocks = (k + block - 1) / block;
                need = 2 + (size_t)nblocks * 4 + k;
            }
            if (left != need) return fail_code(&r, FMQ_EDIM, "value bytes do not match k");
            prev = 0;
            for (uint32_t i = 0; i < k; i++) {
                uint32_t gap, at;
                float f;
                get_varint(&iv, &gap);
                at = i ? prev + 1 + gap : gap;
                prev = at;
                if (fmt == 32)
                    f = get_f32(vals + 4 * (size_t)i);
                else if (fmt == 16)
                    f = fmq_f16_to_f32((uint16_t)(vals[2 * i] | vals[2 * i + 1] << 8));
                else {
                    const uint8_t *bp = vals + 2 + (size_t)(i / block) * (4 + block);
                    float scale = get_f32(bp);
                    int8_t c = (int8_t)bp[4 + i % block];
                    if (!isfinite(scale) || scale < 0)
                        return fail_code(&r, FMQ_ERANGE, "bad int8 scale");
                    if (c == -128)
                        return fail(&r, "int8 value -128 is not produced by the encoder");
                    f = (float)c * scale;
                }
                if (!isfinite(f)) return fail_code(&r, FMQ_ERANGE, "NaN or Inf value");
                out[at] = f;
            }
        }
    }
    return 0;
}

/* ---- error feedback ---- */

int fmq_ef_init(struct fmq_ef *e, uint32_t dim)
{
    memset(e, 0, sizeof *e);
    e->dim = dim;
    e->residual = calloc(dim, sizeof(float));
    e->acc = malloc(dim * sizeof(float));
    e->sent = malloc(dim * sizeof(float));
    if (!e->residual || !e->acc || !e->sent) {
        fmq_ef_free(e);
        return FMQ_ENOMEM;
    }
    return 0;
}

void fmq_ef_free(struct fmq_ef *e)
{
    free(e->residual);
    free(e->acc);
    free(e->sent);
    memset(e, 0, sizeof *e);
}

void fmq_ef_reset(struct fmq_ef *e)
{
    memset(e->residual, 0, e->dim * sizeof(float));
}

int fmq_ef_encode(struct fmq_ef *e, const struct fmq_codec_opts *o, struct fmq_codec_ws *w,
                  const float *delta, struct fmq_buf *out)
{
    int rc;
    for (uint32_t i = 0; i < e->dim; i++) e->acc[i] = delta[i] + e->residual[i];
    if ((rc = fmq_codec_encode(o, w, e->acc, out, e->sent)) != 0) return rc;
    for (uint32_t i = 0; i < e->dim; i++) e->residual[i] = e->acc[i] - e->sent[i];
    return 0;
}
