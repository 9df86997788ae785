/* Fuzz target: codec payload decoding. Byte 0 picks the codec, bytes 1-2 the declared
 * dimension (up to 65535), the rest is the payload. */
#include <stdint.h>
#include <stdlib.h>

#include "fedmq/codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float out[65536];
    char err[256];
    uint32_t dim;
    if (size < 3) return 0;
    dim = (uint32_t)data[1] | (uint32_t)data[2] << 8;
    fmq_codec_decode(data[0] % (FMQ_CODEC_LAST + 2), data + 3, size - 3, dim, out, err, sizeof err);
    return 0;
}
