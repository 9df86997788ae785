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

static const char *const names[] = {"none",      "dense-f32", "dense-f16", "dense-i8",
                                    "topk-f32",  "topk-f16",  "topk-i8",   "topk-i4",
                                    "topk-sign", "masked-u32"};

const char *fmq_codec_name(int c)
{
    return c >= 0 && c <= FMQ_CODEC_LAST ? names[c] : "?";
}

int fmq_codec_parse(const char *name, int *codec)
{
    for (int i = 1; i <= FMQ_CODEC_LAST; i++)
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

/* Appends n bytes (zeros when p is NULL, for values packed in place afterwards). */
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
    if (p)
        memcpy(b->data + b->len, p, n);
    else
        memset(b->data + b->len, 0, n);
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

/* Golomb-Rice coding of the index gaps (Golomb 1966; Rice 1979), used by topk-i4 and
 * topk-sign, whose values are small enough that varint indices would be most of the payload:
 * a parameter byte r, then per gap its high part gap >> r in unary (that many 1 bits, then a
 * 0) and its r low bits, least significant bit first, zero-padded to a whole byte. The encoder
 * picks the r (0..24) with the fewest bits. */
static int rice_indices(int codec)
{
    return codec == FMQ_CODEC_TOPK_I4 || codec == FMQ_CODEC_TOPK_SIGN;
}

struct bitw {
    struct fmq_buf *b;
    uint64_t acc;
    int n;
};

static int bits_put(struct bitw *w, uint32_t v, int nbits)
{
    for (int i = 0; i < nbits; i++) {
        w->acc |= (uint64_t)((v >> i) & 1) << w->n;
        if (++w->n == 8) {
            uint8_t c = (uint8_t)w->acc;
            int rc = put(w->b, &c, 1);
            if (rc) return rc;
            w->acc = 0;
            w->n = 0;
        }
    }
    return 0;
}

static int put_rice(struct fmq_buf *b, const uint32_t *idx, uint32_t k)
{
    uint64_t best = UINT64_MAX;
    int r = 0, rc;
    struct bitw w = {b, 0, 0};
    for (int t = 0; t <= 24; t++) {
        uint64_t bits = 0;
        for (uint32_t i = 0; i < k; i++)
            bits += ((i ? idx[i] - idx[i - 1] - 1 : idx[0]) >> t) + 1 + (uint64_t)t;
        if (bits < best) {
            best = bits;
            r = t;
        }
    }
    {
        uint8_t c = (uint8_t)r;
        if ((rc = put(b, &c, 1))) return rc;
    }
    for (uint32_t i = 0; i < k; i++) {
        uint32_t gap = i ? idx[i] - idx[i - 1] - 1 : idx[0];
        for (uint32_t q = gap >> r; q > 0; q--)
            if ((rc = bits_put(&w, 1, 1))) return rc;
        if ((rc = bits_put(&w, 0, 1)) || (rc = bits_put(&w, gap, r))) return rc;
    }
    return w.n ? bits_put(&w, 0, 8 - w.n) : 0;
}

/* Bytes of n packed values of a blocked format (8, 4 or 1 bits each). */
static size_t packed_bytes(int fmt, uint32_t n)
{
    return ((size_t)n * (size_t)fmt + 7) / 8;
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
        float mx = 0, sum = 0, scale, top = fmt == 8 ? 127.0f : 7.0f;
        uint8_t *q8;
        for (uint32_t i = s; i < e; i++) {
            mx = fmaxf(mx, fabsf(v[i]));
            sum += fabsf(v[i]);
        }
        /* int8 / int4: max-abs scale, nearest or stochastic rounding (QSGD-style, unbiased);
         * sign: the block's mean magnitude, the scaled sign of EF-signSGD (Karimireddy et al.
         * 2019, "Error feedback fixes SignSGD") */
        scale = fmt == 1 ? sum / (float)(e - s) : mx / top;
        if ((rc = put_f32(b, scale))) break;
        if ((rc = put(b, NULL, packed_bytes(fmt, e - s)))) break;
        q8 = b->data + b->len - packed_bytes(fmt, e - s); /* the block's values, zeroed */
        for (uint32_t i = s; i < e && !rc; i++) {
            uint32_t j = i - s;
            float q;
            int c;
            if (fmt == 1) {
                q8[j / 8] |= (uint8_t)((v[i] < 0) << (j % 8));
                if (sent) sent[i] = v[i] < 0 ? -scale : scale;
                continue;
            }
            q = scale > 0 ? v[i] / scale : 0;
            q = stochastic ? floorf(q + (float)fmq_rng_uniform(rng)) : nearbyintf(q);
            c = (int)(q > top ? top : q < -top ? -top : q); /* an int: no -0 in `sent` */
            if (fmt == 8)
                q8[j] = (uint8_t)(int8_t)c;
            else
                q8[j / 2] |= (uint8_t)((c & 0xf) << (4 * (j % 2)));
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
    case FMQ_CODEC_TOPK_I4:
        return 4;
    case FMQ_CODEC_TOPK_SIGN:
        return 1;
    }
    return 0;
}

static int is_topk(int codec)
{
    return codec >= FMQ_CODEC_TOPK_F32 && codec <= FMQ_CODEC_TOPK_SIGN;
}

/* A block size the format can use: 8..4096, and whole bytes per full block for packed values. */
static int block_ok(int fmt, uint32_t block)
{
    return block >= 8 && block <= 4096 && (fmt == 8 || block % 8 == 0);
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

    if (!fmt || (fmt <= 8 && !block_ok(fmt, (uint32_t)o->block))) return FMQ_EINVAL;
    out->len = 0;
    if (!is_topk(o->codec))
        return put_values(out, fmt, x, dim, o->block, o->stochastic, &w->rng, sent);
    if (!(o->ratio > 0 && o->ratio <= 1)) return FMQ_EINVAL;
    {
        uint32_t k = (uint32_t)ceil(o->ratio * dim), prev = 0;
        if (k > dim) k = dim;
        select_topk(x, w->idx, dim, k);
        if ((rc = put_varint(out, k))) return rc;
        if (rice_indices(o->codec) && (rc = put_rice(out, w->idx, k))) return rc;
        for (uint32_t i = 0; i < k; i++) {
            if (!rice_indices(o->codec) &&
                (rc = put_varint(out, i ? w->idx[i] - prev - 1 : w->idx[i])))
                return rc;
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

/* Reads index gaps in either coding (varint, or Rice with `bit` the position after the
 * parameter byte at `base`). */
struct gaprd {
    struct rd *r;
    int rice, param;
    size_t bit; /* Rice: bits consumed after the parameter byte */
    const uint8_t *base;
};

static int get_gap(struct gaprd *g, uint32_t dim, uint32_t *gap)
{
    size_t nbits;
    uint64_t q = 0, low = 0;
    if (!g->rice) return get_varint(g->r, gap);
    nbits = (size_t)(g->r->end - g->base) * 8;
    for (;;) { /* unary high part, bounded by dim */
        if (g->bit >= nbits) return fail(g->r, "truncated Rice index");
        if (!((g->base[g->bit / 8] >> (g->bit % 8)) & 1)) break;
        g->bit++;
        if (++q > (uint64_t)(dim >> g->param)) return fail(g->r, "index out of range");
    }
    g->bit++;
    if (g->bit + (size_t)g->param > nbits) return fail(g->r, "truncated Rice index");
    for (int i = 0; i < g->param; i++, g->bit++)
        low |= (uint64_t)((g->base[g->bit / 8] >> (g->bit % 8)) & 1) << i;
    q = (q << g->param) | low;
    if (q > dim) return fail(g->r, "index out of range");
    *gap = (uint32_t)q;
    return 0;
}

static float get_f32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Value j of a block of `len` packed values at bp (float32 scale, then the values); 0 or an
 * error code with its reason in *why. Unused bits of a block's last byte must be zero, so every
 * payload has one encoding. */
/* Payload bytes after the block size for n values in blocks of `block`. */
static size_t blocked_bytes(int fmt, uint32_t block, uint32_t n)
{
    uint32_t full = n / block, rest = n % block;
    return (size_t)full * (4 + packed_bytes(fmt, block)) + (rest ? 4 + packed_bytes(fmt, rest) : 0);
}

static int blocked_value(int fmt, const uint8_t *bp, uint32_t j, uint32_t len, float *out,
                         const char **why)
{
    float scale = get_f32(bp);
    const uint8_t *q = bp + 4;
    int c;
    if (!isfinite(scale) || scale < 0) return *why = "bad block scale", FMQ_ERANGE;
    if (fmt == 8) {
        if ((int8_t)q[j] == -128)
            return *why = "int8 value -128 is not produced by the encoder", FMQ_EFORMAT;
        *out = (float)(int8_t)q[j] * scale;
        return 0;
    }
    if (j == len - 1 && (len * (uint32_t)fmt) % 8 && q[j * fmt / 8] >> ((len * fmt) % 8))
        return *why = "nonzero padding bits", FMQ_EFORMAT;
    if (fmt == 1) {
        *out = (q[j / 8] >> (j % 8)) & 1 ? -scale : scale;
        return 0;
    }
    c = (q[j / 2] >> (4 * (j % 2))) & 0xf;
    if (c == 8) return *why = "int4 value -8 is not produced by the encoder", FMQ_EFORMAT;
    *out = (float)(c > 7 ? c - 16 : c) * scale;
    return 0;
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
        uint32_t block;
        if (left < 2) return fail(r, "missing block size");
        block = (uint32_t)(r->p[0] | r->p[1] << 8);
        r->p += 2;
        left -= 2;
        if (!block_ok(fmt, block))
            return fail(r, "block size outside [8, 4096] or not whole bytes");
        if (left != blocked_bytes(fmt, block, n))
            return fail_code(r, FMQ_EDIM, "block bytes do not match the count");
        for (uint32_t s = 0; s < n; s += block) {
            uint32_t e = s + block < n ? s + block : n;
            for (uint32_t i = s; i < e; i++) {
                const char *why;
                int rc = blocked_value(fmt, r->p, i - s, e - s, &out[idx ? idx[i] : i], &why);
                if (rc) return fail_code(r, rc, why);
            }
            r->p += 4 + packed_bytes(fmt, e - s);
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

    if (codec == FMQ_CODEC_MASKED) { /* words, not values: copied as they are */
        if (n != (size_t)dim * 4) return fail(&r, "not dim x 4 bytes");
        for (uint32_t i = 0; i < dim; i++) {
            uint32_t w = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&out[i], &w, sizeof w);
        }
        return 0;
    }
    if (!fmt) {
        snprintf(err, errlen, "unknown codec %d", codec);
        return FMQ_EFORMAT;
    }
    if (!is_topk(codec)) return get_values(&r, fmt, dim, out, NULL);
    memset(out, 0, dim * sizeof *out);
    if (get_varint(&r, &k)) return FMQ_EFORMAT;
    if (k == 0 || k > dim) return fail(&r, "k outside [1, dim]");
    if ((size_t)(r.end - r.p) < (rice_indices(codec) ? (size_t)k / 8 + 1 : k))
        return fail(&r, "fewer bytes than k indices");
    {
        /* Two passes keep the decoder allocation-free: the first validates every index, the
         * second walks them again to place the values. */
        const uint8_t *start = r.p;
        struct gaprd g = {&r, rice_indices(codec), 0, 0, NULL};
        if (g.rice) {
            g.param = *r.p++;
            g.base = r.p;
            start = r.p;
            if (g.param > 24) return fail(&r, "Rice parameter above 24");
        }
        for (uint32_t i = 0; i < k; i++) {
            uint32_t gap, at;
            if (get_gap(&g, dim, &gap)) return FMQ_EFORMAT;
            at = i ? prev + 1 + gap : gap;
            if ((i && at <= prev) || at >= dim || (i && gap > dim))
                return fail(&r, "index out of range");
            prev = at;
        }
        if (g.rice) { /* the bit stream ends at a byte boundary, padded with zeros */
            r.p = g.base + (g.bit + 7) / 8;
            if (g.bit % 8 && g.base[g.bit / 8] >> (g.bit % 8))
                return fail(&r, "nonzero padding bits after the indices");
        }
        /* values: decode into out at their positions, re-walking the indices */
        {
            struct rd iv = {start, r.p, err, errlen, r.codec};
            struct gaprd g2 = {&iv, g.rice, g.param, 0, start};
            const uint8_t *vals = r.p;
            size_t left = (size_t)(r.end - vals);
            uint32_t block = 0, nblocks = 0;
            size_t need;
            if (fmt == 32)
                need = (size_t)k * 4;
            else if (fmt == 16)
                need = (size_t)k * 2;
            else {
                if (left < 2) return fail(&r, "missing block size");
                block = (uint32_t)(vals[0] | vals[1] << 8);
                if (!block_ok(fmt, block))
                    return fail(&r, "block size outside [8, 4096] or not whole bytes");
                nblocks = (k + block - 1) / block;
                need = 2 + blocked_bytes(fmt, block, k);
            }
            if (left != need) return fail_code(&r, FMQ_EDIM, "value bytes do not match k");
            prev = 0;
            for (uint32_t i = 0; i < k; i++) {
                uint32_t gap, at;
                float f;
                get_gap(&g2, dim, &gap);
                at = i ? prev + 1 + gap : gap;
                prev = at;
                if (fmt == 32)
                    f = get_f32(vals + 4 * (size_t)i);
                else if (fmt == 16)
                    f = fmq_f16_to_f32((uint16_t)(vals[2 * i] | vals[2 * i + 1] << 8));
                else {
                    uint32_t bi = i / block, len = bi + 1 < nblocks ? block : k - bi * block;
                    const uint8_t *bp = vals + 2 + (size_t)bi * (4 + packed_bytes(fmt, block));
                    const char *why;
                    int rc = blocked_value(fmt, bp, i % block, len, &f, &why);
                    if (rc) return fail_code(&r, rc, why);
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
