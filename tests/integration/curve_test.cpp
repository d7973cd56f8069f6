// The authenticated bus end to end: a real rrh-broker and rrh-processor with
// `security: curve`, nodes with and without keys, on loopback with ephemeral ports.
// What is checked: only allowed keys get events in; a node id belongs to the key that
// first used it (events and commands); the control socket wants a key; and without CURVE a
// non-loopback bind is warned about.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <regex>

#include "processor_fixture.hpp"
#include "rrh/codec.hpp"
#include "rrh/curve.hpp"
#include "rrh/shim.hpp"
#include "shim_fixture.hpp"

using namespace std::chrono_literals;
using rrh::test::binary_path;
using rrh::test::child_process;
using rrh::test::wait_until;

namespace {

constexpr const char* any_port = "tcp://127.0.0.1:*";

/// A received bus message of a CURVE bus: the event and the key the broker vouches for.
struct keyed_event {
  rrh::event message;
  std::string sender_key;
};

/// The outcome of one rrh-ctl run.
struct ctl_result {
  int exit_code = -1;
  std::string output;
};

/// A CURVE bus: keys for every party in a scratch directory, a broker that allows the
/// nodes' and the tap's keys, a processor whose control socket allows the ctl key, and a
/// subscriber with the tap key recording [topic][body][sender key] messages.
class curve_bus {
 public:
  curve_bus()
      : scratch_("rrh-curve"),
        secrets_(scratch_.file("secrets")),
        allowed_(scratch_.file("allowed")),
        control_keys_(scratch_.file("control")) {
    for (const auto& directory : {secrets_, allowed_, control_keys_}) std::filesystem::create_directories(directory);
    for (const auto* name : {"broker", "processor", "node-a", "node-b", "tap", "intruder", "ctl"}) {
      auto made = rrh::generate_key_files(secrets_, name);
      if (!made) throw std::runtime_error(made.error().detail);
      public_keys_[name] = made->public_key;
    }
    // The intruder's key is in no allowed directory; ctl's is allowed only on control.
    for (const auto* name : {"node-a", "node-b", "tap"}) {
      std::filesystem::copy_file(public_key_file(name), allowed_ + "/" + name + ".key");
    }
    std::filesystem::copy_file(public_key_file("ctl"), control_keys_ + "/ctl.key");

    broker_ = std::make_unique<child_process>(
        binary_path("rrh-broker"),
        std::vector<std::string>{"--events-in", any_port, "--events-out", any_port, "--commands-in", any_port,
                                 "--commands-out", any_port, "--security", "curve", "--curve-secret-key-file",
                                 secret_key_file("broker"), "--curve-allowed-keys-dir", allowed_,
                                 "--curve-processor-key-file", public_key_file("processor")});
    const auto ready = broker_->wait_line("rrh-broker ready", rrh::test::wait_deadline_default);
    if (!ready) throw std::runtime_error("rrh-broker printed no ready line");
    events_in = rrh::ready_line_field(*ready, "events-in");
    events_out = rrh::ready_line_field(*ready, "events-out");
    commands_in = rrh::ready_line_field(*ready, "commands-in");
    commands_out = rrh::ready_line_field(*ready, "commands-out");

    const auto config = scratch_.file("rrh.yaml");
    rrh::test::write_file(config, rrh::test::resilience_yaml(rrh::test::test_speed_resilience()) +
                                      "security: curve\ncurve_secret_key_file: " + secret_key_file("processor") +
                                      "\ncurve_server_key_file: " + public_key_file("broker") +
                                      "\ncurve_allowed_keys_dir: " + control_keys_ + "\n");
    processor_ = std::make_unique<child_process>(
        binary_path("rrh-processor"),
        std::vector<std::string>{"--config", config, "--events", events_out, "--publish", events_in, "--commands",
                                 commands_in, "--control", any_port, "--state", scratch_.file("state.db"),
                                 "--log-level", "debug"});
    const auto processor_ready = processor_->wait_line("rrh-processor ready", rrh::test::wait_deadline_default);
    if (!processor_ready) throw std::runtime_error("rrh-processor printed no ready line");
    control = rrh::ready_line_field(*processor_ready, "control");

    recorder_ = sockets_.make(zmq::socket_type::sub);
    rrh::make_curve_client(recorder_, client_keys("tap"));
    recorder_.set(zmq::sockopt::subscribe, "");
    recorder_.connect(events_out);
  }

  std::string secret_key_file(const std::string& name) const { return secrets_ + "/" + name + ".key_secret"; }
  std::string public_key_file(const std::string& name) const { return secrets_ + "/" + name + ".key"; }
  const std::string& public_key(const std::string& name) { return public_keys_.at(name); }

