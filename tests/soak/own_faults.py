#!/usr/bin/python3
"""rrh's own faults against a healthy fleet, at real speed: measures what the processor
and the launchers do when the processor or the broker stops, so that the figures can be
compared with what rrh promises (docs/GUARANTEES.md, "When rrh itself fails").

The fleet: 4 rrh-launch supervisors, each running an rrh-agent child with 10 agents, and
4 Python nodes (the rrh package) with one agent each: 44 agents, 1 s heartbeats. One
more Python node is killed during each pause: it must be declared dead after it.

Scenarios (each on a fresh broker, processor and fleet):
  processor-stop S   the processor SIGSTOPped S seconds, then SIGCONT (default config)
  broker-stop S      the broker SIGSTOPped S seconds, then SIGCONT (default config)
  broker-kills S     the broker killed twice, S seconds each, restarted on the same ports,
                     under deploy/quickstart.yaml's timings
For each: agent.dead of live agents, agent.recover commands, child restarts, quarantined
agents, and whether the node killed during the fault was declared dead after it.

Usage: tests/soak/own_faults.py [--build-dir build] [--scenario NAME:SECONDS ...]
Default: processor-stop:20 processor-stop:60 broker-stop:20 broker-kills:12.
Exit code 0 when every scenario met the promise, 1 otherwise.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PY_NODE = r'''
import signal, sys, threading, time
import rrh
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
with rrh.Shim(node_id=sys.argv[1]) as node:
    node.register_agent(sys.argv[1] + ".a1")
    print("up", flush=True)
    while not stop.wait(0.5):
        pass
'''


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_line(process, needle, deadline_s=15.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = process.stdout.readline()
        if not line:
            time.sleep(0.05)
            continue
        if needle in line:
            return line.strip()
    raise RuntimeError(f"no line with {needle!r}")


def field(line, name):
    for part in line.split():
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    raise RuntimeError(f"no {name}= in {line!r}")


class Fleet:
    def __init__(self, build_dir, work, config_text, heartbeat_ms):
        self.bin = os.path.join(build_dir, "bin")
        self.python = os.path.join(build_dir, "python")
        self.work = work
        self.heartbeat_ms = heartbeat_ms
        self.ports = free_ports(4)
        self.endpoints = {name: f"tcp://127.0.0.1:{port}"
                          for name, port in zip(["events-in", "events-out", "commands-in", "commands-out"], self.ports)}
        self.processes = []
        self.config = os.path.join(work, "rrh.yaml")
        with open(self.config, "w") as out:
            out.write(config_text)
        self.broker = self.start_broker()
        self.processor = subprocess.Popen(
            [os.path.join(self.bin, "rrh-processor"), "--config", self.config, "--events", self.endpoints["events-out"],
             "--publish", self.endpoints["events-in"], "--commands", self.endpoints["commands-in"],
             "--control", "tcp://127.0.0.1:*", "--state", os.path.join(work, "state.db")],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "processor.log"), "w"), text=True)
        self.processes.append(self.processor)
        self.control = field(wait_line(self.processor, "rrh-processor ready"), "control")
        self.tap_log = os.path.join(work, "tap.jsonl")
        self.tap = subprocess.Popen(
            [os.path.join(self.bin, "rrh-tap"), "--connect", self.endpoints["events-out"], "--json",
             "--filter", "agent.", "--filter", "cmd.agent.recover", "--filter", "alert"],
            stdout=open(self.tap_log, "w"), stderr=subprocess.DEVNULL)
        self.processes.append(self.tap)
        env = dict(os.environ, RRH_EVENTS_ENDPOINT=self.endpoints["events-in"],
                   RRH_COMMANDS_ENDPOINT=self.endpoints["commands-out"], PYTHONPATH=self.python)
        self.launchers = []
        for index in range(1, 5):
            log = os.path.join(work, f"launch-{index}.log")
            launcher = subprocess.Popen(
                [os.path.join(self.bin, "rrh-launch"), "--node", f"c{index}", "--events", self.endpoints["events-in"],
                 "--commands", self.endpoints["commands-out"], "--", os.path.join(self.bin, "rrh-agent"),
                 "--agents", "10", "--task-ms", "500", "--fail-rate", "0", "--heartbeat-ms", str(heartbeat_ms)],
                stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
            self.launchers.append((launcher, log))
            self.processes.append(launcher)
        self.python_nodes = {}
        for index in range(1, 6):
            name = f"py{index}"
            node = subprocess.Popen([sys.executable, "-c", PY_NODE, name], stdout=subprocess.PIPE,
                                    stderr=open(os.path.join(work, f"{name}.log"), "w"), text=True,
                                    env=dict(env, RRH_HEARTBEAT_MS=str(heartbeat_ms)))
            wait_line(node, "up")
            self.python_nodes[name] = node
            self.processes.append(node)

    def start_broker(self):
        broker = subprocess.Popen(
            [os.path.join(self.bin, "rrh-broker")] + [arg for name, endpoint in self.endpoints.items()
                                                       for arg in (f"--{name}", endpoint)],
            stdout=subprocess.PIPE, stderr=open(os.path.join(self.work, "broker.log"), "a"), text=True)
        wait_line(broker, "rrh-broker ready")
        self.processes.append(broker)
        return broker

    def ctl(self, *args):
        result = subprocess.run([os.path.join(self.bin, "rrh-ctl"), "--control", self.control, *args],
                                capture_output=True, text=True, timeout=10)
        return json.loads(result.stdout)["data"] if result.returncode == 0 else None

    def agents(self):
        data = self.ctl("agents") or {}
        return {agent["agent"]: agent for agent in data.get("agents", [])}

    def wait_healthy(self, count, deadline_s=30.0):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            healthy = [a for a in self.agents().values() if a["state"] == "healthy"]
            if len(healthy) >= count:
                return True
            time.sleep(0.5)
        return False

    def tap_lines(self):
        with open(self.tap_log) as lines:
            return [json.loads(line) for line in lines if line.strip()]

    def child_starts(self):
        total = 0
        for _, log in self.launchers:
            with open(log) as lines:
                total += sum(1 for line in lines if "child pid=" in line and " started for node " in line)
        return total

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGCONT)
                    process.terminate()
                except ProcessLookupError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def about(entry):
    data = entry.get("data", entry)
    return data.get("agent", "")


def run(build_dir, scenario, seconds):
    work = tempfile.mkdtemp(prefix=f"rrh-own-faults-{scenario}-")
    quick = scenario == "broker-kills"
    if quick:
        with open(os.path.join(REPO, "deploy", "quickstart.yaml")) as source:
            config = source.read()
        heartbeat_ms = 200
    else:
        config = "resilience:\n  max_recovery_attempts: 3\n"
        heartbeat_ms = 1000
    fleet = Fleet(build_dir, work, config, heartbeat_ms)
    try:
        if not fleet.wait_healthy(45):
            raise RuntimeError("the fleet never became healthy")
        starts_before = fleet.child_starts()
        marks = len(fleet.tap_lines())
        victim = fleet.python_nodes["py5"]
        began = time.monotonic()
        if scenario == "processor-stop":
            os.kill(fleet.processor.pid, signal.SIGSTOP)
            time.sleep(1.0)
            victim.kill()  # dies during the pause: must be found after it
            time.sleep(seconds - 1.0)
            os.kill(fleet.processor.pid, signal.SIGCONT)
        elif scenario == "broker-stop":
            os.kill(fleet.broker.pid, signal.SIGSTOP)
            time.sleep(1.0)
            victim.kill()
            time.sleep(seconds - 1.0)
            os.kill(fleet.broker.pid, signal.SIGCONT)
        else:
            for round_index in range(2):
                fleet.broker.kill()
                fleet.broker.wait()
                if round_index == 0:
                    time.sleep(1.0)
                    victim.kill()
                    time.sleep(seconds - 1.0)
                else:
                    time.sleep(seconds)
                fleet.broker = fleet.start_broker()
                time.sleep(10.0)
        resumed = time.monotonic()
        time.sleep(20.0)  # the victim's detection window, and time for any false verdict to show
        entries = fleet.tap_lines()[marks:]
        live = lambda agent: not agent.startswith("py5")
        dead_live = [e for e in entries if e.get("topic", "").startswith("agent.dead") and live(about(e))]
        recovers_live = [e for e in entries if e.get("topic", "").startswith("cmd.agent.recover") and live(about(e))]
        victim_dead = [e for e in entries if e.get("topic", "").startswith("agent.dead") and about(e).startswith("py5")]
        agents = fleet.agents()
        quarantined = [a for a, record in agents.items() if record["state"] == "quarantined"]
        charged = [a for a, record in agents.items() if live(a) and record.get("recovery_attempts", 0) > 0]
        restarts = fleet.child_starts() - starts_before
        status = fleet.ctl("status") or {}
        result = {
            "scenario": scenario, "seconds": seconds, "agents": len(agents),
            "agent_dead_of_live": len(dead_live), "recovers_to_live": len(recovers_live),
            "child_restarts": restarts, "quarantined": len(quarantined), "live_agents_charged": len(charged),
            "victim_declared_dead": bool(victim_dead),
            "blind_spells": status.get("engine", {}).get("blind_spells"),
            "stalls": status.get("sight", {}).get("stalls"), "deaf_spells": status.get("sight", {}).get("deaf_spells"),
            "fault_s": round(resumed - began, 1),
        }
        result["met"] = (not dead_live and not recovers_live and restarts == 0 and not quarantined and not charged
                         and bool(victim_dead))
        return result
    finally:
        fleet.stop()
        if os.environ.get("RRH_KEEP_WORK"):
            print(f"own_faults: logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    parser.add_argument("--scenario", action="append",
                        help="NAME:SECONDS, NAME one of processor-stop, broker-stop, broker-kills (repeatable)")
    args = parser.parse_args()
    scenarios = args.scenario or ["processor-stop:20", "processor-stop:60", "broker-stop:20", "broker-kills:12"]
    all_met = True
    for text in scenarios:
        name, _, seconds = text.partition(":")
        if name not in ("processor-stop", "broker-stop", "broker-kills") or not seconds:
            parser.error(f"bad scenario {text!r}")
        print(f"own_faults: {name} {seconds} s ...", file=sys.stderr, flush=True)
        result = run(args.build_dir, name, float(seconds))
        print(json.dumps(result), flush=True)
        all_met = all_met and result["met"]
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
