/* Shared by the fuzz targets: libFuzzer's entry point, also driven by driver.c in ordinary
 * builds so the seed corpora and every past crash run as regression tests under the sanitizers. */
#ifndef FMQ_FUZZ_H
#define FMQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
