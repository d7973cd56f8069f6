// rrh-broker: the command line around `rrh::broker::broker`. Parses flags and the config
// file, binds, prints the ready line, runs the loop until SIGINT/SIGTERM, logs the stats.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <optional>

#include "broker.hpp"
#include "config.hpp"
#include "rrh/log.hpp"
#include "rrh/signals.hpp"

namespace {

/// Exit code for a command line or configuration the broker cannot use (bad flag, file,
/// key, level, endpoint).
constexpr int exit_config_error = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rrh-broker: the rrh bus. Forwards events from agents (events-in, XSUB) to\n"
      "subscribers (events-out, XPUB) and relays commands from the processor\n"
      "(commands-in, PULL) to agent nodes (commands-out, ROUTER). Endpoints may use\n"
      "port '*' (tcp://127.0.0.1:*); the chosen ports are printed on the ready line:\n"
      "  rrh-broker ready events-in=EP events-out=EP commands-in=EP commands-out=EP\n"
      "With --security curve every connection is encrypted and authenticated: only public\n"
      "keys in --curve-allowed-keys-dir may connect (keys: rrh-ctl keygen).\n"
      "Exit codes: 0 after SIGINT/SIGTERM; 2 on a bad flag, config file, key or endpoint."};
  rrh::broker::config settings;
  std::optional<std::string> events_in, events_out, commands_in, commands_out, log_level;
  std::optional<std::string> security, secret_key_file, allowed_keys_dir, processor_key_file;
  std::string config_path;
  app.add_option("--events-in", events_in, "XSUB endpoint agents publish to")
      ->default_str(settings.events_in);
  app.add_option("--events-out", events_out, "XPUB endpoint subscribers connect to")
      ->default_str(settings.events_out);
  app.add_option("--commands-in", commands_in, "PULL endpoint the processor pushes commands to")
      ->default_str(settings.commands_in);
  app.add_option("--commands-out", commands_out, "ROUTER endpoint agent nodes' DEALERs connect to")
      ->default_str(settings.commands_out);
  app.add_option("--config", config_path,
                 "YAML file with events_in, events_out, commands_in, commands_out, log_level, "
                 "security, curve_secret_key_file, curve_allowed_keys_dir, "
                 "curve_processor_key_file; flags override it")
      ->check(CLI::ExistingFile);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->default_str(settings.log_level);
  app.add_option("--security", security,
                 "none, or curve: every socket a CURVE server, peers authenticated against "
                 "--curve-allowed-keys-dir")
      ->default_str(settings.security);
  app.add_option("--curve-secret-key-file", secret_key_file,
                 "the broker's secret key (rrh-ctl keygen writes NAME.key_secret)");
  app.add_option("--curve-allowed-keys-dir", allowed_keys_dir,
                 "directory of *.key public keys allowed to connect; re-read when an unknown "
                 "key connects");
  app.add_option("--curve-processor-key-file", processor_key_file,
                 "the processor's public key: only it may push commands (recommended)");
  app.set_version_flag("--version", std::string("rrh-broker ") + RRH_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& failure) {
    // --help and --version exit 0; every usage error exits with one documented code.
    return app.exit(failure) == 0 ? 0 : exit_config_error;
  }

  if (!config_path.empty()) {
    auto loaded = rrh::broker::load_config_file(config_path, settings);
    if (!loaded) {
      std::fprintf(stderr, "rrh-broker: %s\n", loaded.error().detail.c_str());
      return exit_config_error;
    }
    settings = std::move(loaded).value();
  }
  if (events_in) settings.events_in = *events_in;
  if (events_out) settings.events_out = *events_out;
  if (commands_in) settings.commands_in = *commands_in;
  if (commands_out) settings.commands_out = *commands_out;
  if (log_level) settings.log_level = *log_level;
  if (security) settings.security = *security;
  if (secret_key_file) settings.curve_secret_key_file = *secret_key_file;
  if (allowed_keys_dir) settings.curve_allowed_keys_dir = *allowed_keys_dir;
  if (processor_key_file) settings.curve_processor_key_file = *processor_key_file;
  auto security_loaded = rrh::broker::load_security(settings);
  if (!security_loaded) {
    std::fprintf(stderr, "rrh-broker: %s\n", security_loaded.error().detail.c_str());
    return exit_config_error;
  }

  if (auto logging = rrh::setup_logging("rrh-broker", settings.log_level); !logging) {
    std::fprintf(stderr, "rrh-broker: %s\n", logging.error().detail.c_str());
    return exit_config_error;
  }
  rrh::install_stop_handlers();

  zmq::context_t context;
  rrh::broker::stats final_stats;
  rrh::zap_stats final_auth;
  try {
    rrh::broker::broker bus(context, settings, security_loaded.value());
    const auto& bound = bus.endpoints();
    std::printf("rrh-broker ready events-in=%s events-out=%s commands-in=%s commands-out=%s\n",
                bound.events_in.c_str(), bound.events_out.c_str(), bound.commands_in.c_str(),
                bound.commands_out.c_str());
    std::fflush(stdout);
    spdlog::info("forwarding events {} -> {}, relaying commands {} -> {}", bound.events_in,
                 bound.events_out, bound.commands_in, bound.commands_out);
    bus.run(rrh::stop_fd());
    final_stats = bus.counters();
    final_auth = bus.authentication_counters();
  } catch (const std::exception& failure) {
    spdlog::error("{}", failure.what());
    return exit_config_error;
  }
  spdlog::info(
      "stopped: events forwarded={} subscriptions forwarded={} commands relayed={} "
      "undeliverable={} undeliverable acks={} malformed={} ignored={} socket errors={} hellos={} "
      "hellos refused={} connections authenticated={} refused={}",
      final_stats.events_forwarded, final_stats.subscriptions_forwarded,
      final_stats.commands_relayed, final_stats.commands_undeliverable,
      final_stats.acks_undeliverable, final_stats.malformed, final_stats.ignored,
      final_stats.socket_errors, final_stats.hellos, final_stats.hellos_refused,
      final_auth.accepted, final_auth.refused);
  return 0;
}
