# Warning and sanitizer flags as an interface target every fedmq target links.
add_library(fmq_warnings INTERFACE)
target_compile_options(fmq_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
  -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter)
target_compile_definitions(fmq_warnings INTERFACE _DEFAULT_SOURCE _POSIX_C_SOURCE=200809L)
# `#pragma omp simd` in the numeric kernels: vectorisation only, no OpenMP runtime or threads
# -fno-trapping-math: nothing here uses floating-point traps, and without it GCC will not turn
# the compare-and-select of clamps (fastmath.h) into vector blends.
target_compile_options(fmq_warnings INTERFACE -fopenmp-simd -fno-trapping-math)
if(FMQ_SANITIZE)
  target_compile_options(fmq_warnings INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  target_link_options(fmq_warnings INTERFACE -fsanitize=address,undefined)
endif()
if(FMQ_FUZZ) # every library instrumented for coverage, ASan and UBSan; fuzz/ links libFuzzer
  target_compile_options(fmq_warnings INTERFACE -fsanitize=fuzzer-no-link,address,undefined
    -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(fmq_warnings INTERFACE -fsanitize=address,undefined)
endif()
if(FMQ_NATIVE)
  target_compile_options(fmq_warnings INTERFACE -O3 -march=native)
endif()