  /// `name`'s keys as a client of the broker.
  rrh::curve_client_keys client_keys(const std::string& name) const {
    auto keys = rrh::load_client_keys(secret_key_file(name), public_key_file("broker"));
    if (!keys) throw std::runtime_error(keys.error().detail);
    return keys.value();
  }

  /// A shim for `node` using `key_name`'s keys, heartbeating every 100 ms.
  std::unique_ptr<rrh::shim> node(const std::string& node_id, const std::string& key_name) const {
    auto config = rrh::test::test_shim_config(node_id, events_in, commands_out);
    config.retransmit_max_ms = 500;
    config.security = rrh::bus_security::curve;
    config.curve_secret_key_file = secret_key_file(key_name);
    config.curve_server_key_file = public_key_file("broker");
    return std::make_unique<rrh::shim>(config);
  }

  /// A socket of `type` on this test's context, with `key_name`'s keys (none: NULL mechanism).
  zmq::socket_t socket(zmq::socket_type type, const std::string& key_name = {}) {
    auto made = sockets_.make(type);
    if (!key_name.empty()) rrh::make_curve_client(made, client_keys(key_name));
    return made;
  }

  /// Runs rrh-ctl against the control socket, with `key_name`'s keys (none: no CURVE).
  ctl_result ctl(const std::vector<std::string>& request, const std::string& key_name = "ctl",
                 const std::string& timeout_ms = "3000") const {
    std::vector<std::string> arguments{"--control", control, "--timeout-ms", timeout_ms};
    if (!key_name.empty()) {
      arguments.insert(arguments.end(), {"--curve-secret-key-file", secret_key_file(key_name),
                                         "--curve-server-key-file", public_key_file("processor")});
    }
    arguments.insert(arguments.end(), request.begin(), request.end());
    child_process tool(binary_path("rrh-ctl"), arguments);
    ctl_result result;
    const auto status = tool.wait_exit(std::chrono::seconds(20));
    if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
    for (const auto& line : tool.lines()) result.output += line + "\n";
    return result;
  }

  /// True when the processor knows `agent` (rrh-ctl agent ID answers ok).
  bool knows_agent(const std::string& agent) const { return ctl({"agent", agent}).exit_code == 0; }

  /// Drains the bus into `received`; messages without the broker's key frame are counted.
  void pump() {
    while (auto parts = rrh::test::try_receive(recorder_)) {
      if (parts->size() != 3) {
        ++unkeyed;
        continue;
      }
      const auto topic = rrh::test::text_of((*parts)[0]);
      if (topic.rfind("cmd.", 0) == 0) continue;
      auto decoded = rrh::decode_event((*parts)[1].data(), (*parts)[1].size());
      if (decoded) received.push_back({std::move(decoded.value()), rrh::test::text_of((*parts)[2])});
    }
  }

  /// Events of one body type seen so far, with their sender keys.
  template <class Body>
  std::vector<std::pair<const Body*, std::string>> events_of() const {
    std::vector<std::pair<const Body*, std::string>> found;
    for (const auto& item : received) {
      if (const auto* body = std::get_if<Body>(&item.message.body)) found.emplace_back(body, item.sender_key);
    }
    return found;
  }

  std::string events_in, events_out, commands_in, commands_out, control;
  std::vector<keyed_event> received;
  std::size_t unkeyed = 0;

  child_process& broker() { return *broker_; }
  child_process& processor() { return *processor_; }

 private:
  rrh::test::scratch_directory scratch_;
  std::string secrets_, allowed_, control_keys_;
  std::map<std::string, std::string> public_keys_;
  std::unique_ptr<child_process> broker_;
  std::unique_ptr<child_process> processor_;
  rrh::test::sockets sockets_;
  zmq::socket_t recorder_;
};

/// An agent.registered event of `node` (incarnation 7, seq 1) for `agent`, as [topic][body].
std::vector<std::string> registration(const std::string& node, const std::string& agent) {
  rrh::event message;
  message.header.node = node;
  message.header.incarnation = 7;
  message.header.seq = 1;
  message.header.ts_ms = 1'700'000'000'000;
  rrh::events::agent_registered registered;
  registered.agent = agent;
  message.body = registered;
  return {rrh::event_topic(message), rrh::test::bytes_of(rrh::encode(message))};
}

/// A task.rollback command for node-a's agent, as commands-in takes it.
std::vector<std::string> rollback_for(const std::string& node, std::uint64_t id) {
  rrh::command message;
  message.id = id;
  message.node = node;
  message.body = rrh::commands::task_rollback{"t-" + std::to_string(id), "a.1", "test"};
  return {node, std::string(rrh::kind_name(message.body)), rrh::test::bytes_of(rrh::encode(message))};
}

long long json_number(const std::string& json, const std::string& name) {
  std::smatch match;
  if (!std::regex_search(json, match, std::regex("\"" + name + "\":([0-9]+)"))) return -1;
  return std::stoll(match[1].str());
}

}  // namespace

