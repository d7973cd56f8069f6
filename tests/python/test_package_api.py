"""The Python package rrh without a bus: its names, configuration, errors and shutdown.

Nodes here point at a loopback port where nothing listens, so nothing they send is
acked. Needs PYTHONPATH to hold the build tree's python/ folder (ctest sets it).
"""
import inspect
import os
import subprocess
import sys

import pytest

import rrh

NOWHERE = "tcp://127.0.0.1:9"  # the discard port: nothing of rrh listens there


@pytest.fixture
def isolated_default(monkeypatch):
    """Points the default shim at nowhere and closes it after the test."""
    for key in list(os.environ):
        if key.startswith("RRH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RRH_NODE_ID", "pytest-api")
    monkeypatch.setenv("RRH_EVENTS_ENDPOINT", NOWHERE)
    monkeypatch.setenv("RRH_COMMANDS_ENDPOINT", NOWHERE)
    rrh.shutdown(0)
    yield
    rrh.shutdown(0)


def make_node(node_id="pytest-node", **options):
    return rrh.Shim(node_id=node_id, events_endpoint=NOWHERE, commands_endpoint=NOWHERE,
                    use_environment=False, **options)


def test_resilience_config_has_the_seeds_keys_and_defaults():
    assert isinstance(rrh.RESILIENCE_CONFIG, dict)
    assert rrh.RESILIENCE_CONFIG == {"max_recovery_attempts": 3, "recovery_cooldown": 60, "error_threshold": 5,
                                     "agent_health_check_interval": 300, "task_retry_delay": 30}


def test_the_seeds_functions_exist_with_its_signatures():
    expected = {
        "on_episode_start": ["episode_path"],
        "on_episode_end": ["episode_path", "outcome"],
        "on_episode_error": ["episode_path", "error", "agent_id"],
        "register_agent": ["agent_id", "pool", "capabilities", "supervisor", "watchdog_timeout_ms"],
        "unregister_agent": ["agent_id", "reason"],
        "record_failed_task": ["task_id", "error", "agent_id", "retryable", "attempt", "checkpoint"],
    }
    for name, parameters in expected.items():
        function = getattr(rrh, name)
        assert list(inspect.signature(function).parameters) == parameters, name
        assert function.__doc__, name
    assert set(expected) <= set(rrh.__all__)


def test_error_type_names_are_bare_for_builtins_and_qualified_otherwise():
    class LocalError(Exception):
        pass

    assert rrh.error_type_name(RuntimeError("x")) == "RuntimeError"
    assert rrh.error_type_name(KeyError("x")) == "KeyError"
    assert rrh.error_type_name(LocalError()) == (
        f"{__name__}.test_error_type_names_are_bare_for_builtins_and_qualified_otherwise.<locals>.LocalError")


def test_a_node_takes_its_options_and_stops_on_close():
    node = make_node("pytest-options", heartbeat_interval_ms=250)
    assert node.node_id == "pytest-options"
    assert node.incarnation != 0
    assert not node.closed
    node.close()
    node.close()  # idempotent
    assert node.closed
    with pytest.raises(rrh.RrhError) as failure:
        node.register_agent("a")
    assert failure.value.code == "closed"


def test_keyword_arguments_override_the_environment(monkeypatch):
    monkeypatch.setenv("RRH_NODE_ID", "from-environment")
    monkeypatch.setenv("RRH_EVENTS_ENDPOINT", NOWHERE)
    monkeypatch.setenv("RRH_COMMANDS_ENDPOINT", NOWHERE)
    with rrh.Shim(exit_flush_timeout_ms=0) as from_environment:
        assert from_environment.node_id == "from-environment"
    with rrh.Shim(node_id="from-argument", exit_flush_timeout_ms=0) as overridden:
        assert overridden.node_id == "from-argument"


def test_curve_settings_are_checked_when_the_node_starts(tmp_path):
    assert rrh.ShimConfig().security == "none"
    with pytest.raises(ValueError, match="security"):
        make_node(security="tls")
    with pytest.raises(ValueError, match="curve_secret_key_file: .*absent.key_secret.*no such file"):
        make_node(security="curve", curve_secret_key_file=tmp_path / "absent.key_secret",
                  curve_server_key_file=tmp_path / "absent.key")

    # Keys as `rrh-ctl keygen` writes them: a node starts with them.
    zmq = pytest.importorskip("zmq")
    for name in ("node", "broker"):
        public, secret = zmq.curve_keypair()
        (tmp_path / f"{name}.key").write_bytes(public + b"\n")
        secret_file = tmp_path / f"{name}.key_secret"
        secret_file.write_bytes(secret + b"\n")
        secret_file.chmod(0o600)
    with make_node(security="curve", curve_secret_key_file=tmp_path / "node.key_secret",
                   curve_server_key_file=tmp_path / "broker.key", exit_flush_timeout_ms=0) as node:
        assert node.node_id == "pytest-node"


