#!/usr/bin/python3
"""A Python agent for the quick start: runs a few tasks, one of which fails half-way and
saves its progress as a checkpoint; the processor schedules a retry, and the task.retry
handler resumes the task from that checkpoint. Configured from the RRH_* environment
(rrh-launch sets it), so it runs the same under a supervisor or by hand.

Usage: demo_agent.py [--agent ID] [--episode ID] [--tasks N] [--duration-s S]
"""
import argparse
import queue
import signal
import threading
import time

import rrh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="py-agent")
    parser.add_argument("--episode", default="")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--duration-s", type=float, default=10.0)
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    retries: "queue.Queue[rrh.Command]" = queue.Queue()

    with rrh.Shim() as node:
        def on_retry(command: rrh.Command) -> None:
            # Hand the work to the agent's own loop; the shim acks at once.
            retries.put(command)

        node.on_task_retry(on_retry)
        if args.episode:
            node.start_episode(args.episode)
        node.register_agent(args.agent, pool="python")
        print(f"{args.agent}: up as node {node.node_id}", flush=True)

        def run(task: str, attempt: int, checkpoint: bytes) -> None:
            node.record_task_started(args.agent, task, attempt)
            node.beat(args.agent)
            step = int(checkpoint.decode() or "0")
            if task.endswith(".t2") and attempt == 1:
                # Fails at step 3 of 5; the processor keeps the checkpoint for the retry.
                node.record_failed_task(args.agent, task, ConnectionError("upstream reset at step 3"),
                                        checkpoint=b"3", attempt=attempt)
                print(f"{args.agent}: {task} failed at step 3 (checkpoint saved)", flush=True)
                return
            print(f"{args.agent}: {task} attempt {attempt} done (resumed from step {step})", flush=True)
            node.record_task_succeeded(args.agent, task, attempt)

        deadline = time.monotonic() + args.duration_s
        next_task = 1
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                command = retries.get(timeout=0.2)
                run(command.data["task"], command.data["attempt"], command.data["checkpoint"])
                continue
            except queue.Empty:
                pass
            node.beat(args.agent)
            if next_task <= args.tasks:
                run(f"{args.agent}.t{next_task}", 1, b"")
                next_task += 1
        node.unregister_agent(args.agent, "done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
