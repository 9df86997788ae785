# The install layout (GNUInstallDirs, FHS). fedmq is a Debian service: its units read
# /etc/fedmq and keep state in /var/lib/fedmq, so the prefix defaults to /usr (GNUInstallDirs then
# maps sysconfdir to /etc and localstatedir to /var) unless -DCMAKE_INSTALL_PREFIX says otherwise.
# Pick the prefix when configuring: paths compiled in (--help) and written into the units come
# from it, so `cmake --install --prefix` should repeat the same one.
# A build directory configured before fedmq had install rules holds CMake's /usr/local default
# without anyone having chosen it (FMQ_BUILD_TESTS cached, FMQ_PREFIX_SEEN not): it moves to
# /usr once; afterwards an explicit -DCMAKE_INSTALL_PREFIX is always kept.
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT OR
   (DEFINED CACHE{FMQ_BUILD_TESTS} AND NOT DEFINED CACHE{FMQ_PREFIX_SEEN} AND
    CMAKE_INSTALL_PREFIX STREQUAL "/usr/local"))
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install path prefix (fedmq: /usr by default)" FORCE)
endif()
set(FMQ_PREFIX_SEEN ON CACHE INTERNAL "cmake/FmqInstallDirs.cmake chose the prefix default once")
include(GNUInstallDirs)
set(FMQ_FULL_CONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/fedmq)     # examples; operators' configs
set(FMQ_PLUGINDIR ${CMAKE_INSTALL_LIBDIR}/fedmq)                 # fedmq_plugin.so (relative)
set(FMQ_FULL_PLUGINDIR ${CMAKE_INSTALL_FULL_LIBDIR}/fedmq)
set(FMQ_FULL_STATEDIR ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/fedmq)
set(FMQ_FULL_LOGDIR ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/log/fedmq)
# "" = <prefix>/lib/systemd/system, decided at install time (deploy/install-layout.cmake.in)
set(FMQ_SYSTEMD_UNITDIR "" CACHE PATH "Where the systemd units go (default <prefix>/lib/systemd/system)")
