/* Fuzz target: the coordinator's checkpoint loader (coord_state_decode, coordinator/
 * coord_state.c), on two coordinators, FedAvg (no optimizer moments) and FedAdam (both), with the
 * default MLP. An input whose first byte is 'F' (the magic's) gets its trailing checksum fixed
 * up first, so mutations reach the fields behind it; any other input is taken as it is. */
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "fuzz.h"

static struct coord coords[2];
static int ready;

static void quiet(int level, const char *msg, void *ud)
{
    (void)level, (void)msg, (void)ud;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    uint8_t *buf;
    if (!ready) {
        struct coord_cfg cfg;
        fmq_log_set(quiet, NULL, FMQ_LOG_ERROR);
        for (int i = 0; i < 2; i++) {
            coord_cfg_default(&cfg);
            cfg.strategy = i ? FMQ_STRAT_FEDADAM : FMQ_STRAT_FEDAVG;
            coord_cfg_finish(&cfg);
            if (coord_init(&coords[i], &cfg) != 0) abort();
        }
        ready = 1;
    }
    if (!(buf = malloc(size ? size : 1))) return 0;
    memcpy(buf, data, size);
    if (size >= 16 && buf[0] == 'F') {
        uint64_t sum = coord_state_checksum(buf, size - 8);
        memcpy(buf + size - 8, &sum, 8);
    }
    for (int i = 0; i < 2; i++) coord_state_decode(&coords[i], buf, size, err, sizeof err);
    free(buf);
    return 0;
}
