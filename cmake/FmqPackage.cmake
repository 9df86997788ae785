# The Debian package through CPack: `cpack -G DEB` in the build directory makes
# fedmq_<version>_<arch>.deb with the install rules' files under /usr and /etc, dependencies from
# dpkg-shlibdeps (dpkg-dev), the example configs as conffiles, and deploy/debian's maintainer
# scripts (the fedmq user, its directories, daemon-reload). Configure with the default /usr
# prefix so that the paths compiled in (--help) match the package's.
set(CPACK_PACKAGE_NAME fedmq)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "fedmq maintainers <fedmq@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "federated intrusion detection for IoT fleets over MQTT")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "fedmq-agent scores each site's Zeek flows and trains locally; fedmq-coordinator aggregates\n the agents' model updates into a global model over an MQTT broker (Mosquitto, with the\n fedmq broker plugin). Includes systemd units, man pages and example configurations.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "mosquitto, systemd")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto-clients, zeek")
# DESTDIR staging with CMAKE_INSTALL_PREFIX = /usr, which deploy/install-layout.cmake.in needs
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "CMAKE_INSTALL_PREFIX is ${CMAKE_INSTALL_PREFIX}: the .deb installs to /usr, but "
                 "the programs' --help and the library directory follow ${CMAKE_INSTALL_PREFIX}")
endif()
set(CPACK_GENERATOR DEB)

set(_fmq_conffiles "")
foreach(_f agent.conf.example coordinator.conf.example coordinator-prod.conf.example
           broker/mosquitto-dev.conf.example broker/mosquitto-prod.conf.example
           broker/bridge-site.conf.example broker/fedmq.acl.example)
  string(APPEND _fmq_conffiles "/etc/fedmq/${_f}\n")
endforeach()
file(WRITE ${PROJECT_BINARY_DIR}/debian/conffiles "${_fmq_conffiles}")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_BINARY_DIR}/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
