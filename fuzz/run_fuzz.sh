#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/targets with clang++-14 (a build tree of their own,
# so the main g++ build is untouched) and runs each for a bounded time. Fails when any
# target crashes, leaks, trips a sanitizer or violates one of its properties; the input
# that did it is kept under <build-dir>/artifacts/<target>/ and named in the output.
#
# Usage: fuzz/run_fuzz.sh [--build-dir DIR] [--seconds N] [--jobs N] [TARGET...]
#   --build-dir DIR  where the fuzz build, the grown corpora and crash inputs live
#                    (default: build/fuzz)
#   --seconds N      fuzzing time per target (default: $RRH_FUZZ_SECONDS or 12)
#   --jobs N         targets fuzzed at once, and compile jobs (default: $RRH_FUZZ_JOBS or 2)
#   TARGET...        only these targets (default: all)
# Replay one input:  <build-dir>/clang/<target> <file>
# The corpora start from schemas/golden/*.msgpack and fuzz/corpus/<target>/, and grow in
# <build-dir>/corpus/<target>/ from run to run; the source tree is never written.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$repo_root/build/fuzz"
seconds="${RRH_FUZZ_SECONDS:-12}"
jobs="${RRH_FUZZ_JOBS:-2}"
targets=()
build_targets=()  # empty: build all, which lets the targets' sources compile side by side
while (($# > 0)); do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) echo "run_fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *) targets+=("$1"); build_targets+=(--target "$1"); shift ;;
  esac
done
all_targets=(decode_event_fuzz decode_command_fuzz msgpack_json_fuzz processor_config_fuzz
             shim_config_fuzz broker_config_fuzz)
((${#targets[@]} > 0)) || targets=("${all_targets[@]}")

compiler="$(command -v clang++-14 || true)"
if [[ -z "$compiler" ]]; then
  echo "run_fuzz.sh: clang++-14 not found; deploy/install_deps.sh installs it" \
       "(packages clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi

# Seeds of each target: golden vectors for the msgpack readers, YAML files for the
# config loaders; and the dictionary that tells the mutator the format's words.
seed_inputs() {
  case "$1" in
    decode_event_fuzz) echo "$repo_root"/schemas/golden/event.*.msgpack ;;
    decode_command_fuzz) echo "$repo_root"/schemas/golden/command.*.msgpack ;;
    msgpack_json_fuzz) echo "$repo_root"/schemas/golden/*.msgpack ;;
    *_config_fuzz) echo "$repo_root"/fuzz/corpus/"${1%_fuzz}"/* ;;
  esac
}
dictionary_of() {
  case "$1" in
    *_config_fuzz) echo "$repo_root/fuzz/dict/yaml.dict" ;;
    *) echo "$repo_root/fuzz/dict/msgpack.dict" ;;
  esac
}

clang_build="$build_dir/clang"
launcher="$(command -v ccache || true)"
echo "==> building fuzz targets with $compiler in $clang_build"
if [[ ! -f "$clang_build/CMakeCache.txt" ]]; then
  cmake -S "$repo_root/fuzz/targets" -B "$clang_build" -DCMAKE_CXX_COMPILER="$compiler" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" >/dev/null
fi
cmake --build "$clang_build" --parallel "$jobs" "${build_targets[@]}"

# Runs one target; its log goes to <build-dir>/logs/<target>.log.
fuzz_one() {
  local target="$1" corpus="$build_dir/corpus/$1" artifacts="$build_dir/artifacts/$1/"
  mkdir -p "$corpus" "$artifacts" "$build_dir/logs"
  # shellcheck disable=SC2046  # the seed list is a glob expansion, split on purpose
  cp -n $(seed_inputs "$target") "$corpus/"
  "$clang_build/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
    -max_len=65536 -print_final_stats=1 -dict="$(dictionary_of "$target")" \
    -artifact_prefix="$artifacts" "$corpus" >"$build_dir/logs/$target.log" 2>&1
}

echo "==> fuzzing ${#targets[@]} targets, ${seconds} s each, $jobs at a time"
declare -A running=()
failed=()
finish() {  # waits for the target started as pid $1
  local pid="$1" target="${running[$1]}" executions
  if wait "$pid"; then
    executions="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build_dir/logs/$target.log" |
                  grep -o '[0-9]*$' || echo '?')"
    echo "  $target: ok, $executions executions"
  else
    failed+=("$target")
    echo "  $target: FAILED (log: $build_dir/logs/$target.log)"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|rrh fuzz|artifact_prefix|Test unit written)' \
      "$build_dir/logs/$target.log" | sed 's/^/    /' || true
  fi
  unset "running[$pid]"
}
for target in "${targets[@]}"; do
  while ((${#running[@]} >= jobs)); do
    # Waits for the oldest still-running target; good enough with similar run times.
    for pid in "${!running[@]}"; do finish "$pid"; break; done
  done
  fuzz_one "$target" &
  running[$!]="$target"
done
for pid in "${!running[@]}"; do finish "$pid"; done

if ((${#failed[@]} > 0)); then
  echo "run_fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "run_fuzz.sh: every target ran clean"
