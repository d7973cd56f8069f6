"""The Python package rrh on a real bus: a real rrh-broker process, and this test acting as
the processor with python3-zmq and python3-msgpack (SUB on events-out, PUSH on
commands-in, acks as schemas/PROTOCOL.md section 8 describes).

Needs PYTHONPATH to hold the build tree's python/ folder and RRH_BIN_DIR the folder of
rrh-broker (ctest sets both). Every wait polls a condition against a deadline.
"""
import os
import pathlib
import queue
import selectors
import subprocess
import sys
import threading
import time

import msgpack
import pytest
import zmq

import rrh

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]
WAIT_S = 15.0
COMMAND_RESEND_S = 1.0

# The seed's "Basic Usage" example with only its import line changed (as the issue gives it).
SEED_SNIPPET = '''\
from pathlib import Path
from rrh import (on_episode_start, on_episode_end, on_episode_error,
                 register_agent, unregister_agent, record_failed_task)
episode_path = Path("episode.yaml")
on_episode_start(episode_path)
register_agent("agent_1")
try:
    raise RuntimeError("task blew up")
except Exception as e:
    record_failed_task("task_1", e)
    on_episode_error(episode_path, e)
unregister_agent("agent_1")
on_episode_end(episode_path)
'''

EPISODE_FILE = '''\
id: seed-episode-1
name: seed basic usage
agents: [agent_1]
resilience:
  error_threshold: 7
  task_retry_delay: 2.5
  max_recovery_attempts: 4
'''


def broker_binary():
    bin_dir = os.environ.get("RRH_BIN_DIR") or str(SOURCE_DIR / "build" / "bin")
    path = pathlib.Path(bin_dir) / "rrh-broker"
    assert path.exists(), f"rrh-broker not found in {bin_dir} (set RRH_BIN_DIR)"
    return path


