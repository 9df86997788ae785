/* Fuzz target: the key = value config file reader, through a memory file. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fedmq/common.h"
#include "fedmq/config.h"
#include "fuzz.h"

static int accept_numbers(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    double d;
    long l;
    if (v && fmq_parse_double(v, -1e9, 1e9, &d) != 0 && fmq_parse_long(v, 0, 100, &l) != 0) {
        snprintf(err, errlen, "not a number");
        return FMQ_EINVAL;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char path[64];
    fmq_log_use_stderr("fuzz", -1);
    if (fd < 0 && (fd = memfd_create("fuzz-config", 0)) < 0) return 0;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    fmq_config_file(path, accept_numbers, NULL);
    return 0;
}
