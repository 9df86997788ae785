/* Update compression (core/codec): what an agent sends instead of its dense float32 model change.
 *   dense-f32  every value, float32 (the reference)
 *   dense-f16  every value, IEEE 754 half precision
 *   dense-i8   every value, int8 with one float32 scale per block of `block` values
 *   topk-f32 / topk-f16 / topk-i8
 *              the k largest-magnitude values (k = ceil(ratio * dim)), their indices as
 *              delta + LEB128 varint gaps, the values quantized as above
 *   topk-i4    the same with 4-bit values (-7..7) and one float32 scale per block
 *   topk-sign  the same with one sign bit per value and the block's mean magnitude as its
 *              scale (scaled sign, Karimireddy et al. 2019; with top-k as in Sattler et al.
 *              2019, "Sparse binary compression")
 *   masked-u32 a secure-aggregation vector (secagg.h): dim uint32 words, little-endian, masked
 *              fixed point that means nothing alone. Never chosen as a plan's codec: the agent
 *              writes the words itself and fmq_codec_encode refuses it; decoding copies the
 *              words' bits into the float array (no finiteness: they are not floats).
 * Top-k runs with error feedback (Seide et al. 2014; Stich et al. 2018; Lin et al. 2018, DGC):
 * the agent keeps what it did not send in a residual and adds it to its next update, so nothing
 * is lost, only delayed. int8 may round stochastically (unbiased). Byte layouts are in
 * schemas/wire.md; the decoder treats the payload as hostile. */
#ifndef FMQ_CODEC_H
#define FMQ_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/common.h"

enum fmq_codec {
    FMQ_CODEC_NONE = 0,
    FMQ_CODEC_DENSE_F32 = 1,
    FMQ_CODEC_DENSE_F16 = 2,
    FMQ_CODEC_DENSE_I8 = 3,
    FMQ_CODEC_TOPK_F32 = 4,
    FMQ_CODEC_TOPK_F16 = 5,
    FMQ_CODEC_TOPK_I8 = 6,
    FMQ_CODEC_TOPK_I4 = 7,
    FMQ_CODEC_TOPK_SIGN = 8,
    FMQ_CODEC_MASKED = 9,
    FMQ_CODEC_LAST = FMQ_CODEC_MASKED
};
#define FMQ_CODEC_BLOCK_DEFAULT 64

const char *fmq_codec_name(int codec);
int fmq_codec_parse(const char *name, int *codec); /* FMQ_EINVAL for an unknown name */

struct fmq_codec_opts {
    int codec;    /* enum fmq_codec */
    double ratio; /* top-k: fraction of values sent, (0, 1] */
    int block;    /* int8, int4, sign: values per scale, 8..4096 (a multiple of 8 for int4, sign) */
    int stochastic; /* int8, int4: stochastic rounding */
    uint64_t seed;  /* for stochastic rounding */
};
void fmq_codec_opts_default(struct fmq_codec_opts *o);

/* Workspace sized once for dim values (no allocation per update). */
struct fmq_codec_ws {
    uint32_t dim;
    uint32_t *idx; /* owned: selection scratch */
    float *tmp;    /* owned: selected values */
    struct fmq_rng rng;
};
int fmq_codec_ws_init(struct fmq_codec_ws *w, uint32_t dim, uint64_t seed);
void fmq_codec_ws_free(struct fmq_codec_ws *w);

/* Encodes x (dim values) into out->data[0..out->len). When sent is not NULL it receives the
 * dense vector the receiver will decode (for error feedback). */
struct fmq_buf;
int fmq_codec_encode(const struct fmq_codec_opts *o, struct fmq_codec_ws *w, const float *x,
                     struct fmq_buf *out, float *sent);
/* Decodes a payload of `codec` into out (dim values, zero where top-k sent nothing). Checks
 * lengths, index order and range, varint form, scales and finiteness. */
int fmq_codec_decode(int codec, const uint8_t *p, size_t n, uint32_t dim, float *out, char *err,
                     size_t errlen);

/* Error feedback state: acc = delta + residual; send encode(acc); residual = acc - sent. */
struct fmq_ef {
    uint32_t dim;
    float *residual; /* owned */
    float *acc;      /* owned scratch */
    float *sent;     /* owned scratch */
};
int fmq_ef_init(struct fmq_ef *e, uint32_t dim);
void fmq_ef_free(struct fmq_ef *e);
void fmq_ef_reset(struct fmq_ef *e);
/* Encodes delta + residual and keeps the new residual. */
int fmq_ef_encode(struct fmq_ef *e, const struct fmq_codec_opts *o, struct fmq_codec_ws *w,
                  const float *delta, struct fmq_buf *out);

/* IEEE 754 half conversions (round to nearest even; magnitudes above 65504 saturate). */
uint16_t fmq_f32_to_f16(float f);
float fmq_f16_to_f32(uint16_t h);

#endif
