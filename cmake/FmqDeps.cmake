# Dependency shims: every external library reaches the targets under one fmq:: name,
# whichever Debian release provides it (msgpack-c 4.x exports `msgpackc`, 6.x `msgpack-c`).
find_package(eclipse-paho-mqtt-c REQUIRED)
add_library(fmq::paho INTERFACE IMPORTED)
target_link_libraries(fmq::paho INTERFACE eclipse-paho-mqtt-c::paho-mqtt3as)

find_package(msgpack QUIET)
if(TARGET msgpackc)
  set(_fmq_msgpack msgpackc)
elseif(TARGET msgpack-c)
  set(_fmq_msgpack msgpack-c)
else()
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(MSGPACK REQUIRED IMPORTED_TARGET msgpack)
  set(_fmq_msgpack PkgConfig::MSGPACK)
endif()
add_library(fmq::msgpack INTERFACE IMPORTED)
target_link_libraries(fmq::msgpack INTERFACE ${_fmq_msgpack})

# libsystemd (Debian libsystemd-dev) for sd_notify: readiness and the watchdog (Type=notify units).
# Optional: without it the daemons run the same and the units are Type=simple.
option(FMQ_SYSTEMD "Use libsystemd's sd_notify when found (Type=notify units)" ON)
set(FMQ_HAVE_SYSTEMD OFF)
if(FMQ_SYSTEMD)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(LIBSYSTEMD QUIET IMPORTED_TARGET libsystemd)
  endif()
  if(LIBSYSTEMD_FOUND)
    set(FMQ_HAVE_SYSTEMD ON)
  else()
    message(STATUS "libsystemd not found (apt-get install libsystemd-dev): units are Type=simple")
  endif()
endif()

# cJSON (Debian libcjson-dev) writes the JSON whose size grows with the fleet (issue 17).
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBCJSON REQUIRED IMPORTED_TARGET libcjson)
add_library(fmq::cjson INTERFACE IMPORTED)
target_link_libraries(fmq::cjson INTERFACE PkgConfig::LIBCJSON)

find_package(OpenSSL REQUIRED)
find_package(Threads REQUIRED)
find_library(FMQ_LIBM m)

if(FMQ_BUILD_TESTS)
  find_path(CUNIT_INCLUDE_DIR CUnit/Basic.h REQUIRED)
  find_library(CUNIT_LIBRARY cunit REQUIRED)
  add_library(fmq::cunit INTERFACE IMPORTED)
  target_include_directories(fmq::cunit INTERFACE ${CUNIT_INCLUDE_DIR})
  target_link_libraries(fmq::cunit INTERFACE ${CUNIT_LIBRARY})
  find_program(MOSQUITTO_BIN mosquitto PATHS /usr/sbin /usr/local/sbin REQUIRED)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
endif()
