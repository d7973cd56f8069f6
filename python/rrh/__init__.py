"""rrh: resilience and recovery hooks for agent fleets, from Python.

This package keeps the API of the in-process "resilience & recovery hooks" module
(``on_episode_start``, ``on_episode_end``, ``on_episode_error``, ``register_agent``,
``unregister_agent``, ``record_failed_task``, ``RESILIENCE_CONFIG``) over the rrh C++
agent shim: every call publishes an event on the rrh bus, and the rrh processor decides
retries and recoveries and sends commands back.

Two ways to use it:

* **Module-level functions** act on one process-wide *default shim*, created on first
  use from the environment (``RRH_NODE_ID``, ``RRH_EVENTS_ENDPOINT``,
  ``RRH_COMMANDS_ENDPOINT``, ``RRH_HEARTBEAT_MS``, ``RRH_CONFIG``, ...; see the README's
  "Shim configuration" table). At interpreter exit it is flushed for up to
  ``EXIT_FLUSH_TIMEOUT_MS`` and closed (see :func:`shutdown`).
* **Objects**: :class:`Shim` is one node with its own identity and sockets, so one
  process may host several nodes. ``with Shim(...) as node:`` flushes and closes it.

Commands from the processor (``task.retry``, ``agent.recover``, ``agent.probe``,
``task.rollback``, ``episode.shutdown``) reach Python handlers installed with
:meth:`Shim.on_task_retry` and friends (or :func:`on_task_retry` for the default shim).
A handler receives a :class:`Command` and answers ``None``/``True`` (accept), ``False``
or a ``str`` (refuse, with that reason), or raises (refuse, with the exception's text).
Handlers run on the shim's dispatcher thread, one at a time; return promptly.

Errors are raised as :class:`RrhError` (a ``RuntimeError``) whose ``code`` is the stable
rrh error name: ``invalid_id``, ``too_large``, ``outbox_full``, ``timeout``, ``closed``,
``invalid_argument``, ``config``, ...
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from ._rrh import CHECKPOINT_BYTES_MAX, ID_LENGTH_MAX, PROTOCOL_VERSION, TEXT_LENGTH_MAX
from ._rrh import Error as RrhError
from ._rrh import ShimConfig, _Shim, is_valid_id

__all__ = [
    "RESILIENCE_CONFIG",
    "CHECKPOINT_BYTES_MAX",
    "COMMAND_KINDS",
    "Command",
    "CommandHandler",
    "EXIT_FLUSH_TIMEOUT_MS",
    "ID_LENGTH_MAX",
    "PROTOCOL_VERSION",
    "RrhError",
    "Shim",
    "ShimConfig",
    "TEXT_LENGTH_MAX",
    "beat",
    "default_shim",
    "error_type_name",
    "flush",
    "is_valid_id",
    "on_agent_probe",
    "on_agent_recover",
    "on_episode_end",
    "on_episode_error",
    "on_episode_shutdown",
    "on_episode_start",
    "on_task_retry",
    "on_task_rollback",
    "record_failed_task",
    "record_task_started",
    "record_task_succeeded",
    "register_agent",
    "set_handler",
    "shutdown",
    "unregister_agent",
]

__version__ = "0.1.0"

_log = logging.getLogger("rrh")

#: The seed's resilience keys with the seed's defaults, which are also the processor's.
#: This dict is a reference, not the configuration in force: the rrh processor holds the
#: real values (its ``resilience:`` configuration section), and an episode overrides
#: them for itself with a ``resilience:`` block in its episode file (sent in
#: ``episode.started`` by :func:`on_episode_start`). Changing this dict changes nothing
#: on the bus.
RESILIENCE_CONFIG: Dict[str, int] = {
    "max_recovery_attempts": 3,  # recoveries of one agent before it is quarantined
    "recovery_cooldown": 60,  # seconds between two recoveries of one agent
    "error_threshold": 5,  # episode errors that shut the episode down
    "agent_health_check_interval": 300,  # seconds between two active probes of an agent
    "task_retry_delay": 30,  # base delay in seconds before a failed task is retried
}

#: How long the default shim waits for the processor's acks at interpreter exit.
EXIT_FLUSH_TIMEOUT_MS = 2000

#: The command kinds a node can be sent (besides the internal ``ack``).
COMMAND_KINDS = ("task.retry", "agent.recover", "agent.probe", "task.rollback", "episode.shutdown")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Command:
    """A command from the processor, as a handler receives it.

    The envelope is in ``id``, ``kind``, ``node`` (this node), ``ts_ms`` and ``episode``;
    the kind's own fields (schemas/PROTOCOL.md, section 7) are in ``data`` and can also
    be read as attributes or items: ``command.task``, ``command["checkpoint"]``.
    ``task.retry`` carries ``task``, ``agent``, ``attempt``, ``from_agent`` and
    ``checkpoint`` (bytes); ``agent.recover`` ``agent`` and ``attempt``; ``agent.probe``
    ``agent``; ``task.rollback`` ``task``, ``agent`` and ``reason``;
    ``episode.shutdown`` ``reason``.
    """

    id: int
    kind: str
    node: str
    ts_ms: int
    episode: str
    data: Dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not fields.
        data = object.__getattribute__(self, "data")
        if name in data:
            return data[name]
        raise AttributeError(f"{self.kind} command has no field {name!r}")

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    @classmethod
    def _from_wire(cls, raw: Mapping[str, Any]) -> "Command":
        return cls(raw["id"], raw["kind"], raw["node"], raw["ts_ms"], raw["episode"], dict(raw["data"]))


#: A command handler: returns None/True to accept, False or a reason (str) to refuse,
#: or raises to refuse with the exception's text.
CommandHandler = Callable[[Command], Union[None, bool, str]]


def error_type_name(error: BaseException) -> str:
    """The ``error_type`` rrh sends for an exception.

    The class name for built-in exceptions (``RuntimeError``), else ``module.QualName``
    (``requests.exceptions.ConnectTimeout``); the processor's ``non_retryable_errors``
    list is matched against this text.
    """
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _clip_text(text: str) -> str:
    """``text`` cut to the protocol's text limit in UTF-8 bytes, on a character boundary."""
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) <= TEXT_LENGTH_MAX:
        return text
    return encoded[:TEXT_LENGTH_MAX].decode("utf-8", "ignore")


