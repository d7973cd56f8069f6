// rrh-tap: watch the rrh bus. Subscribes to the broker's events-out and prints every
// event and relayed command, as JSON lines (for pipes) or colored lines (for people).
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "format.hpp"
#include "rrh/curve.hpp"
#include "rrh/log.hpp"
#include "rrh/signals.hpp"
#include "rrh/zmq_util.hpp"

namespace {

/// Exit codes, as documented in --help.
constexpr int exit_ok = 0;
constexpr int exit_timeout_before_count = 1;
constexpr int exit_usage = 2;

/// Messages handled per poll wakeup, so that the deadline and Ctrl-C are checked often.
constexpr std::size_t receive_batch_max = 1000;
/// Frames of a bus message: [topic][msgpack body], and on a CURVE bus a third, the
/// sender's public key that the broker appends.
constexpr std::size_t bus_frame_count = 2;
constexpr std::size_t curve_bus_frame_count = 3;
/// The tap's receive queue, in messages: generous, so a burst is shown rather than dropped
/// by the broker's XPUB while the terminal scrolls.
constexpr int tap_hwm_messages = 100'000;

enum class output_format { json, pretty };

struct options {
  std::string connect = "tcp://127.0.0.1:7702";
  std::vector<std::string> filters;
  std::string agent;
  std::uint64_t count = 0;       ///< 0: no limit
  std::uint64_t timeout_ms = 0;  ///< 0: no limit
  output_format format = output_format::json;
  bool color = false;
  std::string curve_secret_key_file;  ///< with curve_server_key_file: CURVE to the broker
  std::string curve_server_key_file;  ///< the broker's public key
};

/// Receives one whole message; frames past the first two (the CURVE sender key, or junk)
/// are read and dropped.
/// Returns the number of frames the message had, 0 when none was waiting.
std::size_t receive(zmq::socket_t& socket, std::array<zmq::message_t, bus_frame_count>& frames) {
  if (!socket.recv(frames[0], zmq::recv_flags::dontwait)) return 0;
  std::size_t count = 1;
  zmq::message_t extra;
  bool more = frames[0].more();
  while (more) {
    auto& into = count < bus_frame_count ? frames[count] : extra;
    (void)socket.recv(into, zmq::recv_flags::none);
    more = into.more();
    ++count;
  }
  return count;
}

/// What happened to one message.
enum class handled { printed, skipped, output_closed };

handled handle(const options& settings, const std::array<zmq::message_t, bus_frame_count>& frames,
               rrh::log_throttle& throttle) {
  const std::string_view topic(static_cast<const char*>(frames[0].data()), frames[0].size());
  const auto* body = frames[1].data();
  const auto size = frames[1].size();
  auto report = [&](const std::string& detail) {
    if (const auto count = throttle.admit("malformed"); count > 0) {
      spdlog::warn("skipped a malformed message on '{}': {} ({} since last report)",
                   topic.substr(0, 128), detail, count);
    }
    return handled::skipped;
  };
  if (!settings.agent.empty()) {
    auto concerns = rrh::tap::concerns_agent(topic, body, size, settings.agent);
    if (!concerns) return report(concerns.error().detail);
    if (!*concerns) return handled::skipped;
  }
  auto line = settings.format == output_format::json
                  ? rrh::tap::json_line(topic, body, size)
                  : rrh::tap::pretty_line(topic, body, size, settings.color);
  if (!line) return report(line.error().detail);
  line->push_back('\n');
  if (std::fwrite(line->data(), 1, line->size(), stdout) != line->size() ||
      std::fflush(stdout) != 0) {
    return handled::output_closed;  // e.g. `rrh-tap | head`: the reader is gone
  }
  return handled::printed;
}

int run(const options& settings) {
  const bool curve = !settings.curve_secret_key_file.empty() || !settings.curve_server_key_file.empty();
  zmq::context_t context;
  zmq::socket_t subscriber(context, zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::linger, rrh::socket_linger_ms);
  if (curve) {
    auto keys = rrh::load_client_keys(settings.curve_secret_key_file, settings.curve_server_key_file);
    if (!keys) {
      spdlog::error("{}", keys.error().detail);
      return exit_usage;
    }
    rrh::make_curve_client(subscriber, keys.value());
  }
  const std::size_t frames_expected = curve ? curve_bus_frame_count : bus_frame_count;
  subscriber.set(zmq::sockopt::rcvhwm, tap_hwm_messages);
  if (settings.filters.empty()) {
    subscriber.set(zmq::sockopt::subscribe, "");
  } else {
    for (const auto& prefix : settings.filters) subscriber.set(zmq::sockopt::subscribe, prefix);
  }
  try {
    subscriber.connect(settings.connect);
  } catch (const zmq::error_t& failure) {
    spdlog::error("cannot connect to '{}': {}", settings.connect, failure.what());
    return exit_usage;
  }

  using steady = std::chrono::steady_clock;
  const auto deadline = steady::now() + std::chrono::milliseconds(settings.timeout_ms);
  rrh::log_throttle throttle;
  std::array<zmq::message_t, bus_frame_count> frames;
  std::array<zmq::pollitem_t, 2> items{{
      {nullptr, rrh::stop_fd(), ZMQ_POLLIN, 0},
      {subscriber.handle(), 0, ZMQ_POLLIN, 0},
  }};
  std::uint64_t printed = 0;
  while (true) {
    auto wait = std::chrono::milliseconds(-1);
    if (settings.timeout_ms > 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) {
        return settings.count > 0 ? exit_timeout_before_count : exit_ok;
      }
      wait = left;
    }
    try {
      zmq::poll(items.data(), items.size(), wait);
      if ((items[0].revents & ZMQ_POLLIN) != 0) return exit_ok;
      for (std::size_t handled_count = 0; handled_count < receive_batch_max; ++handled_count) {
        const auto frame_count = receive(subscriber, frames);
        if (frame_count == 0) break;
        if (frame_count != frames_expected) {
          if (const auto count = throttle.admit("frames"); count > 0) {
            spdlog::warn(
                "skipped a message of {} frames (expected {}) ({} since last report)",
                frame_count, curve ? "[topic][body][sender key]" : "[topic][body]", count);
          }
          continue;
        }
        const auto outcome = handle(settings, frames, throttle);
        if (outcome == handled::output_closed) return exit_ok;
        if (outcome == handled::printed && settings.count > 0 && ++printed >= settings.count) {
          return exit_ok;
        }
      }
    } catch (const zmq::error_t& failure) {
      if (failure.num() == EINTR) continue;  // the stop fd says whether to stop
      spdlog::error("socket error: {}", failure.what());
      return exit_usage;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rrh-tap: watch the rrh bus. Prints every event and every relayed command (topic\n"
      "'cmd.<kind> <node>') from the broker's events-out.\n"
      "Output: --json prints one JSON object per line, {\"topic\":..., then the message's\n"
      "fields}; --pretty prints a colored line per message. Default: --pretty on a\n"
      "terminal, --json otherwise. Each line is flushed as it is printed.\n"
      "Exit codes: 0 after --count messages, on Ctrl-C/SIGTERM, or when --timeout-ms\n"
      "passes without --count; 1 when --timeout-ms passes before --count messages were\n"
      "printed; 2 on a usage or connection error."};
  options settings;
  bool json = false;
  bool pretty = false;
  std::string log_level = "warn";
  app.add_option("--connect", settings.connect, "broker events-out endpoint")
      ->capture_default_str();
  app.add_option("--filter", settings.filters,
                 "topic prefix to subscribe to, e.g. 'task.' or 'cmd.' (repeatable; default: "
                 "everything)");
  app.add_option("--agent", settings.agent,
                 "only messages whose data.agent or topic subject is this id");
  app.add_option("--count", settings.count, "exit after printing this many messages (0: no limit)")
      ->capture_default_str();
  app.add_option("--timeout-ms", settings.timeout_ms,
                 "exit after this many milliseconds (0: no limit)")
      ->capture_default_str();
  app.add_option("--curve-secret-key-file", settings.curve_secret_key_file,
                 "CURVE: this tap's secret key (a broker with security: curve)");
  app.add_option("--curve-server-key-file", settings.curve_server_key_file,
                 "CURVE: the broker's public key");
  auto* json_flag = app.add_flag("--json", json, "one JSON object per line");
  app.add_flag("--pretty", pretty, "readable colored lines")->excludes(json_flag);
  app.add_option("--log-level", log_level, "diagnostics on stderr: trace … off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& failure) {
    // --help and --version exit 0; every usage error exits with one documented code.
    return app.exit(failure) == 0 ? 0 : exit_usage;
  }

  if (auto logging = rrh::setup_logging("rrh-tap", log_level); !logging) {
    std::fprintf(stderr, "rrh-tap: %s\n", logging.error().detail.c_str());
    return exit_usage;
  }
  const bool terminal = ::isatty(STDOUT_FILENO) != 0;
  settings.format = json       ? output_format::json
                    : pretty   ? output_format::pretty
                    : terminal ? output_format::pretty
                               : output_format::json;
  settings.color = terminal && std::getenv("NO_COLOR") == nullptr;
  rrh::install_stop_handlers();
  return run(settings);
}
