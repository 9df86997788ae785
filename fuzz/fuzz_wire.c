/* Fuzz target: the msgpack envelope decoders. The first byte picks the decoder (update, global
 * with MLP and GIoT storage, status, peek); the rest is the message. Decoded statistics and MLP
 * models also go through the checks the coordinator and the agents apply next. */
#include <stdint.h>
#include <string.h>

#include "fedmq/gpt.h"
#include "fedmq/wire.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fmq_wire_dec d;
    static float delta[4096];
    static struct fmq_moments mo;
    char err[256], type[16];
    if (!d.zone && fmq_wire_dec_init(&d) != 0) return 0;
    if (size < 1) return 0;
    switch (data[0] % 4) {
    case 0: {
        struct fmq_update u;
        memset(&u, 0, sizeof u);
        u.delta = delta;
        u.delta_cap = 4096;
        u.stats = &mo;
        if (fmq_wire_decode_update(&d, data + 1, size - 1, 0, &u, err, sizeof err) == 0 &&
            u.has_stats) /* what the coordinator then asks of them */
            fmq_moments_check(&mo, err, sizeof err);
        break;
    }
    case 1: {
        struct fmq_model m = {0};
        struct fmq_gpt g = {0};
        struct fmq_global gl = {0};
        gl.model = &m;
        gl.gpt = &g;
        gl.self = "agent-1";
        if (fmq_wire_decode_global(&d, data + 1, size - 1, &gl, err, sizeof err) == 0 &&
            gl.kind != FMQ_MODEL_GIOT) /* what an agent then asks of it */
            fmq_model_check(&m, err, sizeof err);
        fmq_model_free(&m);
        fmq_gpt_free(&g);
        break;
    }
    case 2: {
        struct fmq_status s;
        fmq_wire_decode_status(&d, data + 1, size - 1, &s, err, sizeof err);
        break;
    }
    default:
        fmq_wire_peek(&d, data + 1, size - 1, type, err, sizeof err);
    }
    return 0;
}
