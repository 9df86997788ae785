/* Fuzz target: the sensor record parser (hostile JSON) and the broker plugin's alert check,
 * which walks objects with the same code. */
#include <stdint.h>

#include "fedmq/flow.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fmq_flow f;
    char err[256], agent[64];
    fmq_flow_from_json((const char *)data, size, &f, err, sizeof err);
    fmq_json_object_check((const char *)data, size, "agent", agent, sizeof agent, err, sizeof err);
    return 0;
}
