# The Debian package, through CPack: `cpack -G DEB` in the build directory.
#
# The package is built from a build configured with CMAKE_INSTALL_PREFIX=/usr:
# the programs then go to /usr/sbin (as the systemd units say), the
# configuration to /etc/natkeeper, where the agent reads it by default (that
# path is compiled in, so CPack cannot move it afterwards). cpack refuses any
# other prefix (cmake/NatkeeperCPackOptions.cmake).

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME natkeeper)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "natkeeper developers")
set(CPACK_PACKAGE_CONTACT "natkeeper developers <dev@natkeeper.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "keeps port mappings open on a home NAT gateway")
set(CPACK_PACKAGE_DESCRIPTION [=[
natkeeper keeps inbound ports open on a home NAT gateway for the devices
that need them: by default the ports a Ring doorbell, camera or alarm base
station needs, or any ports configured, for this host or for another device
on the LAN, such as the doorbell itself. It finds the gateway and asks it for
port mappings over PCP, NAT-PMP or UPnP-IGD, renews them, restores them when
the gateway reboots or the network changes, and removes them when it stops.
It can also prove each mapping from outside, through its own reflector or an
RFC 5780 STUN server, and tells double NAT and carrier-grade NAT apart.

This package contains the natkeeper agent and its systemd service, and
natkeeper-reflector, the server run on a public host that probes the
mappings. Neither service is enabled on installation.]=])

# The install rules use absolute paths (/etc/natkeeper, /lib/systemd/system):
# CPack installs into a DESTDIR, with the build's own prefix.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_NATKEEPER_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/cmake/NatkeeperCPackOptions.cmake)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Besides the libraries shlibdeps finds: the units' ExecReload runs /bin/kill,
# which minimal systems (a container's debootstrap --variant=minbase) lack.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "procps")
# The IEEE OUI registry: `natkeeper --find-devices` names each device's vendor
# and tells Ring devices by it; without it, vendors are unknown.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ieee-data")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/contrib/debian/conffiles
  ${PROJECT_SOURCE_DIR}/contrib/debian/postinst
  ${PROJECT_SOURCE_DIR}/contrib/debian/prerm
  ${PROJECT_SOURCE_DIR}/contrib/debian/postrm)
# 0644 for conffiles, 0755 for the maintainer scripts, whatever the checkout has.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# `cpack --config CPackSourceConfig.cmake`: the sources, without build trees.
set(CPACK_SOURCE_GENERATOR TXZ)
set(CPACK_SOURCE_IGNORE_FILES "/[.]git/" "/build[^/]*/")

include(CPack)