def test_invalid_configuration_and_input_raise():
    with pytest.raises(ValueError, match="not a valid id"):
        make_node("bad id")
    with pytest.raises(ValueError, match="outbox_overflow"):
        make_node(outbox_overflow="sometimes")
    with make_node(exit_flush_timeout_ms=0) as node:
        with pytest.raises(rrh.RrhError) as invalid:
            node.register_agent("no spaces allowed")
        assert invalid.value.code == "invalid_id"
        node.register_agent("a1")
        with pytest.raises(rrh.RrhError) as too_large:
            node.record_failed_task("a1", "t", RuntimeError("x"), checkpoint=b"\0" * (rrh.CHECKPOINT_BYTES_MAX + 1))
        assert too_large.value.code == "too_large"
        with pytest.raises(TypeError):
            node.set_handler("task.retry", 42)
        with pytest.raises(TypeError):
            node.start_episode("ep", resilience={"error_threshold": [1]})


def test_long_messages_are_cut_to_the_text_limit():
    with make_node(exit_flush_timeout_ms=0) as node:
        node.record_episode_error("RuntimeError", "é" * rrh.TEXT_LENGTH_MAX)  # 2 bytes each
        assert node.stats()["outbox_size"] == 1


def test_flush_without_a_processor_times_out_with_its_code():
    with make_node(exit_flush_timeout_ms=0) as node:
        node.flush(0)  # nothing to wait for
        node.register_agent("a1")
        with pytest.raises(rrh.RrhError) as failure:
            node.flush(50)
        assert failure.value.code == "timeout"
        assert "unacked" in failure.value.detail


def test_a_full_outbox_with_policy_error_refuses_at_once():
    with make_node(outbox_capacity=2, outbox_overflow="error", exit_flush_timeout_ms=0) as node:
        node.register_agent("a1")
        node.register_agent("a2")
        with pytest.raises(rrh.RrhError) as failure:
            node.register_agent("a3")
        assert failure.value.code == "outbox_full"
        assert node.stats()["outbox_rejections"] == 1


def test_episode_file_errors_name_the_problem(isolated_default, tmp_path):
    with pytest.raises(rrh.RrhError) as missing:
        rrh.on_episode_start(tmp_path / "missing.yaml")
    assert missing.value.code == "config"
    no_id = tmp_path / "no-id.yaml"
    no_id.write_text("name: nameless\n")
    with pytest.raises(rrh.RrhError, match="'id' is missing"):
        rrh.on_episode_start(no_id)


def test_episode_functions_check_the_episode_file(isolated_default, tmp_path):
    episode = tmp_path / "episode.yaml"
    episode.write_text("id: ep-api\n")
    rrh.on_episode_start(episode)
    with pytest.raises(ValueError, match="not the running episode"):
        rrh.on_episode_end(tmp_path / "other.yaml")
    rrh.on_episode_error(episode, RuntimeError("boom"))
    rrh.on_episode_end(episode)
    with pytest.raises(rrh.RrhError) as no_episode:
        rrh.on_episode_end(episode)
    assert no_episode.value.code == "invalid_argument"


def test_task_functions_need_a_registered_agent(isolated_default):
    with pytest.raises(ValueError, match="no agent is registered"):
        rrh.record_failed_task("t", RuntimeError("x"))
    rrh.register_agent("a1")
    rrh.register_agent("a2")
    assert rrh.default_shim().last_registered_agent == "a2"
    rrh.unregister_agent("a2")
    assert rrh.default_shim().agents == ["a1"]
    queued = rrh.default_shim().stats()["outbox_size"]
    rrh.record_task_started("t")  # for the last registered agent: a critical event, kept until acked
    assert rrh.default_shim().stats()["outbox_size"] == queued + 1
    rrh.beat()


def test_commands_read_as_attributes_and_items():
    command = rrh.Command(7, "task.retry", "n", 1, "ep", {"task": "t", "checkpoint": b"\xff"})
    assert (command.task, command["checkpoint"]) == ("t", b"\xff")
    with pytest.raises(AttributeError, match="no field 'agent'"):
        command.agent


@pytest.mark.parametrize("script", [
    # The default shim, with unacked events: flushed briefly and closed at exit.
    "import rrh\nrrh.EXIT_FLUSH_TIMEOUT_MS = 100\nrrh.register_agent('a')\n",
    # A node left open with a handler: closed by the binding's atexit hook.
    f"import rrh\nnode = rrh.Shim(node_id='left-open', events_endpoint='{NOWHERE}', commands_endpoint='{NOWHERE}')\n"
    "node.on_task_retry(lambda command: None)\nnode.register_agent('a')\n",
    # A handler that refers to its own node: a reference cycle through C++.
    f"import rrh\nnode = rrh.Shim(node_id='cycle', events_endpoint='{NOWHERE}', commands_endpoint='{NOWHERE}')\n"
    "node.on_task_retry(lambda command: node.beat(command.agent))\ndel node\n",
], ids=["default-shim", "open-node", "cycle"])
def test_the_interpreter_exits_cleanly_with_shims_open(isolated_default, script):
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert finished.returncode == 0, finished.stderr
    assert "Traceback" not in finished.stderr and "terminate" not in finished.stderr
