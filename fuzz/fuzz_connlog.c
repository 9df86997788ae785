/* Fuzz target: the conn.log reader (all three layouts, detected from the first line). */
#include <stdint.h>
#include <stdio.h>

#include "fedmq/common.h"
#include "fedmq/connlog.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fmq_connlog r;
    struct fmq_flow f;
    FILE *fp;
    fmq_log_use_stderr("fuzz", -1); /* bad lines are expected; keep the output quiet */
    if (size == 0 || !(fp = fmemopen((void *)data, size, "r"))) return 0;
    if (fmq_connlog_open_stream(&r, fp, "fuzz") != 0) return 0;
    for (int i = 0; i < 100000 && fmq_connlog_next(&r, &f) == 0; i++) {
    }
    fmq_connlog_close(&r);
    return 0;
}
