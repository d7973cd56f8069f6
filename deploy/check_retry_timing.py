#!/usr/bin/python3
"""Reads rrh-tap JSON lines and checks that every retryable task.failed was followed by
task.retry_scheduled and a task.retry command within the announced delay plus 50 ms,
and that the announced delay respects the backoff bound; reports abandoned tasks.

Times are the senders' timestamps (ts_ms), all on this host's clock: the processor's
when it scheduled the retry (task.retry_scheduled) and when it issued it (task.retry).
The time from the agent's failure to the processor's decision is the bus's (a first
transmission lost to ZeroMQ's slow joiner is resent by the shim) and is reported apart.

Usage: check_retry_timing.py TAP_JSON_FILE [--base-ms 500] [--cap-ms 2000] [--factor 2]
Exit code 0 when every retry was on time, 1 otherwise.
"""
import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tap_file")
    parser.add_argument("--base-ms", type=float, default=500.0)
    parser.add_argument("--cap-ms", type=float, default=2000.0)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--slack-ms", type=float, default=50.0)
    args = parser.parse_args()

    failures = {}    # (task, attempt) -> ts_ms of the first task.failed
    scheduled = {}   # (task, next attempt) -> (ts_ms, delay_ms)
    retries = {}     # (task, attempt) -> ts_ms of the first relayed task.retry
    abandoned = []
    with open(args.tap_file, encoding="utf-8") as lines:
        for line in lines:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind, data = message.get("kind"), message.get("data", {})
            topic = message.get("topic", "")
            if topic.startswith("cmd.task.retry "):
                retries.setdefault((data["task"], data["attempt"]), message["ts_ms"])
            elif kind == "task.failed" and data.get("retryable"):
                failures.setdefault((data["task"], data["attempt"]), message["ts_ms"])
            elif kind == "task.retry_scheduled":
                scheduled.setdefault((data["task"], data["attempt"]), (message["ts_ms"], data["delay_ms"]))
            elif kind == "task.abandoned":
                abandoned.append((data["task"], data["attempts"], data["reason"]))

    late, checked, worst_ms, transport_ms = [], 0, float("-inf"), float("-inf")
    for (task, attempt), failed_ms in sorted(failures.items()):
        announced = scheduled.get((task, attempt + 1))
        if announced is None:
            continue  # abandoned at the retry limit, or the run ended first
        scheduled_ms, delay_ms = announced
        bound_ms = min(args.cap_ms, args.base_ms * args.factor ** (attempt - 1))
        retried_ms = retries.get((task, attempt + 1))
        if retried_ms is None:
            continue  # the run ended before the retry was due
        checked += 1
        lateness_ms = retried_ms - scheduled_ms - delay_ms
        worst_ms = max(worst_ms, lateness_ms)
        transport_ms = max(transport_ms, scheduled_ms - failed_ms)
        if delay_ms > bound_ms or lateness_ms > args.slack_ms:
            late.append((task, attempt + 1, delay_ms, bound_ms, lateness_ms))

    print(f"retries checked: {checked}; worst lateness after the announced delay: "
          f"{worst_ms if checked else 0:.0f} ms (allowed {args.slack_ms:.0f} ms); "
          f"longest failure-to-decision on the bus: {transport_ms if checked else 0:.0f} ms; "
          f"tasks abandoned: {len(abandoned)}")
    for task, attempt, delay_ms, bound_ms, lateness_ms in late:
        print(f"  LATE {task} attempt {attempt}: delay {delay_ms} ms (bound {bound_ms:.0f}), "
              f"{lateness_ms:.0f} ms after it")
    return 1 if late else 0


if __name__ == "__main__":
    sys.exit(main())
