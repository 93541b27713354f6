# Install rules for what agent/CMakeLists.txt does not install itself: the
# manual pages, the example configuration, the systemd units, the bash
# completion and the package documentation. Included from the top-level
# CMakeLists.txt after agent/ (the binaries go to CMAKE_INSTALL_SBINDIR there).
#
# Paths are those of GNUInstallDirs. A Debian package (cmake/NatkeeperPackaging.cmake)
# needs CMAKE_INSTALL_PREFIX=/usr: the configuration then goes to
# /etc/natkeeper (GNUInstallDirs' SYSCONFDIR for /usr is /etc), which is
# where the agent looks by default (NATKEEPER_DEFAULT_CONFIG, config/CMakeLists.txt).

set(natkeeper_install_gen ${PROJECT_BINARY_DIR}/install)

# --- Where systemd and bash-completion look, as their pkg-config files say.
pkg_get_variable(natkeeper_pc_unitdir systemd systemdsystemunitdir)
if(NOT natkeeper_pc_unitdir)
  set(natkeeper_pc_unitdir ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()
set(NATKEEPER_SYSTEMD_UNITDIR ${natkeeper_pc_unitdir} CACHE PATH
  "Directory of the systemd system units (default: systemd.pc's systemdsystemunitdir)")

pkg_get_variable(natkeeper_pc_completionsdir bash-completion completionsdir)
if(NOT natkeeper_pc_completionsdir)
  set(natkeeper_pc_completionsdir ${CMAKE_INSTALL_FULL_DATADIR}/bash-completion/completions)
endif()
set(NATKEEPER_BASH_COMPLETIONDIR ${natkeeper_pc_completionsdir} CACHE PATH
  "Directory of the bash completions (default: bash-completion.pc's completionsdir)")

# --- Manual pages and the Debian changelog, compressed as Debian wants them
# (gzip -n: no name nor time stamp, so the result is reproducible).
find_program(NATKEEPER_GZIP gzip REQUIRED)
set(natkeeper_gzipped)
function(natkeeper_gzip source output)
  # OUTPUT is the copy's name plus .gz: gzip replaces the copy with it.
  string(REGEX REPLACE "[.]gz$" "" copy ${output})
  add_custom_command(OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -E copy ${source} ${copy}
    COMMAND ${NATKEEPER_GZIP} -9nf ${copy}
    DEPENDS ${source}
    COMMENT "Compressing ${output}"
    VERBATIM)
  set(natkeeper_gzipped ${natkeeper_gzipped} ${output} PARENT_SCOPE)
endfunction()

foreach(page natkeeper.8 natkeeper-reflector.8 natkeeper.toml.5)
  string(REGEX REPLACE "^.*[.]([0-9])$" "\\1" section ${page})
  natkeeper_gzip(${PROJECT_SOURCE_DIR}/man/${page} ${natkeeper_install_gen}/man/${page}.gz)
  install(FILES ${natkeeper_install_gen}/man/${page}.gz
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

natkeeper_gzip(${PROJECT_SOURCE_DIR}/contrib/debian/changelog
  ${natkeeper_install_gen}/doc/changelog.gz)
add_custom_target(natkeeper_install_files ALL DEPENDS ${natkeeper_gzipped})

# --- Documentation: the copyright file and the changelog.
install(FILES ${PROJECT_SOURCE_DIR}/contrib/debian/copyright
              ${natkeeper_install_gen}/doc/changelog.gz
  DESTINATION ${CMAKE_INSTALL_DOCDIR})

# --- The example configuration, at the agent's default configuration path.
install(FILES ${PROJECT_SOURCE_DIR}/config/natkeeper.toml
  DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/natkeeper)

# --- systemd units. contrib/ has them for a /usr install (ExecStart=/usr/sbin/...);
# the installed copies run the programs from CMAKE_INSTALL_FULL_SBINDIR, so for
# a /usr prefix they are the same files.
foreach(unit natkeeper.service natkeeper-reflector.service)
  set(source ${PROJECT_SOURCE_DIR}/contrib/${unit})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${source})
  file(READ ${source} content)
  string(REPLACE "/usr/sbin/natkeeper" "${CMAKE_INSTALL_FULL_SBINDIR}/natkeeper" content "${content}")
  file(WRITE ${PROJECT_BINARY_DIR}/CMakeFiles/natkeeper_units/${unit} "${content}")
  # Copied only when changed, so a reconfiguration does not touch the unit.
  configure_file(${PROJECT_BINARY_DIR}/CMakeFiles/natkeeper_units/${unit}
    ${natkeeper_install_gen}/systemd/${unit} COPYONLY)
  install(FILES ${natkeeper_install_gen}/systemd/${unit} DESTINATION ${NATKEEPER_SYSTEMD_UNITDIR})
endforeach()

# --- bash completion: one file for both programs, loaded by command name, so
# natkeeper-reflector is a symlink to it.
set(completion ${PROJECT_SOURCE_DIR}/contrib/bash-completion/natkeeper)
if(EXISTS ${completion})
  file(MAKE_DIRECTORY ${natkeeper_install_gen}/bash-completion)
  file(CREATE_LINK natkeeper ${natkeeper_install_gen}/bash-completion/natkeeper-reflector SYMBOLIC)
  install(FILES ${completion} ${natkeeper_install_gen}/bash-completion/natkeeper-reflector
    DESTINATION ${NATKEEPER_BASH_COMPLETIONDIR})
endif()
