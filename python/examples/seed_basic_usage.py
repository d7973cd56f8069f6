#!/usr/bin/python3
"""The seed module's "Basic Usage" example, unchanged but for its import line.

Run it beside an episode file (episode.yaml here) with a broker listening:
    RRH_NODE_ID=seed-demo PYTHONPATH=build/python python3 python/examples/seed_basic_usage.py
(from python/examples/, or copy episode.yaml to the working directory). The RRH_*
variables choose the node id and the broker's endpoints.
"""
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
