#!/usr/bin/env bash
# Installs an rrh build into a scratch prefix, then configures, builds and runs the
# consumer project (tests/consumer/project) against that prefix only.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: run_consumer.sh --build-dir DIR [--work-dir DIR] [--build-type TYPE] [--cxx PATH]
                       [--sanitize 0|1]

  --build-dir DIR    a configured and built rrh build tree
  --work-dir DIR     scratch space, emptied first (default: DIR/tests/consumer/work)
  --build-type TYPE  CMake build type of the consumer (default: the rrh build's)
  --cxx PATH         C++ compiler (default: the rrh build's)
  --sanitize 0|1     the rrh build uses ASan+UBSan, so the consumer must link them too
USAGE
}

build_dir=""
work_dir=""
build_type=""
cxx=""
sanitize="0"
while (($# > 0)); do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --work-dir) work_dir="$2"; shift 2 ;;
    --build-type) build_type="$2"; shift 2 ;;
    --cxx) cxx="$2"; shift 2 ;;
    --sanitize) sanitize="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run_consumer.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

if [[ -z "$build_dir" || ! -f "$build_dir/CMakeCache.txt" ]]; then
  echo "run_consumer.sh: --build-dir must name a configured rrh build tree" >&2
  exit 2
fi
build_dir="$(cd "$build_dir" && pwd)"
work_dir="${work_dir:-$build_dir/tests/consumer/work}"
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt"; }
build_type="${build_type:-$(cache_value CMAKE_BUILD_TYPE)}"
cxx="${cxx:-$(cache_value CMAKE_CXX_COMPILER)}"
project_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/project" && pwd)"

prefix="$work_dir/prefix"
consumer_build="$work_dir/build"
rm -rf "$work_dir"
mkdir -p "$work_dir"

echo "--- installing $build_dir into $prefix"
cmake --install "$build_dir" --prefix "$prefix"

consumer_flags=()
if [[ "$sanitize" == "1" ]]; then
  sanitizer_flags="-fsanitize=address,undefined -fno-omit-frame-pointer"
  consumer_flags+=("-DCMAKE_CXX_FLAGS=$sanitizer_flags"
                   "-DCMAKE_EXE_LINKER_FLAGS=$sanitizer_flags")
fi

echo "--- configuring the consumer project ($build_type)"
# Only the scratch prefix may provide rrh: no package registry, no system rrh.
cmake -S "$project_dir" -B "$consumer_build" \
  -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  "${consumer_flags[@]}"

found_dir="$(sed -n 's/^rrh_DIR:PATH=//p' "$consumer_build/CMakeCache.txt")"
case "$found_dir" in
  "$prefix"/*) ;;
  *) echo "run_consumer.sh: rrh was found in '$found_dir', not in $prefix" >&2; exit 1 ;;
esac

echo "--- building the consumer project"
cmake --build "$consumer_build" --parallel 2

echo "--- running the consumer"
"$consumer_build/rrh_consumer"