TEST_CASE("events of a publisher without an allowed key never reach the processor",
          "[curve][integration]") {
  curve_bus bus;
  auto node_a = bus.node("node-a", "node-a");
  REQUIRE(node_a->register_agent("a.1"));

  auto no_key = bus.socket(zmq::socket_type::pub);  // NULL mechanism: no handshake with a CURVE server
  no_key.connect(bus.events_in);
  auto unknown_key = bus.socket(zmq::socket_type::pub, "intruder");  // CURVE, but not allowed
  unknown_key.connect(bus.events_in);
  const auto send_intrusions = [&] {
    rrh::test::send_parts(no_key, registration("nokey-node", "nokey.1"));
    rrh::test::send_parts(unknown_key, registration("intruder-node", "intruder.1"));
  };

  REQUIRE(wait_until([&] {
    send_intrusions();
    return bus.knows_agent("a.1");
  }, 20s));
  // Registered after the intruders kept sending: once it is known, theirs would be too.
  REQUIRE(node_a->register_agent("a.2"));
  REQUIRE(wait_until([&] {
    send_intrusions();
    return bus.knows_agent("a.2");
  }, 20s));
  CHECK(bus.ctl({"agent", "nokey.1"}).exit_code == 1);
  CHECK(bus.ctl({"agent", "intruder.1"}).exit_code == 1);
  // The broker's ZAP handler refused the intruder's key and logged it.
  CHECK(bus.broker().wait_line("refused a connection to events-in", 5s));

  // rrh-tap with an allowed key prints the events of the CURVE bus.
  child_process tap(binary_path("rrh-tap"),
                    {"--connect", bus.events_out, "--filter", "heartbeat node-a", "--count", "1", "--timeout-ms", "10000",
                     "--json", "--curve-secret-key-file", bus.secret_key_file("tap"), "--curve-server-key-file",
                     bus.public_key_file("broker")});
  const auto tapped = tap.wait_exit(20s);
  REQUIRE(tapped);
  CHECK(WEXITSTATUS(*tapped) == 0);
  bool printed = false;
  for (const auto& line : tap.lines()) printed = printed || line.find("\"node-a\"") != std::string::npos;
  CHECK(printed);
}

TEST_CASE("a node id belongs to the key that registered it first", "[curve][integration]") {
  curve_bus bus;
  auto node_a = bus.node("node-a", "node-a");
  REQUIRE(node_a->register_agent("a.1"));
  REQUIRE(wait_until([&] { return bus.knows_agent("a.1"); }, 20s));

  SECTION("another allowed key publishing as node-a is rejected with an alert") {
    auto node_b = bus.socket(zmq::socket_type::pub, "node-b");
    node_b.connect(bus.events_in);
    const auto spoofed_alerts = [&] {
      std::size_t count = 0;
      for (const auto& [alert, key] : bus.events_of<rrh::events::alert>()) {
        // The alert comes from the processor: the broker vouches for the processor's key.
        if (alert->code == "node.spoofed" && key == bus.public_key("processor")) ++count;
      }
      return count;
    };
    REQUIRE(wait_until([&] {
      rrh::test::send_parts(node_b, registration("node-a", "spoof.1"));
      bus.pump();
      return spoofed_alerts() > 0;
    }, 20s));
    CHECK(bus.ctl({"agent", "spoof.1"}).exit_code == 1);
    const auto status = bus.ctl({"status"});
    CHECK(json_number(status.output, "events_rejected") >= 1);
    // node-a's own agent is untouched and its later events are still applied.
    REQUIRE(node_a->register_agent("a.2"));
    CHECK(wait_until([&] { return bus.knows_agent("a.2"); }, 20s));
    CHECK(bus.ctl({"agent", "a.1"}).output.find("\"dead\"") == std::string::npos);
    // Every message on a CURVE bus carries the broker's sender-key frame.
    CHECK(bus.unkeyed == 0);
    CHECK(bus.processor().wait_line("rejected an event for node 'node-a'", 5s));
  }

  SECTION("another key cannot receive node-a's commands") {
    // An impostor with node-a's routing id and an allowed key, saying hello as node-a.
    auto impostor = bus.socket(zmq::socket_type::dealer, "node-b");
    impostor.set(zmq::sockopt::routing_id, "node-a");
    impostor.connect(bus.commands_out);
    auto commander = bus.socket(zmq::socket_type::push, "processor");
    commander.connect(bus.commands_in);
    std::uint64_t next_id = 900'001;
    const auto acked = [&](std::uint64_t id) {
      for (const auto& [ack, key] : bus.events_of<rrh::events::command_ack>()) {
        if (ack->command_id == id && key == bus.public_key("node-a")) return true;
      }
      return false;
    };
    for (int round = 0; round < 3; ++round) {
      const auto id = next_id++;
      REQUIRE(wait_until([&] {
        impostor.send(zmq::buffer(std::string("node-a")), zmq::send_flags::dontwait);
        rrh::test::send_parts(commander, rollback_for("node-a", id));
        bus.pump();
        return acked(id);
      }, 20s));
    }
    // Every command went to node-a; the impostor got none.
    CHECK_FALSE(rrh::test::try_receive(impostor).has_value());
    CHECK(bus.broker().wait_line("refused a hello for node 'node-a'", 5s));
  }
}

