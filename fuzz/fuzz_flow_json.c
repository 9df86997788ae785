/* Fuzz target: the sensor record parser (hostile JSON). */
#include <stdint.h>

#include "fedmq/flow.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fmq_flow f;
    char err[256];
    fmq_flow_from_json((const char *)data, size, &f, err, sizeof err);
    return 0;
}
