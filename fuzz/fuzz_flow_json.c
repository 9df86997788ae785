/* Fuzz target: the sensor record parser (hostile JSON), the batch framing (NDJSON, arrays) with
 * every framed record decoded, and the broker plugin's alert check, which walks objects with
 * the same code. */
#include <stdint.h>

#include "fedmq/flow.h"
#include "fuzz.h"

static void each(void *ud, const char *rec, size_t n, size_t k)
{
    struct fmq_flow f;
    char err[256];
    (void)ud;
    (void)k;
    fmq_flow_from_json(rec, n, &f, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fmq_flow f;
    char err[256], agent[64];
    fmq_flow_from_json((const char *)data, size, &f, err, sizeof err);
    fmq_flow_json_each((const char *)data, size, each, NULL, err, sizeof err);
    fmq_json_object_check((const char *)data, size, "agent", agent, sizeof agent, err, sizeof err);
    return 0;
}