def read_line(stream, deadline):
    """One line from a subprocess pipe, or None at the deadline."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                return stream.readline()
        return None
    finally:
        selector.close()


@pytest.fixture(scope="module")
def broker():
    """A real rrh-broker on loopback ports it chooses; yields its four endpoints."""
    star = "tcp://127.0.0.1:*"
    process = subprocess.Popen(
        [str(broker_binary()), "--events-in", star, "--events-out", star, "--commands-in", star,
         "--commands-out", star, "--log-level", "warn"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = read_line(process.stdout, time.monotonic() + WAIT_S)
        assert line and line.startswith("rrh-broker ready "), f"no ready line from rrh-broker: {line!r}"
        endpoints = dict(item.split("=", 1) for item in line.split()[2:])
        assert set(endpoints) == {"events-in", "events-out", "commands-in", "commands-out"}
        yield endpoints
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


class FakeProcessor:
    """The processor's side of the protocol, enough for these tests: applies each node's
    critical events once and in order (seq = applied + 1), acks them cumulatively, and
    sends commands, resending with the same id until the node acks them."""

    def __init__(self, endpoints):
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoints["events-out"])
        self.push = self.context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(endpoints["commands-in"])
        self.probe = self.context.socket(zmq.PUB)
        self.probe.setsockopt(zmq.LINGER, 0)
        self.probe.connect(endpoints["events-in"])
        self.changed = threading.Condition()
        self.events = []          # applied events, per node in seq order
        self.applied = {}         # (node, incarnation) -> highest applied seq
        self.probe_seen = False
        self.acking = True
        self.outgoing = queue.Queue()
        self.next_command_id = 1000
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.wait_until_subscribed()

    # -- the loop (the only user of the sockets) --

    def run(self):
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        while not self.stopping:
            if not self.probe_seen:
                self.probe.send_multipart([b"pytest.probe", b""])
            for _ in poller.poll(20):
                topic, body = self.sub.recv_multipart()
                self.receive(topic, body)
            while True:
                try:
                    frames = self.outgoing.get_nowait()
                except queue.Empty:
                    break
                self.push.send_multipart(frames)

    def receive(self, topic, body):
        if topic == b"pytest.probe":
            with self.changed:
                self.probe_seen = True
                self.changed.notify_all()
            return
        if topic.startswith(b"cmd."):
            return  # the broker's copy of a relayed command
        event = msgpack.unpackb(body, raw=False)
        key = (event["node"], event["incarnation"])
        with self.changed:
            if event["seq"] == 0:
                self.events.append(event)
            elif event["seq"] == self.applied.get(key, 0) + 1:
                self.applied[key] = event["seq"]
                self.events.append(event)
            # A duplicate or a gap is not applied; the ack below tells the node where we are.
            if event["seq"] != 0 and self.acking and key in self.applied:
                self.send_ack_locked(*key)
            self.changed.notify_all()

    def send_ack_locked(self, node, incarnation):
        self.queue_command_locked(node, "ack", {"incarnation": incarnation,
                                                "seq": self.applied[(node, incarnation)]})

    def queue_command_locked(self, node, kind, data, episode="", command_id=None):
        if command_id is None:
            command_id = self.next_command_id
            self.next_command_id += 1
        body = msgpack.packb({"v": 1, "kind": kind, "id": command_id, "node": node,
                              "ts_ms": int(time.time() * 1000), "episode": episode, "data": data},
                             use_bin_type=True)
        self.outgoing.put([node.encode(), kind.encode(), body])
        return command_id

    # -- what tests call --

    def wait_until_subscribed(self):
        with self.changed:
            assert self.changed.wait_for(lambda: self.probe_seen, WAIT_S), "the bus never delivered our probe"

    def wait_for(self, predicate, what, timeout=WAIT_S):
        """Waits until predicate(events) is true; returns the events then."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.events), timeout):
                kinds = [(e["node"], e["kind"]) for e in self.events if e["kind"] != "heartbeat"]
                pytest.fail(f"timed out waiting for {what}; events so far: {kinds}")
            return list(self.events)

    def node_events(self, node, include_best_effort=False):
        with self.changed:
            return [e for e in self.events
                    if e["node"] == node and (include_best_effort or e["seq"] != 0)]

    def set_acking(self, enabled):
        with self.changed:
            self.acking = enabled
            if enabled:
                for key in self.applied:
                    self.send_ack_locked(*key)

    def command(self, node, kind, data, episode=""):
        """Sends a command until the node acks it (resending the same id, as the processor
        does); returns the command.ack event's data."""
        with self.changed:
            command_id = self.queue_command_locked(node, kind, data, episode)
        deadline = time.monotonic() + WAIT_S

        def acked(events):
            return any(e["node"] == node and e["kind"] == "command.ack"
                       and e["data"]["command_id"] == command_id for e in events)

        with self.changed:
            while not self.changed.wait_for(lambda: acked(self.events),
                                            min(COMMAND_RESEND_S, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    pytest.fail(f"{kind} command {command_id} to {node} was never acked")
                self.queue_command_locked(node, kind, data, episode, command_id=command_id)
            acks = [e for e in self.events if e["node"] == node and e["kind"] == "command.ack"
                    and e["data"]["command_id"] == command_id]
        assert len(acks) >= 1
        return command_id, acks[0]["data"]

    def close(self):
        self.stopping = True
        self.thread.join(timeout=10)
        self.context.destroy(linger=0)


@pytest.fixture(scope="module")
def processor(broker):
    fake = FakeProcessor(broker)
    yield fake
    fake.close()


def node_environment(broker, node_id):
    env = {key: value for key, value in os.environ.items() if not key.startswith("RRH_")}
    env.update({"RRH_NODE_ID": node_id, "RRH_EVENTS_ENDPOINT": broker["events-in"],
                "RRH_COMMANDS_ENDPOINT": broker["commands-out"], "RRH_HEARTBEAT_MS": "200"})
    return env


def run_python(code, cwd, env):
    finished = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=60)
    assert finished.returncode == 0, f"exit {finished.returncode}\n{finished.stderr}"
    return finished


def test_the_example_is_the_seed_snippet_with_only_the_import_changed():
    example = (SOURCE_DIR / "python" / "examples" / "seed_basic_usage.py").read_text()
    code = example[example.index('"""', example.index('"""') + 3) + 3:].lstrip("\n")
    assert code == SEED_SNIPPET


def test_seed_basic_usage_publishes_the_episode_lifecycle(broker, processor, tmp_path):
    (tmp_path / "episode.yaml").write_text(EPISODE_FILE)
    node = "py-seed-node"
    finished = run_python(SEED_SNIPPET, tmp_path, node_environment(broker, node))
    assert "Traceback" not in finished.stderr
    # The process flushed at exit: everything it sent is applied, in order.
    expected = ["episode.started", "agent.registered", "task.failed", "episode.error",
                "agent.unregistered", "episode.ended"]
    processor.wait_for(lambda events: [e["kind"] for e in events if e["node"] == node and e["seq"] != 0]
                       == expected, "the seed's six events")
    started, registered, failed, error, unregistered, ended = processor.node_events(node)
    assert all(e["episode"] == "seed-episode-1" for e in (started, registered, failed, error, unregistered,
                                                         ended))
    assert started["data"] == {"name": "seed basic usage", "agents": ["agent_1"],
                               "resilience": {"error_threshold": 7, "max_recovery_attempts": 4,
                                              "task_retry_delay": 2.5}}
    assert registered["data"]["agent"] == "agent_1"
    assert failed["data"]["task"] == "task_1"
    assert failed["data"]["agent"] == "agent_1"
    assert failed["data"]["error_type"] == "RuntimeError"
    assert failed["data"]["message"] == "task blew up"
    assert failed["data"]["retryable"] is True
    assert failed["data"]["checkpoint"] == b""
    assert error["data"] == {"agent": "", "error_type": "RuntimeError", "message": "task blew up"}
    assert unregistered["data"]["agent"] == "agent_1"
    assert ended["data"] == {"status": "completed"}


def test_task_functions_default_to_the_most_recently_registered_agent(broker, processor, tmp_path):
    node = "py-default-agent-node"
    run_python(
        "import rrh\n"
        "rrh.register_agent('first')\n"
        "rrh.register_agent('second')\n"
        "rrh.record_failed_task('t-1', KeyError('k'), checkpoint=b'\\x00\\xff', attempt=2)\n"
        "rrh.unregister_agent('second')\n"
        "rrh.record_failed_task('t-2', ValueError('v'), retryable=False)\n"
        "rrh.flush(10000)\n",
        tmp_path, node_environment(broker, node))
    events = processor.wait_for(
        lambda events: sum(e["node"] == node and e["kind"] == "task.failed" for e in events) == 2,
        "two task.failed events")
    first, second = [e["data"] for e in events if e["node"] == node and e["kind"] == "task.failed"]
    assert (first["task"], first["agent"], first["error_type"], first["message"]) == ("t-1", "second", "KeyError",
                                                                                   "'k'")
    assert (first["checkpoint"], first["attempt"], first["retryable"]) == (b"\x00\xff", 2, True)
    assert (second["task"], second["agent"], second["retryable"]) == ("t-2", "first", False)


@pytest.fixture
def node(broker, request):
    """An in-process node with the object API, closed after the test."""
    node_id = "py-" + request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:100]
    with rrh.Shim(node_id=node_id, events_endpoint=broker["events-in"], commands_endpoint=broker["commands-out"],
                  heartbeat_interval_ms=200, use_environment=False) as shim:
        yield shim


