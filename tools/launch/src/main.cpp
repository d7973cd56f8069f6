// rrh-launch: a supervisor for one agent process. The command line, the shim and the
// exit codes live here; the supervision loop is in launcher.cpp.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "child.hpp"
#include "launcher.hpp"
#include "rrh/log.hpp"
#include "rrh/shim.hpp"
#include "rrh/signals.hpp"

namespace {

/// Exit codes, as documented in --help.
constexpr int exit_ok = 0;
constexpr int exit_child_failed = 1;
constexpr int exit_usage = 2;

/// Longest wait for the processor's acks of the last events (the child's exit) on stop.
constexpr std::chrono::milliseconds final_flush_wait{2000};

struct options {
  std::string node_id;
  std::vector<std::string> agents;
  std::string launcher_id;
  std::string events_endpoint;
  std::string commands_endpoint;
  std::uint64_t grace_ms = 5000;
  std::uint64_t heartbeat_ms = 0;  // 0: the shim's (RRH_HEARTBEAT_MS or 1000)
  std::string log_level = "info";
  std::vector<std::string> command;
};

constexpr const char* description = R"(rrh-launch: supervises one agent process on the rrh bus.

It is an rrh node itself (node id --launcher-id, default "<ID>.launcher") and runs
COMMAND as its child with, in the child's environment:
  RRH_NODE_ID=ID  RRH_SUPERVISOR=<launcher id>
  RRH_EVENTS_ENDPOINT, RRH_COMMANDS_ENDPOINT  (the launcher's own endpoints)
  RRH_INCARNATION  (new for every start: the incarnation the child's node takes)
so the child's agents register with this launcher as their supervisor. Other RRH_*
variables pass through unchanged. The child's stdout and stderr are the launcher's.

Watching: the child's exit is seen at once (pidfd) and re-checked with waitpid every
heartbeat interval. Every exit (code or signal) is reported at once as the critical
event node.exited, so the processor declares the child's agents dead without waiting
for their heartbeats to lapse.

Restarting: only when the processor sends agent.recover for one of the child's agents;
the processor decides the attempts, the cooldown and the quarantine, the launcher never
restarts on its own. A running (hung) child gets SIGTERM, then SIGKILL after --grace-ms;
then a new child starts, a new incarnation of node ID that registers its agents again.
The recovers of one child's agents (one per agent) make one restart. A recover for an
agent not listed with --agent (when any is), or during the launcher's stop, is refused
with a reason. A recover that names the incarnation of an earlier child (one the
processor judged dead before the child now running replaced it: queued while the broker
was paused, or resent) is refused with reason "stale" and restarts nothing. The
launcher does not see the child's heartbeats (it is no subscriber of the bus), so a
recover naming the running child's incarnation is acted on: the processor judged that
child dead, hung or silent. After a quarantine no recover comes: the launcher stays
up, child down.

Stopping: SIGTERM or SIGINT is forwarded to the child; after --grace-ms it is
SIGKILLed; the launcher then exits 0. The child runs in a process group of its own and
signals go to the whole group, so processes the child started stop with it; when the
child ends, what is left of its group is SIGKILLed.

The child is started with PR_SET_PDEATHSIG(SIGKILL): when the launcher dies (even by
SIGKILL), its child dies with it, so a restarted launcher (a new incarnation) never
leaves an orphan beside the child it starts, and node ID never runs twice.

Exit codes: 0 stopped by a signal, 1 the first child could not be started (or the
node could not start), 2 bad usage.

Example:
  rrh-launch --node worker-1 --agent worker-1.a1 -- rrh-agent --agents 1)";

std::string default_launcher_id(const std::string& node_id) { return node_id + ".launcher"; }

int run(const options& settings) {
  if (!rrh::is_valid_id(settings.node_id)) {
    spdlog::error("--node '{}' is not a valid id (1-128 of A-Za-z0-9._:@-)", settings.node_id);
    return exit_usage;
  }
  for (const auto& agent : settings.agents) {
    if (!rrh::is_valid_id(agent)) {
      spdlog::error("--agent '{}' is not a valid id", agent);
      return exit_usage;
    }
  }
  auto loaded = rrh::shim_config::from_environment();
  if (!loaded) {
    spdlog::error("configuration: {}", loaded.error().detail);
    return exit_usage;
  }
  rrh::shim_config config = loaded.value();
  config.node_id = settings.launcher_id.empty() ? default_launcher_id(settings.node_id) : settings.launcher_id;
  config.supervisor.clear();  // the launcher hosts no agents; RRH_SUPERVISOR is for its child
  config.incarnation = 0;     // RRH_INCARNATION, when inherited, was meant for the launcher's child
  if (!settings.events_endpoint.empty()) config.events_endpoint = settings.events_endpoint;
  if (!settings.commands_endpoint.empty()) config.commands_endpoint = settings.commands_endpoint;
  if (settings.heartbeat_ms != 0) config.heartbeat_interval_ms = settings.heartbeat_ms;
  if (config.node_id == settings.node_id) {
    spdlog::error("the launcher's id must differ from the child's node id '{}'", settings.node_id);
    return exit_usage;
  }

  auto program = rrh::launch::resolve_program(settings.command.front());
  if (!program) {
    spdlog::error("command: {}", program.error().detail);
    return exit_usage;
  }
  rrh::launch::launch_options launch;
  launch.node_id = settings.node_id;
  launch.agents = settings.agents;
  launch.grace_ms = settings.grace_ms;
  launch.check_interval_ms = config.heartbeat_interval_ms;
  launch.child.program = program.value();
  launch.child.arguments = settings.command;
  launch.child.environment = rrh::launch::environment_with({{"RRH_NODE_ID", settings.node_id},
                                                            {"RRH_SUPERVISOR", config.node_id},
                                                            {"RRH_EVENTS_ENDPOINT", config.events_endpoint},
                                                            {"RRH_COMMANDS_ENDPOINT", config.commands_endpoint}});

  std::unique_ptr<rrh::shim> node;
  try {
    node = std::make_unique<rrh::shim>(config);
  } catch (const std::exception& failure) {
    spdlog::error("cannot start the launcher's node: {}", failure.what());
    return exit_child_failed;
  }
  spdlog::info("launcher {} incarnation {} up for node {}: events -> {}, commands <- {}", node->node_id(),
               node->incarnation(), settings.node_id, config.events_endpoint, config.commands_endpoint);

  int code = exit_ok;
  {
    rrh::launch::launcher supervisor(std::move(launch), *node);
    code = supervisor.run() == 0 ? exit_ok : exit_child_failed;
  }
  // The child's last exit is a critical event: give the processor a moment to ack it.
  if (auto flushed = node->flush(final_flush_wait); !flushed) {
    spdlog::warn("exiting with unacked events: {}", flushed.error().detail);
  }
  spdlog::info("launcher {} done", node->node_id());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  options settings;
  CLI::App app{description};
  app.add_option("--node", settings.node_id, "node id of the child (its RRH_NODE_ID)")->required();
  app.add_option("--agent", settings.agents,
                 "an agent the child hosts, repeatable; when given, agent.recover for any other "
                 "agent is refused")
      ->allow_extra_args(false);
  app.add_option("--launcher-id", settings.launcher_id, "the launcher's own node id (default: <ID>.launcher)");
  app.add_option("--events", settings.events_endpoint,
                 "broker events-in endpoint, for the launcher and the child (default: "
                 "RRH_EVENTS_ENDPOINT or tcp://127.0.0.1:7701)");
  app.add_option("--commands", settings.commands_endpoint,
                 "broker commands-out endpoint, for the launcher and the child (default: "
                 "RRH_COMMANDS_ENDPOINT or tcp://127.0.0.1:7704)");
  app.add_option("--grace-ms", settings.grace_ms, "SIGTERM to SIGKILL, on restart and on stop (default 5000)")
      ->check(CLI::Range(0, 3'600'000));
  app.add_option("--heartbeat-ms", settings.heartbeat_ms,
                 "the launcher's heartbeat interval, also its child check period (default: "
                 "RRH_HEARTBEAT_MS or 1000); the child keeps its own")
      ->check(CLI::Range(10, 3'600'000));
  app.add_option("--log-level", settings.log_level, "trace, debug, info, warn, error, critical, off");
  app.add_option("command", settings.command, "-- COMMAND ARGS…: the agent process to run")->required();
  CLI11_PARSE(app, argc, argv);

  if (auto logging = rrh::setup_logging("rrh-launch", settings.log_level); !logging) {
    std::fprintf(stderr, "rrh-launch: %s\n", logging.error().detail.c_str());
    return exit_usage;
  }
  rrh::install_stop_handlers();
  return run(settings);
}
