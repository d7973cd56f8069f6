// rrh-processor: subscribes to the bus, runs the resilience engine, persists its state,
// and sends recovery and retry commands.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "processor_config.hpp"
#include "rrh/protocol.hpp"
#include "rrh/log.hpp"
#include "rrh/signals.hpp"
#include "shell.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rrh-processor: the resilience processor. Subscribes to the broker's event stream, "
               "detects dead and hung agents, schedules task retries with backoff, shuts down "
               "episodes past their error threshold, and sends recovery and retry commands. State "
               "survives restarts in a SQLite file."};
  std::string config_path;
  std::string events;
  std::string publish;
  std::string commands;
  std::string control;
  std::string state;
  std::string node_id;
  std::string log_level;
  std::string security;
  std::string secret_key_file;
  std::string server_key_file;
  std::string allowed_keys_dir;
  bool print_config = false;
  app.add_option("--config", config_path, "YAML configuration file (see deploy/rrh.yaml)");
  app.add_option("--events", events, "broker events-out to subscribe to (default tcp://127.0.0.1:7702)");
  app.add_option("--publish", publish, "broker events-in for derived events (default tcp://127.0.0.1:7701)");
  app.add_option("--commands", commands, "broker commands-in for commands (default tcp://127.0.0.1:7703)");
  app.add_option("--control", control, "endpoint to bind for rrh-ctl (default tcp://127.0.0.1:7705)");
  app.add_option("--state", state, "state store: a SQLite file, or :memory: (default rrh-state.db)");
  app.add_option("--node-id", node_id, "the processor's id on the bus (default processor)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off");
  app.add_option("--security", security,
                 "none, or curve: every socket authenticated and encrypted (default none)");
  app.add_option("--curve-secret-key-file", secret_key_file,
                 "curve: this processor's secret key; its public key is the control socket's");
  app.add_option("--curve-server-key-file", server_key_file, "curve: the broker's public key");
  app.add_option("--curve-allowed-keys-dir", allowed_keys_dir,
                 "curve: directory of *.key public keys allowed to use the control socket");
  app.add_flag("--print-config", print_config, "print the effective configuration as YAML and exit");
  CLI11_PARSE(app, argc, argv);

  rrh::processor::processor_settings settings;
  if (!config_path.empty()) {
    auto loaded = rrh::processor::load_processor_settings(config_path);
    if (!loaded) {
      std::fprintf(stderr, "rrh-processor: %s\n", loaded.error().detail.c_str());
      return 2;
    }
    settings = loaded.value();
  }
  if (!events.empty()) settings.events_endpoint = events;
  if (!publish.empty()) settings.publish_endpoint = publish;
  if (!commands.empty()) settings.commands_endpoint = commands;
  if (!control.empty()) settings.control_endpoint = control;
  if (!state.empty()) settings.state_path = state;
  if (!node_id.empty()) settings.node_id = node_id;
  if (!log_level.empty()) settings.log_level = log_level;
  if (!security.empty()) settings.security = security;
  if (!secret_key_file.empty()) settings.curve_secret_key_file = secret_key_file;
  if (!server_key_file.empty()) settings.curve_server_key_file = server_key_file;
  if (!allowed_keys_dir.empty()) settings.curve_allowed_keys_dir = allowed_keys_dir;
  if (!rrh::is_valid_id(settings.node_id)) {
    std::fprintf(stderr, "rrh-processor: node_id '%s' is not a valid id (1-128 of A-Za-z0-9._:@-)\n",
                 settings.node_id.c_str());
    return 2;
  }
  if (auto valid = settings.resilience.validate(); !valid) {
    std::fprintf(stderr, "rrh-processor: %s\n", valid.error().detail.c_str());
    return 2;
  }
  if (print_config) {
    std::fputs(rrh::processor::render_processor_settings(settings).c_str(), stdout);
    return 0;
  }
  auto security_loaded = rrh::processor::load_processor_security(settings);
  if (!security_loaded) {
    std::fprintf(stderr, "rrh-processor: %s\n", security_loaded.error().detail.c_str());
    return 2;
  }
  if (auto logging = rrh::setup_logging("rrh-processor", settings.log_level); !logging) {
    std::fprintf(stderr, "rrh-processor: %s\n", logging.error().detail.c_str());
    return 2;
  }
  rrh::install_stop_handlers();
  return rrh::processor::run_processor(settings, security_loaded.value());
}