def test_retry_brings_the_failed_tasks_checkpoint_to_the_python_handler(processor, node):
    received = []
    handled = threading.Event()

    @node.on_task_retry
    def retry(command):
        received.append(command)
        handled.set()

    node.register_agent("worker", pool="pool-a")
    checkpoint = bytes(range(256)) * 8  # not UTF-8: must stay bytes end to end
    node.record_failed_task("worker", "job-7", ValueError("flaky"), checkpoint=checkpoint, attempt=1)
    events = processor.wait_for(
        lambda events: any(e["node"] == node.node_id and e["kind"] == "task.failed" for e in events),
        "task.failed")
    failed = next(e["data"] for e in events if e["node"] == node.node_id and e["kind"] == "task.failed")
    assert failed["error_type"] == "ValueError" and failed["message"] == "flaky"
    assert failed["pool"] == "pool-a"
    assert failed["checkpoint"] == checkpoint

    command_id, ack = processor.command(node.node_id, "task.retry",
                                        {"task": "job-7", "agent": "worker", "attempt": 2, "from_agent": "",
                                         "checkpoint": failed["checkpoint"]})
    assert ack == {"command_id": command_id, "accepted": True, "reason": ""}
    assert handled.wait(WAIT_S)
    assert len(received) == 1  # resends of the same id are not handled again
    command = received[0]
    assert (command.id, command.kind, command.node, command.episode) == (command_id, "task.retry", node.node_id, "")
    assert (command.task, command.agent, command.attempt, command.from_agent) == ("job-7", "worker", 2, "")
    assert isinstance(command.checkpoint, bytes) and command.checkpoint == checkpoint
    assert command["checkpoint"] == command.data["checkpoint"]


def raise_runtime_error(command):
    raise RuntimeError(f"cannot stop {command.episode}")


