#!/usr/bin/env bash
# rrh quick start: installs the build dependencies, builds rrh, and runs a live demo on
# loopback that shows every recovery path: a broker, the resilience processor at test
# speed, a tap that prints every event and command, and four agent processes under
# rrh-launch (C++ and Python): tasks fail and are retried from their checkpoint, a
# non-retryable failure is rolled back, a crashed process is restarted, a process that
# keeps crashing is quarantined; then the episode summary. Ctrl-C stops everything.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: deploy/quickstart.sh [--skip-build] [--help]

Builds rrh into build/ (reusing an existing configuration) and runs a demo of about 20 s:
  rrh-broker     the bus, on loopback ports
  rrh-processor  the resilience processor, test-speed settings from deploy/quickstart.yaml
  rrh-tap        prints every event and command (readable on a terminal, JSON otherwise)
  rrh-launch     supervises each agent process below; restarts it on agent.recover
    demo-1       rrh-agent, 2 agents: 30% of tasks fail (1 in 5 of those non-retryable,
                 rolled back), retried from their checkpoint; owns episode "demo", 14 s
    demo-2       rrh-agent that crashes once after 2 s: restarted, runs on
    demo-3       rrh-agent that crashes 1.5 s after every start: quarantined after 3
                 recovery attempts
    py-1         a Python agent (python/examples/demo_agent.py): a task fails at step 3
                 and resumes from its checkpoint
Then: the episode summary (rrh-ctl episode demo --pretty), the agents, and a check that
every retry came within its announced delay + 50 ms (deploy/check_retry_timing.py).

Options:
  --skip-build   use the binaries already in the build directory
  --help         show this help

Environment:
  BUILD_DIR=dir                build directory (default: build)
  RRH_BUILD_TYPE=type          build type for a fresh configuration (default: RelWithDebInfo)
  RRH_QUICKSTART_PORT_BASE=n   bind the broker to ports n..n+3 (default: free ports chosen
                               by the system, read back from the broker's ready line)
Logs of every process are kept in BUILD_DIR/quickstart/.
USAGE
}

