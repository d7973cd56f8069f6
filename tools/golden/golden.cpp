// rrh-golden: writes one canonical sample of every event kind and every command kind, as
// msgpack bytes and as their JSON twin. The samples exercise every field with realistic
// values so that an implementation in another language can test its codec against them.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rrh/codec.hpp"
#include "rrh/json.hpp"
#include "rrh/protocol.hpp"

namespace {

namespace ev = rrh::events;
namespace cmd = rrh::commands;

// Fixed identities and times, so that running the generator twice gives the same bytes.
constexpr std::string_view agent_node = "worker-3.rack-b:4312";
constexpr std::string_view retry_node = "worker-5.rack-b:4377";
constexpr std::string_view processor_node = "rrh-processor";
constexpr std::string_view broker_node = "broker";
constexpr std::uint64_t agent_incarnation = 1'732'950'000'123;
constexpr std::uint64_t processor_incarnation = 1'732'949'000'007;
constexpr std::uint64_t broker_incarnation = 1'732'948'000'001;
constexpr std::uint64_t base_ts_ms = 1'732'950'123'456;
constexpr std::string_view episode_id = "ep-2024-11-30.0042";

rrh::byte_buffer sample_checkpoint() {
  // A small opaque blob, including bytes that are not valid UTF-8, so that a decoder that
  // treats bin as str is caught.
  const std::string_view state = "{\"page\":17,\"cursor\":\"c-88\"}";
  rrh::byte_buffer bytes(state.begin(), state.end());
  for (const std::uint8_t extra : {0x00, 0xff, 0x80, 0xc1}) bytes.push_back(extra);
  return bytes;
}

rrh::event make_event(std::string_view node, std::uint64_t incarnation, std::uint64_t seq,
                      std::string_view episode, rrh::event_body body) {
  rrh::event message;
  message.header.node = node;
  message.header.incarnation = incarnation;
  message.header.seq = seq;
  message.header.ts_ms = base_ts_ms + seq;
  message.header.episode = episode;
  message.body = std::move(body);
  return message;
}

std::vector<rrh::event> sample_events() {
  std::vector<rrh::event> out;
  const auto agent_event = [&](std::uint64_t seq, rrh::event_body body,
                               std::string_view episode = episode_id) {
    out.push_back(make_event(agent_node, agent_incarnation, seq, episode, std::move(body)));
  };
  // The processor publishes derived events once, best-effort: seq 0. `order` only spaces
  // their timestamps.
  const auto processor_event = [&](std::uint64_t order, rrh::event_body body) {
    auto message = make_event(processor_node, processor_incarnation, 0, episode_id, std::move(body));
    message.header.ts_ms = base_ts_ms + order;
    out.push_back(std::move(message));
  };

  // Best-effort events: seq 0; the heartbeat is sent outside any episode here.
  agent_event(0,
              ev::heartbeat{.interval_ms = 1000,
                            .pid = 4312,
                            .host = "rack-b-03.example.net",
                            .rss_bytes = 187'695'104,
                            .in_flight = 3,
                            .last_seq = 9,
                            .agents = {{.agent = "planner-1", .age_ms = 250, .stale = false},
                                       {.agent = "coder-2", .age_ms = 47'000, .stale = true},
                                       {.agent = "reviewer-3", .age_ms = 0, .stale = false}}},
              "");
  agent_event(0, ev::probe_reply{.command_id = 501, .agent = "coder-2"});

  // Critical events of the agent node, seq 1, 2, 3… within one incarnation.
  agent_event(1, ev::agent_registered{.agent = "coder-2",
                                      .pool = "coders",
                                      .capabilities = {"python", "git", "shell"},
                                      .supervisor = "launcher.rack-b",
                                      .watchdog_timeout_ms = 30'000});
  agent_event(2,
              ev::episode_started{.name = "nightly \"refactor\" run",
                                  .agents = {"planner-1", "coder-2", "reviewer-3"},
                                  .resilience = {{"agent_health_check_interval", std::int64_t{300}},
                                                 {"error_threshold", std::int64_t{5}},
                                                 {"max_recovery_attempts", std::int64_t{3}},
                                                 {"recovery_cooldown", 60.5},
                                                 {"retry_backoff_multiplier", 2.0},
                                                 {"retry_jitter", true},
                                                 {"retry_mode", std::string("full-jitter")},
                                                 {"task_retry_delay", std::int64_t{-1}}}});
  agent_event(3, ev::task_started{.task = "task-0001", .agent = "coder-2", .attempt = 1});
  agent_event(4, ev::task_failed{.task = "task-0001",
                                 .agent = "coder-2",
                                 .error_type = "TimeoutError",
                                 .message = "upstream API timed out after 30 s\nretrying is safe",
                                 .retryable = true,
                                 .attempt = 1,
                                 .pool = "coders",
                                 .checkpoint = sample_checkpoint()});
  agent_event(5, ev::task_succeeded{.task = "task-0001", .agent = "coder-2", .attempt = 2});
  agent_event(6, ev::episode_error{.agent = "reviewer-3",
                                   .error_type = "ValueError",
                                   .message = "review diff was empty (café ☕)"});
  agent_event(7,
              ev::command_ack{
                  .command_id = 500, .accepted = false, .reason = "no handler for task.rollback"});
  agent_event(8, ev::agent_unregistered{.agent = "reviewer-3", .reason = "scaled down"});
  agent_event(9, ev::episode_ended{.status = "completed"});

  // Derived events of the processor.
  processor_event(101, ev::agent_suspect{
                           .agent = "coder-2", .phi = 8.25, .reason = "no heartbeat for 5400 ms"});
  processor_event(
      102, ev::agent_dead{.agent = "coder-2", .silent_ms = 12'000, .reason = "phi above 16"});
  processor_event(103, ev::agent_recovered{.agent = "coder-2", .attempts = 2});
  processor_event(
      104, ev::agent_quarantined{
               .agent = "coder-2", .attempts = 3, .reason = "max_recovery_attempts reached"});
  processor_event(105, ev::task_retry_scheduled{.task = "task-0001",
                                                .agent = "coder-2",
                                                .attempt = 2,
                                                .delay_ms = 27'431,
                                                .target_agent = "coder-5"});
  processor_event(106, ev::task_abandoned{.task = "task-0002",
                                          .agent = "coder-2",
                                          .attempts = 4,
                                          .reason = "non-retryable error PermissionError"});
  processor_event(107,
                  ev::episode_shutdown{.reason = "errors passed error_threshold (5)", .errors = 6});
  processor_event(108, ev::episode_summary{.status = "aborted",
                                           .duration_ms = 3'725'000,
                                           .errors = 6,
                                           .recoveries_attempted = 3,
                                           .recoveries_succeeded = 2,
                                           .tasks_failed = 9,
                                           .tasks_retried = 7,
                                           .tasks_recovered = 5,
                                           .tasks_abandoned = 2,
                                           .agents_seen = 3});
  processor_event(109, ev::alert{.severity = "critical",
                                 .code = "agent.quarantined",
                                 .message = "coder-2 quarantined after 3 recovery attempts",
                                 .agent = "coder-2"});
  processor_event(110, ev::node_forgotten{.node = std::string(agent_node),
                                          .dead_ms = 3'600'000,
                                          .agents = {"coder-2", "reviewer-3"}});

  // The broker's own event. The broker keeps no outbox, so it publishes this best-effort
  // (seq 0), with the episode of the command it could not deliver.
  out.push_back(make_event(broker_node, broker_incarnation, 0, episode_id,
                           ev::command_undeliverable{.command_id = 502,
                                                     .target = "launcher.rack-b",
                                                     .command_kind = "agent.recover",
                                                     .reason = "target node not connected"}));
  // A supervisor's report that its child process died (critical, from the launcher).
  out.push_back(make_event("launcher.rack-b", 900'001, 1, episode_id,
                           ev::node_exited{.child = std::string(agent_node),
                                           .pid = 4312,
                                           .exit_code = 0,
                                           .signal = 9,
                                           .reason = "killed by SIGKILL",
                                           .agents = {"coder-2", "reviewer-3"}}));
  return out;
}

std::vector<rrh::command> sample_commands() {
  std::vector<rrh::command> out;
  const auto add = [&](std::uint64_t id, std::string_view node, std::string_view episode,
                       rrh::command_body body) {
    rrh::command message;
    message.id = id;
    message.node = node;
    message.ts_ms = base_ts_ms + 1000 + id;
    message.episode = episode;
    message.body = std::move(body);
    out.push_back(std::move(message));
  };
  add(498, retry_node, episode_id,
      cmd::task_retry{.task = "task-0001",
                      .agent = "coder-5",
                      .attempt = 2,
                      .from_agent = "coder-2",
                      .checkpoint = sample_checkpoint()});
  add(502, "launcher.rack-b", episode_id, cmd::agent_recover{.agent = "coder-2", .attempt = 1, .incarnation = agent_incarnation});
  add(501, agent_node, "", cmd::agent_probe{.agent = "coder-2"});
  add(500, agent_node, episode_id,
      cmd::task_rollback{
          .task = "task-0002", .agent = "coder-2", .reason = "abandoned after 4 attempts"});
  add(503, agent_node, episode_id,
      cmd::episode_shutdown{.reason = "errors passed error_threshold (5)"});
  add(504, agent_node, "", cmd::ack{.incarnation = agent_incarnation, .seq = 9});
  return out;
}

// Writes `bytes` to `path`; false (with a message) when the file cannot be written.
bool write_file(const std::filesystem::path& path, const void* bytes, std::size_t size) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
  file.close();
  if (!file) {
    std::cerr << "rrh-golden: cannot write " << path << '\n';
    return false;
  }
  return true;
}

// Writes `<dir>/<prefix>.<kind>.msgpack` and `.json`. Before writing, proves the sample is
// canonical: decoding and re-encoding it gives the same bytes.
template <class Message, class Decode>
bool write_vector(const std::filesystem::path& dir, std::string_view prefix, std::string_view kind,
                  const Message& message, Decode decode) {
  const auto bytes = rrh::encode(message);
  const auto decoded = decode(bytes.data(), bytes.size());
  if (!decoded) {
    std::cerr << "rrh-golden: sample " << prefix << '.' << kind
              << " does not decode: " << rrh::to_string(decoded.error().code) << ": "
              << decoded.error().detail << '\n';
    return false;
  }
  if (rrh::encode(*decoded) != bytes) {
    std::cerr << "rrh-golden: sample " << prefix << '.' << kind << " does not round-trip\n";
    return false;
  }
  const auto json = rrh::msgpack_to_json(bytes.data(), bytes.size());
  if (!json) {
    std::cerr << "rrh-golden: sample " << prefix << '.' << kind
              << " has no JSON form: " << json.error().detail << '\n';
    return false;
  }
  const std::string stem = std::string(prefix) + "." + std::string(kind);
  const std::string text = *json + "\n";
  return write_file(dir / (stem + ".msgpack"), bytes.data(), bytes.size()) &&
         write_file(dir / (stem + ".json"), text.data(), text.size());
}

// Every kind must have exactly one sample: a kind added to protocol.hpp without a sample
// here fails the generator rather than silently shipping without a vector.
bool covers_every_kind(std::string_view prefix, const std::vector<std::string_view>& kinds,
                       const std::multiset<std::string_view>& sampled) {
  bool complete = true;
  for (const auto kind : kinds) {
    if (sampled.count(kind) != 1) {
      std::cerr << "rrh-golden: " << sampled.count(kind) << " samples of " << prefix << '.' << kind
                << " (want 1)\n";
      complete = false;
    }
  }
  return complete;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rrh-golden: writes the wire protocol's golden vectors, one canonical msgpack file\n"
      "and its JSON twin per event kind (event.<kind>.*) and command kind (command.<kind>.*)."};
  std::string out_dir = "schemas/golden";
  app.add_option("--out", out_dir, "directory to write the vectors to (created if missing)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::error_code failure;
  std::filesystem::create_directories(out_dir, failure);
  if (failure) {
    std::cerr << "rrh-golden: cannot create " << out_dir << ": " << failure.message() << '\n';
    return 1;
  }

  const auto events = sample_events();
  const auto commands = sample_commands();
  std::multiset<std::string_view> event_kinds;
  std::multiset<std::string_view> command_kinds;
  for (const auto& message : events) event_kinds.insert(rrh::kind_name(message.body));
  for (const auto& message : commands) command_kinds.insert(rrh::kind_name(message.body));
  if (!covers_every_kind("event", rrh::event_kind_names(), event_kinds) ||
      !covers_every_kind("command", rrh::command_kind_names(), command_kinds)) {
    return 1;
  }

  std::size_t written = 0;
  for (const auto& message : events) {
    if (!write_vector(
            out_dir, "event", rrh::kind_name(message.body), message,
            [](const void* data, std::size_t size) { return rrh::decode_event(data, size); })) {
      return 1;
    }
    ++written;
  }
  for (const auto& message : commands) {
    if (!write_vector(
            out_dir, "command", rrh::kind_name(message.body), message,
            [](const void* data, std::size_t size) { return rrh::decode_command(data, size); })) {
      return 1;
    }
    ++written;
  }
  std::cout << "rrh-golden: wrote " << written << " vectors (" << 2 * written << " files) to "
            << out_dir << '\n';
  return 0;
}
