#!/usr/bin/env bash
# Builds rrh and runs its test suite. Extra arguments go to ctest, so
#   bash tests/run.sh -L schemas        runs only the schema tests
#   bash tests/run.sh -R shim           runs tests whose name matches "shim"
# Environment:
#   BUILD_DIR=dir       build directory (default: build, or build-asan with RRH_SANITIZE=1)
#   RRH_SANITIZE=1      Debug build with AddressSanitizer + UndefinedBehaviorSanitizer
#   RRH_BUILD_TYPE=t    CMake build type of the normal build (default: RelWithDebInfo)
#   RRH_BUILD_JOBS=n    parallel compile jobs (default: number of cores, at most 8)
#   RRH_TEST_JOBS=n     tests run in parallel (default: 2)
#   RRH_SKIP_DEPS=1     do not check the Debian packages first
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
  exit 0
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

progress() { echo "==> $*"; }

if [[ "${RRH_SKIP_DEPS:-0}" != "1" ]]; then
  progress "checking build dependencies"
  bash deploy/install_deps.sh
fi

# RelWithDebInfo rather than Release: the same optimised code paths the default build
# (CMakeLists.txt) ships, plus symbols, so a crash in an integration test gives a
# readable backtrace. rrh's assertions (RRH_ASSERT) stay on either way.
if [[ "${RRH_SANITIZE:-0}" == "1" ]]; then
  build_dir="${BUILD_DIR:-build-asan}"
  build_type="Debug"
  sanitize="ON"
  # Leaks count as failures; UB stops the test at the first report, with a stack trace.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
else
  build_dir="${BUILD_DIR:-build}"
  build_type="${RRH_BUILD_TYPE:-RelWithDebInfo}"
  sanitize="OFF"
fi

cores="$(nproc 2>/dev/null || echo 2)"
build_jobs="${RRH_BUILD_JOBS:-$((cores < 8 ? cores : 8))}"
# Two tests at a time: integration tests bind tcp://127.0.0.1:* so they never collide,
# and two overlap the time tests spend waiting on the bus, yet leave each test process
# enough CPU on a 2-core machine that condition deadlines do not turn into flakes.
test_jobs="${RRH_TEST_JOBS:-2}"

# ccache, when installed, makes rebuilds after a clean checkout cheap; an empty launcher
# clears one cached by an earlier configure if ccache has gone since.
compiler_launcher="$(command -v ccache || true)"

progress "configuring $build_dir ($build_type, sanitizers $sanitize)"
mkdir -p "$build_dir"
configure_log="$build_dir/rrh-configure.log"
if ! cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" -DRRH_SANITIZE="$sanitize" \
  -DRRH_BUILD_TESTS=ON -DCMAKE_CXX_COMPILER_LAUNCHER="$compiler_launcher" >"$configure_log" 2>&1; then
  cat "$configure_log" >&2
  echo "tests/run.sh: cmake configure failed (log: $configure_log)" >&2
  exit 1
fi

progress "building $build_dir with $build_jobs jobs"
cmake --build "$build_dir" --parallel "$build_jobs"

progress "running tests in $build_dir ($test_jobs at a time)"
# --timeout is the default for tests that set none; Catch2 tests set their own.
# ctest runs last so its summary ends the output, and its exit status is ours.
exec ctest --test-dir "$build_dir" --output-on-failure --parallel "$test_jobs" --timeout 300 "$@"
