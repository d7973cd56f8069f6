// An in-process rrh::shim against bad commands pushed through a real broker's commands-in
// for its node id: each is counted in stats().commands_malformed, never reaches a handler,
// is never acked, and is logged sparingly; a valid command still runs afterwards.
#include <catch2/catch.hpp>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <sstream>

#include "badinput_support.hpp"
#include "bus_peer.hpp"
#include "rrh/shim.hpp"

using namespace std::chrono_literals;
using rrh::test::tree;
using rrh::test::wait_until;

namespace {

constexpr const char* node_id = "shim-bad";

// Routes spdlog's default logger into a string for the test's lifetime.
class captured_log {
 public:
  captured_log() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("badinput", sink));
  }
  ~captured_log() { spdlog::set_default_logger(previous_); }
  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;

  /// Lines logged so far that contain `needle`. Call once the shim is destroyed, so that
  /// no thread writes while this reads.
  std::size_t count(const std::string& needle) const {
    std::istringstream lines(text_.str());
    std::size_t found = 0;
    for (std::string line; std::getline(lines, line);) found += line.find(needle) != std::string::npos;
    return found;
  }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> previous_;
};

// The golden task.retry addressed to this node, with `id`.
tree retry_for_node(std::uint64_t id) {
  auto message = rrh::test::parse(rrh::test::golden_vector("command", "task.retry"));
  message["node"] = tree(node_id);
  message["id"] = tree(id);
  message["data"]["agent"] = tree("shim-agent");
  return message;
}

}  // namespace

TEST_CASE("the shim counts and drops bad commands, runs no handler and acks nothing",
          "[badinput][shim][integration]") {
  const auto started = std::chrono::steady_clock::now();
  captured_log log;
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);
  auto pusher = context.make(zmq::socket_type::push);
  pusher.connect(broker.commands_in);

  std::atomic<int> handled{0};
  std::size_t malformed = 0;
  {
    rrh::shim_config config;
    config.node_id = node_id;
    config.events_endpoint = broker.events_in;
    config.commands_endpoint = broker.commands_out;
    config.heartbeat_interval_ms = 100;
    rrh::shim node(config);
    REQUIRE(node.register_agent("shim-agent"));
    node.set_handler("task.retry", [&handled](const rrh::command&) {
      ++handled;
      return rrh::command_result::accept();
    });

    // The DEALER is connected once a probe is acked.
    rrh::command probe;
    probe.id = 1;
    probe.node = node_id;
    probe.body = rrh::commands::agent_probe{};
    REQUIRE(wait_until([&] {
      peer.send(probe);
      peer.pump();
      return !peer.acks_of(1).empty();
    }));
    const auto malformed_before = node.stats().commands_malformed;

    // Bad bodies, ids 1000 and up; the broker passes them all (frames are fine).
    std::vector<std::string> bodies;
    bodies.push_back("\xc1 garbage");
    const auto good = rrh::test::frame_of(retry_for_node(1000));
    bodies.push_back(good.substr(0, good.size() - 3));  // truncated
    auto message = retry_for_node(1001);
    message["v"] = tree(2);
    bodies.push_back(rrh::test::frame_of(message));  // unknown version
    message = retry_for_node(1002);
    message["kind"] = tree("task.failed");
    bodies.push_back(rrh::test::frame_of(message));  // an event kind
    message = retry_for_node(1003);
    message["node"] = tree("other-node");
    bodies.push_back(rrh::test::frame_of(message));  // addressed to another node
    message = retry_for_node(1004);
    message["data"]["attempt"] = tree(-1);
    bodies.push_back(rrh::test::frame_of(message));  // negative attempt
    message = retry_for_node(1005);
    message["data"]["checkpoint"] = tree(rrh::byte_buffer(rrh::checkpoint_bytes_max + 1, 7));
    bodies.push_back(rrh::test::frame_of(message));  // checkpoint over 256 KiB
    message = retry_for_node(1006);
    message["data"]["agent"] = tree(std::string(100'000, 'a'));
    bodies.push_back(rrh::test::frame_of(message));  // an id of 100 KB
    message = retry_for_node(1007);
    message["id"] = tree("1007");
    bodies.push_back(rrh::test::frame_of(message));  // id as text
    message = retry_for_node(1008);
    message["data"] = tree(rrh::test::tree_list{tree(1)});
    bodies.push_back(rrh::test::frame_of(message));  // data as a list
    for (const auto& body : bodies) rrh::test::send_parts(pusher, {node_id, "task.retry", body});
    malformed = bodies.size();

    REQUIRE(wait_until([&] { return node.stats().commands_malformed >= malformed_before + malformed; }));
    CHECK(node.stats().commands_malformed == malformed_before + malformed);
    CHECK(handled == 0);

    // A valid retry still runs and is acked.
    const auto retry = rrh::test::frame_of(retry_for_node(77));
    REQUIRE(wait_until([&] {
      rrh::test::send_parts(pusher, {node_id, "task.retry", retry});
      peer.pump();
      return !peer.acks_of(77).empty();
    }));
    CHECK(peer.acks_of(77).front().accepted);
    CHECK(handled == 1);
    for (std::uint64_t id = 1000; id <= 1008; ++id) {
      CAPTURE(id);
      CHECK(peer.acks_of(id).empty());
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(log.count("dropped malformed command") >= 1);
  CHECK(log.count("dropped malformed command") <= rrh::test::throttled_lines_max(elapsed));
}