@pytest.mark.parametrize("answer, accepted, reason", [
    (lambda command: None, True, ""),
    (lambda command: True, True, ""),
    (lambda command: "busy with episode " + command.episode, False, "busy with episode ep-9"),
    (lambda command: False, False, "refused by the handler"),
    (raise_runtime_error, False, "handler raised RuntimeError: cannot stop ep-9"),
], ids=["none", "true", "reason", "false", "raises"])
def test_a_handlers_answer_becomes_the_command_ack(processor, node, answer, accepted, reason):
    node.on_episode_shutdown(answer)
    _, ack = processor.command(node.node_id, "episode.shutdown", {"reason": "error threshold"}, episode="ep-9")
    assert (ack["accepted"], ack["reason"]) == (accepted, reason)


def test_a_kind_without_handler_is_refused_and_a_removed_handler_too(processor, node):
    node.register_agent("worker")
    node.on_task_rollback(lambda command: None)
    node.on_task_rollback(None)
    _, ack = processor.command(node.node_id, "task.rollback", {"task": "t", "agent": "worker", "reason": "abandoned"})
    assert (ack["accepted"], ack["reason"]) == (False, "no handler for task.rollback")


def test_flush_releases_the_gil_so_handlers_run_meanwhile(processor, node):
    """The processor holds its acks until the node acks a command; that ack needs the
    Python handler, which needs the GIL while this thread waits in flush()."""
    ran = threading.Event()
    node.on_agent_recover(lambda command: ran.set())
    processor.set_acking(False)
    try:
        node.record_task_started("nobody", "t-gil")
        processor.wait_for(lambda events: any(e["node"] == node.node_id and e["kind"] == "task.started"
                                              for e in events), "task.started")
        sender = threading.Thread(target=processor.command,
                                  args=(node.node_id, "agent.recover", {"agent": "gone", "attempt": 1}))
        sender.start()

        def resume_acking_after_command_ack():
            processor.wait_for(lambda events: any(e["node"] == node.node_id and e["kind"] == "command.ack"
                                                  for e in events), "command.ack")
            processor.set_acking(True)

        resumer = threading.Thread(target=resume_acking_after_command_ack)
        resumer.start()
        node.flush(int(WAIT_S * 1000))  # raises RrhError(timeout) if the handler could not run
        sender.join()
        resumer.join()
    finally:
        processor.set_acking(True)
    assert ran.is_set()
    assert node.stats()["outbox_size"] == 0


def test_handlers_can_call_the_shim_and_the_node_closes_cleanly(processor, broker):
    shim = rrh.Shim(node_id="py-reentrant", events_endpoint=broker["events-in"],
                    commands_endpoint=broker["commands-out"], use_environment=False)
    shim.register_agent("worker")

    def retry(command):
        shim.record_task_started(command.agent, command.task, command.attempt)

    shim.on_task_retry(retry)
    processor.command(shim.node_id, "task.retry", {"task": "t-r", "agent": "worker", "attempt": 3,
                                                   "from_agent": "", "checkpoint": b""})
    events = processor.wait_for(lambda events: any(e["node"] == "py-reentrant" and e["kind"] == "task.started"
                                                   for e in events), "task.started from the handler")
    started = next(e["data"] for e in events if e["node"] == "py-reentrant" and e["kind"] == "task.started")
    assert started == {"task": "t-r", "agent": "worker", "attempt": 3}
    shim.close()
    assert shim.closed
    with pytest.raises(rrh.RrhError) as closed:
        shim.beat("worker")
    assert closed.value.code == "closed"


def test_a_handler_may_close_its_own_node(processor, broker):
    shim = rrh.Shim(node_id="py-self-closing", events_endpoint=broker["events-in"],
                    commands_endpoint=broker["commands-out"], use_environment=False)
    closed_in_handler = threading.Event()

    def shutdown(command):
        shim.close()  # from the dispatcher thread: the shim is joined elsewhere
        closed_in_handler.set()

    shim.on_episode_shutdown(shutdown)
    # The node never acks (it closes first), so resend the same id until the handler ran.
    deadline = time.monotonic() + WAIT_S
    command_id = None
    while not closed_in_handler.is_set() and time.monotonic() < deadline:
        with processor.changed:
            command_id = processor.queue_command_locked(shim.node_id, "episode.shutdown", {"reason": "stop"},
                                                        command_id=command_id)
        closed_in_handler.wait(COMMAND_RESEND_S)
    assert closed_in_handler.is_set()
    assert shim.closed
