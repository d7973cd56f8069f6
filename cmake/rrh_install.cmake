# Installation and the exported CMake package, so an agent project can do
#   find_package(rrh 0.1 REQUIRED)
#   target_link_libraries(my_agent PRIVATE rrh::agent_shim)
# Included from the top-level CMakeLists.txt after every target exists; each target is
# installed only when it is part of this build.
include(CMakePackageConfigHelpers)

set(RRH_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/rrh CACHE STRING
    "Where rrhConfig.cmake is installed, relative to the install prefix")
mark_as_advanced(RRH_INSTALL_CMAKEDIR)

# Libraries, in dependency order, with the folder that holds each one's public headers.
set(rrh_installed_libraries)
foreach(entry rrh_common:common rrh_schemas:schemas rrh_agent_shim:agent_shim)
  string(REPLACE ":" ";" entry "${entry}")
  list(GET entry 0 library)
  list(GET entry 1 folder)
  if(TARGET ${library})
    list(APPEND rrh_installed_libraries ${library})
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/${folder}/include/
            DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
            COMPONENT development
            FILES_MATCHING PATTERN "*.hpp")
  endif()
endforeach()

install(TARGETS ${rrh_installed_libraries}
        EXPORT rrhTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Programs. A tool's target is named either like its file (rrh-broker) or with
# underscores (rrh_broker) and an OUTPUT_NAME; both are accepted.
foreach(program rrh-broker rrh-tap rrh-agent rrh-processor rrh-ctl rrh-launch)
  string(REPLACE "-" "_" program_target_alt ${program})
  foreach(candidate ${program} ${program_target_alt})
    if(TARGET ${candidate})
      install(TARGETS ${candidate} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
      break()
    endif()
  endforeach()
endforeach()

# A static rrh library carries its private dependencies into the consumer's link, so the
# package config must find those too; a shared one needs only the public ones.
set(RRH_STATIC_LIBRARIES OFF)
foreach(library ${rrh_installed_libraries})
  get_target_property(library_type ${library} TYPE)
  if(library_type STREQUAL "STATIC_LIBRARY")
    set(RRH_STATIC_LIBRARIES ON)
  endif()
endforeach()

install(EXPORT rrhTargets
        NAMESPACE rrh::
        FILE rrhTargets.cmake
        DESTINATION ${RRH_INSTALL_CMAKEDIR}
        COMPONENT development)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/rrhConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/rrhConfig.cmake
                              INSTALL_DESTINATION ${RRH_INSTALL_CMAKEDIR})
# 0.x releases may still change the API; SameMajorVersion is the promise from 1.0 on.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rrhConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/rrhConfig.cmake ${PROJECT_BINARY_DIR}/rrhConfigVersion.cmake
        DESTINATION ${RRH_INSTALL_CMAKEDIR}
        COMPONENT development)