TEST_CASE("the control socket answers only allowed keys", "[curve][integration]") {
  curve_bus bus;
  CHECK(bus.ctl({"status"}).exit_code == 0);
  // No key: the handshake never completes, so no answer (exit 3).
  CHECK(bus.ctl({"status"}, "", "1500").exit_code == 3);
  // A key the bus allows but the control socket does not.
  CHECK(bus.ctl({"status"}, "node-a", "1500").exit_code == 3);
}

TEST_CASE("without CURVE a non-loopback bind is warned about", "[curve][integration]") {
  // 0.0.0.0 is bound, but every connection of this test stays on 127.0.0.1.
  child_process broker(binary_path("rrh-broker"),
                       {"--events-in", "tcp://0.0.0.0:*", "--events-out", any_port, "--commands-in", any_port,
                        "--commands-out", any_port});
  const auto ready = broker.wait_line("rrh-broker ready", rrh::test::wait_deadline_default);
  REQUIRE(ready);
  CHECK(broker.wait_line("events-in is bound to non-loopback", 5s));

  // Connections go to the port on 127.0.0.1.
  const auto events_in = rrh::ready_line_field(*ready, "events-in");
  const auto loopback_events_in = "tcp://127.0.0.1:" + events_in.substr(events_in.rfind(':') + 1);
  child_process processor(binary_path("rrh-processor"),
                          {"--events", rrh::ready_line_field(*ready, "events-out"), "--publish", loopback_events_in,
                           "--commands", rrh::ready_line_field(*ready, "commands-in"), "--control",
                           "tcp://0.0.0.0:*", "--state", ":memory:"});
  REQUIRE(processor.wait_line("rrh-processor ready", rrh::test::wait_deadline_default));
  CHECK(processor.wait_line("control is bound to non-loopback", 5s));
}

TEST_CASE("with CURVE a non-loopback bind is not warned about", "[curve][integration]") {
  rrh::test::scratch_directory scratch("rrh-curve-quiet");
  REQUIRE(rrh::generate_key_files(scratch.file(""), "broker"));
  child_process broker(binary_path("rrh-broker"),
                       {"--events-in", "tcp://0.0.0.0:*", "--events-out", any_port, "--commands-in", any_port,
                        "--commands-out", any_port, "--security", "curve", "--curve-secret-key-file",
                        scratch.file("broker.key_secret"), "--curve-allowed-keys-dir", scratch.file("")});
  REQUIRE(broker.wait_line("rrh-broker ready", rrh::test::wait_deadline_default));
  REQUIRE(broker.wait_line("CURVE on", 5s));
  for (const auto& line : broker.lines()) CHECK(line.find("non-loopback") == std::string::npos);
}

TEST_CASE("a missing key file stops the broker and the processor with exit 2", "[curve][integration]") {
  rrh::test::scratch_directory scratch("rrh-curve-missing");
  child_process broker(binary_path("rrh-broker"),
                       {"--events-in", any_port, "--events-out", any_port, "--commands-in", any_port,
                        "--commands-out", any_port, "--security", "curve", "--curve-secret-key-file",
                        scratch.file("absent.key_secret"), "--curve-allowed-keys-dir", scratch.file("")});
  auto status = broker.wait_exit(10s);
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 2);
  CHECK(broker.wait_line("curve_secret_key_file", 1s));

  child_process processor(binary_path("rrh-processor"),
                          {"--security", "curve", "--curve-secret-key-file", scratch.file("absent.key_secret"),
                           "--curve-server-key-file", scratch.file("absent.key"), "--curve-allowed-keys-dir",
                           scratch.file(""), "--state", ":memory:"});
  status = processor.wait_exit(10s);
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 2);
  CHECK(processor.wait_line("curve_secret_key_file", 1s));
}
