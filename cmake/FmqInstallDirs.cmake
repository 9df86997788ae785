# The install layout (GNUInstallDirs, FHS). fedmq is a Debian service: its units read
# /etc/fedmq and keep state in /var/lib/fedmq, so the prefix defaults to /usr (GNUInstallDirs then
# maps sysconfdir to /etc and localstatedir to /var) unless -DCMAKE_INSTALL_PREFIX says otherwise.
# Pick the prefix when configuring: paths compiled in (--help) and written into the units come
# from it, so `cmake --install --prefix` should repeat the same one.
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix" FORCE)
endif()
include(GNUInstallDirs)
set(FMQ_FULL_CONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/fedmq)     # examples; operators' configs
set(FMQ_PLUGINDIR ${CMAKE_INSTALL_LIBDIR}/fedmq)                 # fedmq_plugin.so (relative)
set(FMQ_FULL_PLUGINDIR ${CMAKE_INSTALL_FULL_LIBDIR}/fedmq)
set(FMQ_FULL_STATEDIR ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/fedmq)
set(FMQ_FULL_LOGDIR ${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/log/fedmq)
set(FMQ_SYSTEMD_UNITDIR ${CMAKE_INSTALL_PREFIX}/lib/systemd/system CACHE PATH
    "Where the systemd units go")
set(FMQ_SYSUSERSDIR ${CMAKE_INSTALL_PREFIX}/lib/sysusers.d CACHE PATH "sysusers.d directory")
set(FMQ_TMPFILESDIR ${CMAKE_INSTALL_PREFIX}/lib/tmpfiles.d CACHE PATH "tmpfiles.d directory")
