# Read by cpack for each generator (CPACK_PROJECT_CONFIG_FILE).
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_NATKEEPER_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR
    "The Debian package needs a build configured with -DCMAKE_INSTALL_PREFIX=/usr, "
    "not ${CPACK_NATKEEPER_INSTALL_PREFIX}: the systemd units run /usr/sbin/natkeeper "
    "and the agent reads the configuration path it was built with "
    "(/etc/natkeeper/natkeeper.toml for /usr).")
endif()