skip_build=0
while (($# > 0)); do
  case "$1" in
    --skip-build) skip_build=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "quickstart.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build_dir="${BUILD_DIR:-build}"
bin_dir="$build_dir/bin"
log_dir="$build_dir/quickstart"
ready_timeout_s=10   # how long the broker may take to bind and print its ready line
stop_timeout_s=5     # how long a process may take to exit after SIGTERM before SIGKILL

say() { echo "quickstart: $*" >&2; }
fail() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- build
if ((skip_build == 0)); then
  say "checking dependencies"
  bash deploy/install_deps.sh
  if [[ -f "$build_dir/CMakeCache.txt" ]]; then
    say "reusing the configuration in $build_dir"
  else
    # The same build type as tests/run.sh, so both share build/ without rebuilding.
    build_type="${RRH_BUILD_TYPE:-RelWithDebInfo}"
    say "configuring $build_dir ($build_type)"
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
  fi
  cores="$(nproc 2>/dev/null || echo 2)"
  # Only the demo's programs: tests and benchmarks are tests/run.sh's business.
  say "building the demo programs (a few minutes the first time)"
  cmake --build "$build_dir" --parallel "$((cores < 8 ? cores : 8))" \
    --target rrh-broker rrh-processor rrh-ctl rrh-tap rrh-agent rrh-launch
  # The Python agent needs the package; it is skipped when pybind11 is not there.
  cmake --build "$build_dir" --parallel "$((cores < 8 ? cores : 8))" --target rrh_python 2>/dev/null ||
    say "the Python package could not be built; the demo runs without its Python agent"
fi

for program in rrh-broker rrh-processor rrh-ctl rrh-tap rrh-agent rrh-launch; do
  [[ -x "$bin_dir/$program" ]] ||
    fail "$bin_dir/$program is missing; build it first (cmake --build $build_dir) or run without --skip-build"
done
mkdir -p "$log_dir"

# ------------------------------------------------------------------ process control
# Every process the demo starts, in start order, so that any exit path stops them all.
process_pids=()
declare -A process_names=()

# start NAME COMMAND...: runs COMMAND in the background with stderr in $log_dir/NAME.log;
# its pid is left in $started_pid.
start() {
  local name="$1"
  shift
  "$@" 2>"$log_dir/$name.log" &
  started_pid=$!
  process_pids+=("$started_pid")
  process_names[$started_pid]="$name"
}

# stop PID: SIGTERM, then SIGKILL if it does not exit within stop_timeout_s; reaps it.
stop() {
  local pid="$1" waited_ms=0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((waited_ms < stop_timeout_s * 1000)); do
      sleep 0.1
      waited_ms=$((waited_ms + 100))
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "${process_names[$pid]} did not stop within ${stop_timeout_s}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# forget PID: a process already reaped by `wait` is no longer ours to stop.
forget() {
  local pid remaining=()
  for pid in "${process_pids[@]}"; do
    [[ "$pid" == "$1" ]] || remaining+=("$pid")
  done
  process_pids=("${remaining[@]}")
}

stop_all() {
  local index
  # Newest first: the agent before the tap, the tap before the broker.
  for ((index = ${#process_pids[@]} - 1; index >= 0; index--)); do
    stop "${process_pids[index]}"
  done
  process_pids=()
}

# on_signal STATUS: stop everything and exit with 128 + the signal number.
on_signal() {
  say "interrupted; stopping the demo"
  trap - INT TERM
  stop_all
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap stop_all EXIT

# ------------------------------------------------------------------------- broker
if [[ -n "${RRH_QUICKSTART_PORT_BASE:-}" ]]; then
  [[ "$RRH_QUICKSTART_PORT_BASE" =~ ^[0-9]+$ ]] || fail "RRH_QUICKSTART_PORT_BASE must be a port number"
  ports=("$RRH_QUICKSTART_PORT_BASE" "$((RRH_QUICKSTART_PORT_BASE + 1))"
         "$((RRH_QUICKSTART_PORT_BASE + 2))" "$((RRH_QUICKSTART_PORT_BASE + 3))")
else
  ports=('*' '*' '*' '*')
fi

broker_ready_file="$log_dir/broker.out"
: >"$broker_ready_file"
say "starting rrh-broker"
start broker "$bin_dir/rrh-broker" \
  --events-in "tcp://127.0.0.1:${ports[0]}" --events-out "tcp://127.0.0.1:${ports[1]}" \
  --commands-in "tcp://127.0.0.1:${ports[2]}" --commands-out "tcp://127.0.0.1:${ports[3]}" \
  >"$broker_ready_file"
broker_pid=$started_pid

# The broker prints, once bound:
#   rrh-broker ready events-in=EP events-out=EP commands-in=EP commands-out=EP
ready_line=""
for ((waited_ms = 0; waited_ms < ready_timeout_s * 1000; waited_ms += 100)); do
  ready_line="$(grep -m1 '^rrh-broker ready ' "$broker_ready_file" || true)"
  [[ -n "$ready_line" ]] && break
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$ready_line" ]]; then
  cat "$log_dir/broker.log" >&2 || true
  fail "rrh-broker did not become ready (log: $log_dir/broker.log)"
fi
endpoint() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$ready_line"; }
events_in="$(endpoint events-in)"
events_out="$(endpoint events-out)"
commands_in="$(endpoint commands-in)"
commands_out="$(endpoint commands-out)"
say "bus ready: agents publish to $events_in, watchers read $events_out"

# ---------------------------------------------------------------------- processor
# The store commits with fsync (synchronous=FULL); on a virtual disk one fsync can stall
# the processor's loop for tens of milliseconds. The demo's state is throwaway, so it
# lives in memory-backed /dev/shm when there is one, keeping the retry timing honest to
# the processor rather than to the disk.
state_dir="$log_dir"
[[ -d /dev/shm && -w /dev/shm ]] && state_dir="$(mktemp -d /dev/shm/rrh-quickstart.XXXXXX)"
state_file="$state_dir/state.db"
rm -f "$state_file" "$state_file-wal" "$state_file-shm"
processor_out="$log_dir/processor.out"
: >"$processor_out"
say "starting rrh-processor (test-speed settings: deploy/quickstart.yaml)"
start processor "$bin_dir/rrh-processor" --config deploy/quickstart.yaml \
  --events "$events_out" --publish "$events_in" --commands "$commands_in" \
  --control "tcp://127.0.0.1:*" --state "$state_file" >"$processor_out"
processor_pid=$started_pid
control=""
for ((waited_ms = 0; waited_ms < ready_timeout_s * 1000; waited_ms += 100)); do
  control="$(sed -n 's/^rrh-processor ready control=\([^ ]*\).*/\1/p' "$processor_out")"
  [[ -n "$control" ]] && break
  kill -0 "$processor_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$control" ]]; then
  cat "$log_dir/processor.log" >&2 || true
  fail "rrh-processor did not become ready (log: $log_dir/processor.log)"
fi

# ---------------------------------------------------------------------------- tap
tap_format=(--json)
[[ -t 1 ]] && tap_format=(--pretty)
say "starting rrh-tap (events follow)"
start tap "$bin_dir/rrh-tap" "${tap_format[@]}" --connect "$events_out"
# A second tap keeps JSON lines for the retry timing check at the end.
tap_record="$log_dir/tap.jsonl"
start tap-record "$bin_dir/rrh-tap" --json --connect "$events_out" >"$tap_record"
# A subscription reaches the broker asynchronously; give it a moment so the tap sees the
# agent's first events (the shim would resend them anyway, unacknowledged).
sleep 0.5

# ------------------------------------------------------------------------- agents
# Every agent process runs under rrh-launch, its supervisor: the launcher reports a
# crash at once and restarts the process when (and only when) the processor says so.
# `start` runs this in a background subshell; exec makes that subshell the launcher
# itself, so the pid `start` records is the launcher's and stopping it stops its child.
launch() {
  local node="$1"
  shift
  exec "$bin_dir/rrh-launch" --node "$node" --events "$events_in" --commands "$commands_out" \
    --heartbeat-ms 200 --grace-ms 2000 "$@"
}
agent_flags=(--task-ms 200 --heartbeat-ms 200 --episode demo)

say "starting node demo-1 under rrh-launch: 2 agents, 30% of tasks fail (1 in 5 non-retryable); it owns episode 'demo'"
start demo-1 launch demo-1 --agent demo-1.a1 --agent demo-1.a2 -- \
  "$bin_dir/rrh-agent" --agents 2 "${agent_flags[@]}" --fail-rate 0.3 --non-retryable-rate 0.2 \
  --watchdog-ms 1000 --duration-s 14

crash_marker="$log_dir/demo-2.crashed"
rm -f "$crash_marker"
say "starting node demo-2 under rrh-launch: crashes once after 2 s, is restarted, runs on"
start demo-2 launch demo-2 --agent demo-2.a1 -- \
  "$bin_dir/rrh-agent" --agents 1 "${agent_flags[@]}" --leave-episode-open \
  --crash-after 2 --crash-once "$crash_marker" --duration-s 10

say "starting node demo-3 under rrh-launch: crashes 1.5 s after every start, until quarantined"
start demo-3 launch demo-3 --agent demo-3.a1 -- \
  "$bin_dir/rrh-agent" --agents 1 "${agent_flags[@]}" --leave-episode-open --crash-after 1.5

if [[ -f "$build_dir/python/rrh/__init__.py" ]]; then
  say "starting node py-1 under rrh-launch: a Python agent whose task fails and resumes from its checkpoint"
  start py-1 env PYTHONPATH="$build_dir/python" \
    "$bin_dir/rrh-launch" --node py-1 --agent py-agent --events "$events_in" \
    --commands "$commands_out" --heartbeat-ms 200 --grace-ms 2000 -- \
    /usr/bin/python3 python/examples/demo_agent.py --agent py-agent --episode demo --duration-s 10
else
  say "the Python package is not built (pybind11 or python3-dev missing): no Python agent"
fi

# The episode ends when demo-1 finishes its 14 s; the summary follows at once.
episode_timeout_s=45
episode_state=""
for ((waited_ms = 0; waited_ms < episode_timeout_s * 1000; waited_ms += 250)); do
  episode_state="$("$bin_dir/rrh-ctl" --control "$control" --timeout-ms 1000 episode demo 2>/dev/null || true)"
  [[ "$episode_state" == *'"state":"ended"'* ]] && break
  sleep 0.25
done
[[ "$episode_state" == *'"state":"ended"'* ]] || fail "episode demo did not end within ${episode_timeout_s}s"
# Let the last events (the episode summary) cross the bus before the taps stop.
sleep 1

# ------------------------------------------------------------------------ summary
echo
say "episode summary (rrh-ctl episode demo --pretty):"
"$bin_dir/rrh-ctl" --control "$control" --pretty episode demo || true
echo
say "agents (rrh-ctl agents --pretty):"
"$bin_dir/rrh-ctl" --control "$control" --pretty agents || true
echo
timing_status=0
/usr/bin/python3 deploy/check_retry_timing.py "$tap_record" --base-ms 500 --cap-ms 2000 ||
  timing_status=$?

# ----------------------------------------------------------------------- shutdown
stop_all
trap - INT TERM EXIT
leftovers="$(pgrep -f "^$bin_dir/rrh-" || true)"
[[ -z "$leftovers" ]] || say "warning: processes still running after the demo: $leftovers"
[[ "$state_dir" == /dev/shm/rrh-quickstart.* ]] && rm -rf "$state_dir"
if ((timing_status != 0)); then
  say "some retries came later than their delay + 50 ms (see above)"
  exit "$timing_status"
fi
say "demo finished; logs are in $log_dir/"
