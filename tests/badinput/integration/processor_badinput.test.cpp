// rrh-processor against hostile input: garbage events published on the broker's events-in
// (which its SUB receives) and garbage on its control socket. Each bad event is counted in
// `rrh-ctl status`, logged sparingly, and changes no state; valid input still works after.
#include <catch2/catch.hpp>

#include <csignal>
#include <sys/wait.h>

#include "badinput_support.hpp"
#include "processor_fixture.hpp"
#include "rrh/codec.hpp"

using namespace std::chrono_literals;
using rrh::test::ctl;
using rrh::test::json_number;
using rrh::test::tree;
using rrh::test::tree_list;
using rrh::test::tree_map;
using rrh::test::wait_until;

namespace {

struct processor_stack {
  explicit processor_stack(const std::string& name)
      : scratch(name), config_path(scratch.file("rrh.yaml")), state_path(scratch.file("state.db")) {
    rrh::test::write_file(config_path,
                          rrh::test::resilience_yaml(rrh::test::test_speed_resilience()));
    processor = std::make_unique<rrh::test::processor_process>(broker, config_path, state_path);
    publisher.connect(broker.events_in);
  }

  long long malformed() { return json_number(ctl(processor->control, {"status"}), "events_malformed"); }

  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  rrh::test::broker_process broker;
  rrh::test::scratch_directory scratch;
  std::string config_path;
  std::string state_path;
  std::unique_ptr<rrh::test::processor_process> processor;
  rrh::test::sockets context;
  zmq::socket_t publisher = context.make(zmq::socket_type::pub);
};

// A golden event with one change.
tree golden_event(std::string_view kind) { return rrh::test::parse(rrh::test::golden_vector("event", kind)); }

// Bad events, each under a topic the processor subscribes to, each one malformed event
// in its counters. Every body but the framing errors is a message that would change state
// (an agent, a task) if it were applied.
std::vector<std::vector<std::string>> bad_events() {
  std::vector<std::vector<std::string>> bad;
  const auto failed = rrh::test::golden_frame("event", "task.failed");
  bad.push_back({"task.failed x"});                               // one frame
  bad.push_back({"task.failed x", failed, "third"});              // three frames
  bad.push_back({"task.failed x", ""});                           // empty body
  bad.push_back({"task.failed x", "\xc1\xc1 garbage"});           // not msgpack
  bad.push_back({"task.failed x", failed.substr(0, failed.size() / 2)});  // truncated
  bad.push_back({"task.failed x", failed + '\x00'});              // trailing byte
  bad.push_back({"task.failed x", std::string(2 * rrh::message_bytes_max, '\x90')});  // > 1 MiB
  auto message = golden_event("task.failed");
  message["v"] = tree(2);
  bad.push_back({"task.failed x", rrh::test::frame_of(message)});  // unknown version
  message = golden_event("task.failed");
  message["kind"] = tree("task.teleported");
  bad.push_back({"task.failed x", rrh::test::frame_of(message)});  // unknown kind
  message = golden_event("task.failed");
  message["data"]["attempt"] = tree(-3);
  bad.push_back({"task.failed x", rrh::test::frame_of(message)});  // negative attempt
  message = golden_event("task.failed");
  message["data"]["agent"] = tree(std::string(200'000, 'a'));
  bad.push_back({"task.failed x", rrh::test::frame_of(message)});  // id of 200 KB
  message = golden_event("task.failed");
  message["data"]["task"] = tree(std::string(rrh::message_bytes_max, 't'));
  bad.push_back({"task.failed x", rrh::test::frame_of(message)});  // id of a megabyte
  message = golden_event("task.failed");
  message["data"]["checkpoint"] = tree(rrh::byte_buffer(rrh::checkpoint_bytes_max + 1, 0x42));
  bad.push_back({"task.failed x", rrh::test::frame_of(message)});  // checkpoint > 256 KiB
  message = golden_event("agent.registered");
  message["data"]["pool"] = tree("bad pool");
  bad.push_back({"agent.registered x", rrh::test::frame_of(message)});  // invalid optional id
  message = golden_event("agent.registered");
  message["seq"] = tree("1");
  bad.push_back({"agent.registered x", rrh::test::frame_of(message)});  // seq as text
  message = golden_event("heartbeat");
  tree_list agents;
  for (int index = 0; index < 10'000; ++index) {
    agents.push_back(tree(tree_map{{"agent", tree("hb-" + std::to_string(index))}}));
  }
  message["data"]["agents"] = tree(agents);
  bad.push_back({"heartbeat x", rrh::test::frame_of(message)});  // 10,000 agents
  return bad;
}

}  // namespace

TEST_CASE("the processor counts and drops bad events, and its state does not change",
          "[badinput][processor][integration]") {
  processor_stack stack("rrh-badinput-events");
  // Until the subscription has travelled through the broker, published events are lost:
  // publish one bad event until the processor has counted one.
  const std::vector<std::string> probe = {"heartbeat warm-up", "not msgpack"};
  REQUIRE(wait_until([&] {
    rrh::test::send_parts(stack.publisher, probe);
    return stack.malformed() >= 1;
  }));
  // Later copies of the warm-up may still be in flight; let them land before counting.
  long long before = 0;
  REQUIRE(wait_until([&] {
    const auto first = stack.malformed();
    const auto second = stack.malformed();
    before = second;
    return first == second;
  }));
  const auto agents_before = ctl(stack.processor->control, {"agents"});
  const auto tasks_before = ctl(stack.processor->control, {"tasks"});
  REQUIRE(agents_before.find("\"total\":0") != std::string::npos);

  const auto bad = bad_events();
  for (const auto& parts : bad) rrh::test::send_parts(stack.publisher, parts);
  const auto expected = before + static_cast<long long>(bad.size());
  REQUIRE(wait_until([&] { return stack.malformed() >= expected; }));
  CHECK(stack.malformed() == expected);
  CHECK(ctl(stack.processor->control, {"agents"}) == agents_before);
  CHECK(ctl(stack.processor->control, {"tasks"}) == tasks_before);
  REQUIRE(stack.processor->process().running());

  // Still working: a valid registration is applied (the same channel does change state).
  auto registered = golden_event("agent.registered");
  registered["node"] = tree("badinput-node");
  registered["seq"] = tree(1);
  registered["data"]["agent"] = tree("badinput-agent");
  registered["data"]["supervisor"] = tree("");
  const auto frame = rrh::test::frame_of(registered);
  REQUIRE(wait_until([&] {
    rrh::test::send_parts(stack.publisher, {"agent.registered badinput-agent", frame});
    return ctl(stack.processor->control, {"agents"}).find("badinput-agent") != std::string::npos;
  }));

  // At most one "dropped malformed event" line per 5 s, however many arrived.
  const auto elapsed = std::chrono::steady_clock::now() - stack.started;
  CHECK(rrh::test::count_lines(stack.processor->process(), "dropped malformed event") <=
        rrh::test::throttled_lines_max(elapsed));
}

TEST_CASE("the processor answers garbage on its control socket and keeps serving",
          "[badinput][processor][integration]") {
  processor_stack stack("rrh-badinput-control");
  auto client = stack.context.make(zmq::socket_type::dealer);
  client.connect(stack.processor->control);
  const std::vector<std::vector<std::string>> requests = {
      {"", "teleport"},                           // unknown verb
      {"", ""},                                   // empty request
      {"", std::string("\xc1\x00\xff status", 10)},  // binary junk
      {"", "agent " + std::string(60'000, 'x')},   // an absurd id, under the frame limit
      {"", "agents extra words"},                 // wrong argument count
      {"status"},                                 // no REQ delimiter
      {"a", "b", "c", "d"},                       // too many frames
  };
  for (const auto& request : requests) {
    CAPTURE(request.size(), request.back().substr(0, 20));
    rrh::test::send_parts(client, request);
    std::optional<rrh::test::frames> reply;
    REQUIRE(wait_until([&] { return (reply = rrh::test::try_receive(client)).has_value(); }));
    // A JSON answer, short even for a megabyte of request.
    const auto answer = rrh::test::text_of(reply->back());
    CHECK(answer.front() == '{');
    CHECK(answer.size() < 64 * 1024);
  }
  // A megabyte: over the control socket's frame limit (64 KiB), so ZeroMQ drops that
  // client's connection before buffering it; the processor answers the next client.
  {
    auto greedy = stack.context.make(zmq::socket_type::dealer);
    greedy.connect(stack.processor->control);
    rrh::test::send_parts(greedy, {"", std::string(1'000'000, 'a')});
    CHECK(ctl(stack.processor->control, {"status"}).find("\"ok\":true") != std::string::npos);
  }
  // Bytes that are not ZeroMQ at all.
  CHECK(rrh::test::send_raw_garbage(stack.processor->control, 64 * 1024, 3));
  REQUIRE(stack.processor->process().running());
  const auto status = ctl(stack.processor->control, {"status"});
  CHECK(json_number(status, "events_malformed") == 0);
  CHECK(status.find("\"node_id\":\"processor\"") != std::string::npos);

  stack.processor->process().signal(SIGTERM);
  const auto exited = stack.processor->process().wait_exit(10s);
  REQUIRE(exited);
  CHECK(WIFEXITED(*exited));
  CHECK(WEXITSTATUS(*exited) == 0);
}
