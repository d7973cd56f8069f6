// rrh-ctl: ask a running rrh-processor about its state through its control socket. Prints
// the JSON reply as received, or readable tables with --pretty.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "client.hpp"
#include "format.hpp"
#include "json_reader.hpp"

namespace {

/// Exit codes, as documented in --help.
constexpr int exit_ok = 0;
constexpr int exit_processor_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_no_answer = 3;

/// Longest wait accepted for --timeout-ms: an hour is already far past any useful answer.
constexpr std::uint64_t timeout_ms_max = 3'600'000;

constexpr std::array<std::string_view, 3> commands_with_id{"agent", "task", "episode"};
constexpr std::array<std::string_view, 7> commands_without_id{
    "status", "agents", "tasks", "episodes", "config", "help", "keygen"};

template <std::size_t count>
bool is_one_of(const std::array<std::string_view, count>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

struct options {
  std::string control{rrh::ctl::control_endpoint_default};
  bool pretty = false;
  std::uint64_t timeout_ms = 3000;
  std::string command;
  std::string id;
  std::string curve_secret_key_file;  ///< with curve_server_key_file: CURVE to the control socket
  std::string curve_server_key_file;  ///< the processor's public key
  std::string key_dir;                ///< keygen --out
  std::string key_name;               ///< keygen --name
};

/// Writes all of `text` to `stream`; false when the reader is gone (e.g. `| head`).
bool write_all(std::FILE* stream, const std::string& text) {
  return std::fwrite(text.data(), 1, text.size(), stream) == text.size() &&
         std::fflush(stream) == 0;
}

/// `rrh-ctl keygen --out DIR --name NAME`: writes NAME.key and NAME.key_secret, prints the
/// public key.
int keygen(const options& settings) {
  if (settings.key_dir.empty() || settings.key_name.empty()) {
    std::fprintf(stderr, "rrh-ctl: keygen needs --out DIR and --name NAME\n");
    return exit_usage;
  }
  auto made = rrh::generate_key_files(settings.key_dir, settings.key_name);
  if (!made) {
    std::fprintf(stderr, "rrh-ctl: keygen: %s\n", made.error().detail.c_str());
    return exit_usage;
  }
  write_all(stdout, made->public_key + "\n");
  return exit_ok;
}

int run(const options& settings) {
  const std::string request =
      settings.id.empty() ? settings.command : settings.command + " " + settings.id;
  std::optional<rrh::curve_client_keys> curve;
  if (!settings.curve_secret_key_file.empty() || !settings.curve_server_key_file.empty()) {
    auto loaded =
        rrh::load_client_keys(settings.curve_secret_key_file, settings.curve_server_key_file);
    if (!loaded) {
      std::fprintf(stderr, "rrh-ctl: %s\n", loaded.error().detail.c_str());
      return exit_usage;
    }
    curve = std::move(loaded.value());
  }
  auto reply = rrh::ctl::ask(settings.control, request,
                             std::chrono::milliseconds(settings.timeout_ms),
                             curve ? &*curve : nullptr);
  if (!reply) {
    const auto& failure = reply.error();
    if (failure.code == rrh::errc::invalid_argument) {
      std::fprintf(stderr, "rrh-ctl: %s\n", failure.detail.c_str());
      return exit_usage;
    }
    if (failure.code == rrh::errc::timeout) {
      std::fprintf(stderr,
                   "rrh-ctl: no answer from the processor at %s within %llu ms — is "
                   "rrh-processor running?\n",
                   settings.control.c_str(), static_cast<unsigned long long>(settings.timeout_ms));
    } else {
      std::fprintf(stderr, "rrh-ctl: no usable answer from the processor at %s: %s\n",
                   settings.control.c_str(), failure.detail.c_str());
    }
    return exit_no_answer;
  }

  auto parsed = rrh::ctl::parse_json(*reply);
  const auto* ok = parsed ? parsed->find("ok") : nullptr;
  if (ok == nullptr || ok->type != rrh::ctl::json_value::kind::boolean) {
    std::fprintf(
        stderr, "rrh-ctl: the processor at %s sent a reply that is not a control answer%s%s\n",
        settings.control.c_str(), parsed ? "" : ": ", parsed ? "" : parsed.error().detail.c_str());
    return exit_no_answer;
  }
  if (!settings.pretty) {
    write_all(stdout, *reply + "\n");
    return ok->boolean ? exit_ok : exit_processor_error;
  }
  if (!ok->boolean) {
    const auto* message = parsed->find("error");
    std::fprintf(
        stderr, "rrh-ctl: %s\n",
        message != nullptr ? message->display().c_str() : "the processor answered an error");
    return exit_processor_error;
  }
  const auto* data = parsed->find("data");
  write_all(stdout, data != nullptr ? rrh::ctl::format_pretty(settings.command, *data) : "\n");
  return exit_ok;
}

int main_checked(int argc, char** argv) {
  CLI::App app{
      "rrh-ctl: ask a running rrh-processor about its state, through its control socket.\n"
      "Commands: status | agents | tasks | episodes | config | help | agent ID | task ID |\n"
      "episode ID | keygen --out DIR --name NAME. Lists (agents, tasks, episodes) hold at\n"
      "most 10000 entries in id order; a cut list says \"truncated\":true and its \"total\".\n"
      "Output: the processor's JSON reply as received, on one line; --pretty prints tables\n"
      "(lists) or key: value lines (single objects and status).\n"
      "Exit codes: 0 ok; 1 the processor answered an error (e.g. no such agent); 2 usage\n"
      "error; 3 no answer within --timeout-ms (also: a CURVE key the processor refuses).\n"
      "keygen writes a CURVE key pair, DIR/NAME.key (public) and DIR/NAME.key_secret\n"
      "(mode 0600), refuses to overwrite, and prints the public key."};
  options settings;
  app.add_option("--control", settings.control, "the processor's control endpoint")
      ->capture_default_str();
  app.add_flag("--pretty", settings.pretty, "readable tables instead of JSON");
  app.add_option("--timeout-ms", settings.timeout_ms, "how long to wait for the answer")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, timeout_ms_max));
  app.add_option("--curve-secret-key-file", settings.curve_secret_key_file,
                 "CURVE: this client's secret key (the control socket of a processor with "
                 "security: curve)");
  app.add_option("--curve-server-key-file", settings.curve_server_key_file,
                 "CURVE: the processor's public key");
  app.add_option("--out", settings.key_dir, "keygen: directory to write the key files to");
  app.add_option("--name", settings.key_name, "keygen: name of the key files (NAME.key, NAME.key_secret)");
  app.add_option("command", settings.command,
                 "status, agents, tasks, episodes, config, help, agent, task, episode or keygen")
      ->required();
  app.add_option("id", settings.id, "the agent, task or episode id (with agent, task, episode)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& failure) {
    const int code = app.exit(failure);
    return code == 0 ? exit_ok : exit_usage;
  }
  if (is_one_of(commands_with_id, settings.command)) {
    if (settings.id.empty()) {
      std::fprintf(stderr, "rrh-ctl: '%s' needs an id: rrh-ctl %s ID\n", settings.command.c_str(),
                   settings.command.c_str());
      return exit_usage;
    }
  } else if (is_one_of(commands_without_id, settings.command)) {
    if (!settings.id.empty()) {
      std::fprintf(stderr, "rrh-ctl: '%s' takes no id\n", settings.command.c_str());
      return exit_usage;
    }
  } else {
    std::fprintf(stderr,
                 "rrh-ctl: unknown command '%s'; commands: status, agents, tasks, episodes, "
                 "config, help, agent ID, task ID, episode ID, keygen\n",
                 settings.command.c_str());
    return exit_usage;
  }
  if (settings.command == "keygen") return keygen(settings);
  return run(settings);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return main_checked(argc, argv);
  } catch (const std::exception& failure) {
    // Out of memory or a socket failure outside the exchange: no answer was obtained.
    std::fprintf(stderr, "rrh-ctl: %s\n", failure.what());
    return exit_no_answer;
  }
}
