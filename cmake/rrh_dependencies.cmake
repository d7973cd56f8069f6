# Every dependency is a Debian 12 package; nothing is downloaded during the build.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq>=4.3)
find_package(cppzmq REQUIRED)          # cppzmq-dev (header-only)
find_package(msgpack REQUIRED)         # libmsgpack-cxx-dev: target msgpackc-cxx
find_package(spdlog REQUIRED)          # libspdlog-dev
find_package(yaml-cpp REQUIRED)        # libyaml-cpp-dev
find_package(CLI11 REQUIRED)           # libcli11-dev
if(RRH_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)      # catch2 (v2 API)
endif()