def _adapt_handler(kind: str, handler: CommandHandler) -> Callable[[Mapping[str, Any]], Any]:
    """Wraps a user handler: builds the Command and logs an exception before the binding
    turns it into a refusal (so its traceback is not lost)."""

    def call(raw: Mapping[str, Any]) -> Any:
        try:
            return handler(Command._from_wire(raw))
        except Exception:
            _log.warning("rrh: the %s handler raised; the command is refused", kind, exc_info=True)
            raise

    call.__wrapped__ = handler  # type: ignore[attr-defined]
    return call


def _fspath_or_none(path: Optional[PathLike]) -> Optional[str]:
    """The path as a string, or None when none was given."""
    return os.fspath(path) if path is not None else None


class Shim:
    """One node on the rrh bus: the C++ ``rrh::shim`` with Python types.

    A node has one id and incarnation and one set of sockets; it hosts any number of
    agents. Construction connects and starts heartbeating; every method is thread-safe.
    Methods that publish an event raise :class:`RrhError` when the input is invalid or
    the outbox refuses the event (nothing is sent then); they release the GIL while they
    wait.

    Configuration: ``ShimConfig.from_environment()`` (the ``RRH_*`` variables, and the
    YAML file ``RRH_CONFIG`` names) unless ``use_environment`` is False, or the file
    ``config_file`` when given (then overridden by the environment, if used); then every
    keyword argument that is not None. ``node_id`` defaults to ``<hostname>-<pid>``.

    Close it with :meth:`close` or a ``with`` block; a shim still open at interpreter
    exit is closed by an atexit hook.
    """

    def __init__(
        self,
        node_id: Optional[str] = None,
        events_endpoint: Optional[str] = None,
        commands_endpoint: Optional[str] = None,
        heartbeat_interval_ms: Optional[int] = None,
        *,
        outbox_capacity: Optional[int] = None,
        outbox_overflow: Optional[str] = None,
        outbox_block_timeout_ms: Optional[int] = None,
        retransmit_initial_ms: Optional[int] = None,
        retransmit_max_ms: Optional[int] = None,
        retransmit_batch_max: Optional[int] = None,
        command_dedup_window: Optional[int] = None,
        command_queue_max: Optional[int] = None,
        supervisor: Optional[str] = None,
        security: Optional[str] = None,
        curve_secret_key_file: Optional[PathLike] = None,
        curve_server_key_file: Optional[PathLike] = None,
        config_file: Optional[PathLike] = None,
        use_environment: bool = True,
        exit_flush_timeout_ms: int = EXIT_FLUSH_TIMEOUT_MS,
    ) -> None:
        config = ShimConfig.from_yaml_file(os.fspath(config_file)) if config_file is not None else ShimConfig()
        if use_environment:
            config = ShimConfig.from_environment(config)
        overrides = {
            "node_id": node_id,
            "events_endpoint": events_endpoint,
            "commands_endpoint": commands_endpoint,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "outbox_capacity": outbox_capacity,
            "outbox_overflow": outbox_overflow,
            "outbox_block_timeout_ms": outbox_block_timeout_ms,
            "retransmit_initial_ms": retransmit_initial_ms,
            "retransmit_max_ms": retransmit_max_ms,
            "retransmit_batch_max": retransmit_batch_max,
            "command_dedup_window": command_dedup_window,
            "command_queue_max": command_queue_max,
            "supervisor": supervisor,
            "security": security,
            "curve_secret_key_file": _fspath_or_none(curve_secret_key_file),
            "curve_server_key_file": _fspath_or_none(curve_server_key_file),
        }
        for name, value in overrides.items():
            if value is not None:
                setattr(config, name, value)
        self._exit_flush_timeout_ms = exit_flush_timeout_ms
        self._agents: List[str] = []
        self._agents_lock = threading.Lock()
        self._native = _Shim(config)

    # ---- identity and lifetime -------------------------------------------------------

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self._native.node_id

    @property
    def incarnation(self) -> int:
        """This run's incarnation: a random non-zero number, new at every start."""
        return self._native.incarnation

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran; every other method then raises RrhError(closed)."""
        return self._native.closed

    @property
    def agents(self) -> List[str]:
        """The agents registered through this object and not unregistered, oldest first."""
        with self._agents_lock:
            return list(self._agents)

    @property
    def last_registered_agent(self) -> Optional[str]:
        """The most recently registered agent still registered, or None."""
        with self._agents_lock:
            return self._agents[-1] if self._agents else None

    def close(self) -> None:
        """Stops the node's threads without waiting for acks (call :meth:`flush` first).

        Idempotent. Must not be called from this node's own command handler.
        """
        self._native.close()

    def __enter__(self) -> "Shim":
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Flushes for up to ``exit_flush_timeout_ms`` and closes. A flush that times out
        is logged, not raised: the block's own outcome (or exception) wins."""
        try:
            if not self.closed:
                self.flush(self._exit_flush_timeout_ms)
        except RrhError as failure:
            _log.warning("rrh: node %s closed with unacked events: %s", self._native.node_id, failure)
        finally:
            self.close()

    def __repr__(self) -> str:
        if getattr(self, "_native", None) is None:
            return "<rrh.Shim not started>"  # its construction failed
        if self.closed:
            return "<rrh.Shim closed>"
        return f"<rrh.Shim node_id={self.node_id!r} incarnation={self.incarnation}>"

    # ---- episodes --------------------------------------------------------------------

    def start_episode(
        self,
        episode_id: str,
        name: str = "",
        resilience: Optional[Mapping[str, Union[bool, int, float, str]]] = None,
        agents: Sequence[str] = (),
    ) -> None:
        """Starts an episode; following events carry its id until :meth:`end_episode`.

        ``resilience`` overrides configuration keys (RESILIENCE_CONFIG's and rrh's own)
        for this episode only; the processor applies them.
        """
        self._native.start_episode(episode_id, name, dict(resilience or {}), list(agents))

    def start_episode_from_file(self, path: PathLike) -> None:
        """Starts the episode an episode YAML file describes: ``id`` (required),
        ``name``, ``agents`` (list of ids) and a ``resilience:`` map. An unreadable or
        invalid file raises RrhError(config) naming the file and key."""
        self._native.start_episode_from_file(os.fspath(path))

    def end_episode(self, outcome: str = "completed") -> None:
        """Ends the current episode with ``outcome`` ("completed" or "aborted")."""
        self._native.end_episode(outcome)

    def record_episode_error(self, error_type: str, message: str, agent: str = "") -> None:
        """Reports an episode-level error; ``agent`` names the agent in error, if any."""
        self._native.record_episode_error(error_type, _clip_text(message), agent)

    # ---- agents and tasks ------------------------------------------------------------

    def register_agent(
        self,
        agent_id: str,
        *,
        pool: str = "",
        capabilities: Sequence[str] = (),
        supervisor: str = "",
        watchdog_timeout_ms: int = 0,
    ) -> None:
        """Registers an agent hosted by this node.

        ``pool``: agents of one pool may take each other's retries. ``supervisor``: the
        node that restarts this agent (default: the configuration's). A
        ``watchdog_timeout_ms`` above 0 makes the agent stale when :meth:`beat` lapses
        that long.
        """
        self._native.register_agent(agent_id, pool, list(capabilities), supervisor, watchdog_timeout_ms)
        with self._agents_lock:
            if agent_id in self._agents:
                self._agents.remove(agent_id)
            self._agents.append(agent_id)

    def unregister_agent(self, agent_id: str, reason: str = "") -> None:
        """Unregisters an agent of this node."""
        self._native.unregister_agent(agent_id, _clip_text(reason))
        with self._agents_lock:
            if agent_id in self._agents:
                self._agents.remove(agent_id)

    def record_task_started(self, agent_id: str, task_id: str, attempt: int = 1) -> None:
        """A task began on ``agent_id``; ``attempt`` is 1 for the first run."""
        self._native.record_task_started(agent_id, task_id, attempt)

    def record_failed_task(
        self,
        agent_id: str,
        task_id: str,
        failure: Optional[BaseException] = None,
        *,
        error_type: Optional[str] = None,
        message: Optional[str] = None,
        retryable: bool = True,
        attempt: int = 1,
        checkpoint: Optional[Union[bytes, bytearray, memoryview]] = None,
        pool: str = "",
    ) -> None:
        """A task failed.

        The failure's ``error_type`` is :func:`error_type_name` of ``failure`` and its
        message ``str(failure)``, unless given explicitly. ``retryable=False`` asks the
        processor to abandon the task and roll it back. ``checkpoint`` (at most
        CHECKPOINT_BYTES_MAX bytes) travels back with the ``task.retry`` command.
        ``pool`` defaults to the agent's pool.
        """
        if error_type is None:
            error_type = error_type_name(failure) if failure is not None else ""
        if message is None:
            message = str(failure) if failure is not None else ""
        self._native.record_failed_task(
            agent_id,
            task_id,
            _clip_text(error_type),
            _clip_text(message),
            retryable,
            attempt,
            bytes(checkpoint or b""),
            pool,
        )

    def record_task_succeeded(self, agent_id: str, task_id: str, attempt: int = 1) -> None:
        """A task finished well."""
        self._native.record_task_succeeded(agent_id, task_id, attempt)

    def beat(self, agent_id: str) -> None:
        """The agent's own watchdog: call it from the agent's work loop."""
        self._native.beat(agent_id)

    # ---- commands --------------------------------------------------------------------

    def set_handler(self, kind: str, handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
        """Installs the handler of a command kind (one of COMMAND_KINDS); None removes it.

        A kind without a handler is refused, except ``agent.probe``, which is accepted by
        default. Returns ``handler``, so the ``on_*`` methods work as decorators.
        """
        if handler is not None and not callable(handler):
            raise TypeError(f"a handler must be callable or None, not {type(handler).__name__}")
        self._native.set_handler(kind, None if handler is None else _adapt_handler(kind, handler))
        return handler

    def on_task_retry(self, handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
        """Handler of ``task.retry``: run ``command.task`` again as attempt
        ``command.attempt`` on ``command.agent``, from ``command.checkpoint`` (bytes)."""
        return self.set_handler("task.retry", handler)

    def on_agent_recover(self, handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
        """Handler of ``agent.recover``: restart the dead agent ``command.agent``."""
        return self.set_handler("agent.recover", handler)

    def on_agent_probe(self, handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
        """Handler of ``agent.probe`` (health check of ``command.agent``); without one,
        probes are accepted."""
        return self.set_handler("agent.probe", handler)

    def on_task_rollback(self, handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
        """Handler of ``task.rollback``: undo what the abandoned ``command.task`` did."""
        return self.set_handler("task.rollback", handler)

    def on_episode_shutdown(self, handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
        """Handler of ``episode.shutdown``: stop work on ``command.episode``."""
        return self.set_handler("episode.shutdown", handler)

    # ---- delivery --------------------------------------------------------------------

    def flush(self, timeout_ms: int = 5000) -> None:
        """Waits until the processor acked every event, or raises RrhError(timeout)."""
        self._native.flush(int(timeout_ms))

    def stats(self) -> Dict[str, int]:
        """The node's counters: events_sent, events_acked, outbox_size, commands_received,
        commands_refused, ..."""
        return self._native.stats()


# ---- the default shim and the seed's functions ---------------------------------------

_default_lock = threading.Lock()
_default: Optional[Shim] = None
_episode_path: Optional[Path] = None


def default_shim() -> Shim:
    """The process-wide shim the module-level functions use, created on first use from
    the environment (``Shim()``)."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Shim()
        return _default


def shutdown(flush_timeout_ms: Optional[int] = None) -> None:
    """Flushes the default shim for up to ``flush_timeout_ms`` (default:
    ``EXIT_FLUSH_TIMEOUT_MS``, read at the call) and closes it.

    Registered with atexit, so the default shim's threads stop before the interpreter
    finalizes; calling it earlier is fine. Module-level functions called afterwards start
    a new default shim (with a new incarnation).
    """
    global _default, _episode_path
    if flush_timeout_ms is None:
        flush_timeout_ms = EXIT_FLUSH_TIMEOUT_MS
    with _default_lock:
        node, _default = _default, None
        _episode_path = None
    if node is None or node.closed:
        return
    try:
        if flush_timeout_ms > 0:
            node.flush(flush_timeout_ms)
    except RrhError as failure:
        _log.warning("rrh: default shim closed with unacked events: %s", failure)
    finally:
        node.close()


atexit.register(shutdown)


def _same_file(left: Path, right: Path) -> bool:
    return left == right or left.resolve() == right.resolve()


def _check_episode_path(episode_path: PathLike) -> None:
    with _default_lock:
        started = _episode_path
    if started is not None and not _same_file(started, Path(episode_path)):
        raise ValueError(f"episode file {os.fspath(episode_path)!r} is not the running episode's ({str(started)!r})")


def _agent_or_default(agent_id: Optional[str]) -> str:
    if agent_id is not None:
        return agent_id
    agent = default_shim().last_registered_agent
    if agent is None:
        raise ValueError("no agent is registered on the default shim; pass agent_id")
    return agent


def on_episode_start(episode_path: PathLike) -> None:
    """Starts the episode described by the YAML file ``episode_path``.

    The file holds ``id`` (required), ``name``, ``agents`` (list of ids) and a
    ``resilience:`` map of RESILIENCE_CONFIG's keys (and rrh's own), which the processor
    applies to this episode only. Following events carry the file's episode id until
    :func:`on_episode_end`. Raises RrhError(config) for an unreadable or invalid file.
    """
    global _episode_path
    node = default_shim()
    node.start_episode_from_file(episode_path)
    with _default_lock:
        _episode_path = Path(episode_path)


def on_episode_end(episode_path: PathLike, outcome: str = "completed") -> None:
    """Ends the running episode (the one ``episode_path`` started) with ``outcome``.

    Raises ValueError when ``episode_path`` is another file than the one started, and
    RrhError(invalid_argument) when no episode is running. Does not wait for the
    processor's acks: see :func:`flush`.
    """
    global _episode_path
    _check_episode_path(episode_path)
    default_shim().end_episode(outcome)
    with _default_lock:
        _episode_path = None


def on_episode_error(episode_path: PathLike, error: BaseException, *, agent_id: Optional[str] = None) -> None:
    """Reports an episode-level error: ``error_type_name(error)`` and ``str(error)``.

    ``agent_id`` names the agent in error, if any (by default none). The processor
    counts errors toward ``error_threshold`` and shuts the episode down past it.
    """
    _check_episode_path(episode_path)
    default_shim().record_episode_error(error_type_name(error), str(error), agent_id or "")


def register_agent(
    agent_id: str,
    *,
    pool: str = "",
    capabilities: Sequence[str] = (),
    supervisor: str = "",
    watchdog_timeout_ms: int = 0,
) -> None:
    """Registers an agent on the default shim (see :meth:`Shim.register_agent`). It
    becomes the default ``agent_id`` of the task functions."""
    default_shim().register_agent(
        agent_id,
        pool=pool,
        capabilities=capabilities,
        supervisor=supervisor,
        watchdog_timeout_ms=watchdog_timeout_ms,
    )


def unregister_agent(agent_id: str, reason: str = "") -> None:
    """Unregisters an agent of the default shim."""
    default_shim().unregister_agent(agent_id, reason)


def record_failed_task(
    task_id: str,
    error: BaseException,
    *,
    agent_id: Optional[str] = None,
    retryable: bool = True,
    attempt: int = 1,
    checkpoint: Optional[Union[bytes, bytearray, memoryview]] = None,
) -> None:
    """Records that ``task_id`` failed with ``error`` (the seed's record_failed_task).

    Sends ``task.failed`` with ``error_type_name(error)`` and ``str(error)``.
    ``agent_id`` defaults to the most recently registered agent of the default shim that
    is still registered (ValueError when there is none). ``retryable=False`` asks for an
    abandon and rollback instead of a retry; ``checkpoint`` comes back in ``task.retry``.
    """
    default_shim().record_failed_task(
        _agent_or_default(agent_id),
        task_id,
        error,
        retryable=retryable,
        attempt=attempt,
        checkpoint=checkpoint,
    )


def record_task_started(task_id: str, *, agent_id: Optional[str] = None, attempt: int = 1) -> None:
    """Records that ``task_id`` began (agent_id: as in :func:`record_failed_task`)."""
    default_shim().record_task_started(_agent_or_default(agent_id), task_id, attempt)


def record_task_succeeded(task_id: str, *, agent_id: Optional[str] = None, attempt: int = 1) -> None:
    """Records that ``task_id`` succeeded (agent_id: as in :func:`record_failed_task`)."""
    default_shim().record_task_succeeded(_agent_or_default(agent_id), task_id, attempt)


def beat(agent_id: Optional[str] = None) -> None:
    """The agent's own watchdog beat (agent_id: as in :func:`record_failed_task`)."""
    default_shim().beat(_agent_or_default(agent_id))


def flush(timeout_ms: int = 5000) -> None:
    """Waits until the processor acked every event of the default shim, or raises
    RrhError(timeout)."""
    default_shim().flush(timeout_ms)


def set_handler(kind: str, handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
    """Installs a command handler on the default shim (see :meth:`Shim.set_handler`)."""
    return default_shim().set_handler(kind, handler)


def on_task_retry(handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
    """``task.retry`` handler of the default shim; usable as a decorator."""
    return default_shim().on_task_retry(handler)


def on_agent_recover(handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
    """``agent.recover`` handler of the default shim; usable as a decorator."""
    return default_shim().on_agent_recover(handler)


def on_agent_probe(handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
    """``agent.probe`` handler of the default shim; usable as a decorator."""
    return default_shim().on_agent_probe(handler)


def on_task_rollback(handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
    """``task.rollback`` handler of the default shim; usable as a decorator."""
    return default_shim().on_task_rollback(handler)


def on_episode_shutdown(handler: Optional[CommandHandler]) -> Optional[CommandHandler]:
    """``episode.shutdown`` handler of the default shim; usable as a decorator."""
    return default_shim().on_episode_shutdown(handler)
