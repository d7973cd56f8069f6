// The durability rule of the processor's shell: commit, then send.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "commit.hpp"

namespace {

// Fakes for a pure ordering test: every call lands in one shared log.
struct fake_store {
  std::vector<std::string>& log;
  bool fail = false;
  rrh::status commit(const rrh::engine::engine&, const rrh::engine::effects&) {
    log.emplace_back("commit");
    if (fail) return rrh::make_error(rrh::errc::config, "disk full");
    return rrh::ok();
  }
};

struct fake_sink {
  std::vector<std::string>& log;
  void send_command(const rrh::command& message) { log.emplace_back(std::string(rrh::kind_name(message.body))); }
  void publish(rrh::engine::derived_event& derived) { log.emplace_back(std::string(rrh::kind_name(derived.body))); }
};

// An engine that applied one agent.registered from node n1: its effects hold a state
// change and an ack.
rrh::engine::effects registration(rrh::engine::engine& engine) {
  rrh::event message;
  message.header.node = "n1";
  message.header.incarnation = 9;
  message.header.seq = 1;
  message.body = rrh::events::agent_registered{"a1", "", {}, "", 0};
  rrh::engine::effects out;
  engine.on_event(message, 1'000, out);
  return out;
}

}  // namespace

TEST_CASE("the shell commits a batch before it sends what depends on it", "[processor][commit]") {
  rrh::engine::engine engine(rrh::engine::resilience_config{});
  auto changes = registration(engine);
  REQUIRE_FALSE(changes.nothing_to_store());
  REQUIRE(changes.acks.size() == 1);
  changes.events.push_back({"", rrh::events::alert{"info", "test", "decided", ""}});
  rrh::command retry;
  retry.id = 5;
  retry.node = "n1";
  retry.body = rrh::commands::task_retry{"t1", "a1", 2, {}, {}};
  changes.commands.push_back(retry);

  std::vector<std::string> log;
  fake_store store{log};
  fake_sink sink{log};

  SECTION("a successful commit comes first, then acks, derived events, commands") {
    REQUIRE(rrh::processor::commit_then_send(store, engine, changes, sink));
    REQUIRE(log == std::vector<std::string>{"commit", "ack", "alert", "task.retry"});
    REQUIRE(changes.acks.empty());
    REQUIRE(changes.commands.empty());
    REQUIRE(changes.nothing_to_store());
  }
  SECTION("a failed commit sends nothing: no ack for state that is not durable") {
    store.fail = true;
    const auto result = rrh::processor::commit_then_send(store, engine, changes, sink);
    REQUIRE_FALSE(result);
    REQUIRE(result.error().detail == "disk full");
    REQUIRE(log == std::vector<std::string>{"commit"});
  }
  SECTION("nothing to store: no commit, the sends still go out") {
    rrh::engine::effects only_sends;
    only_sends.commands.push_back(retry);
    REQUIRE(rrh::processor::commit_then_send(store, engine, only_sends, sink));
    REQUIRE(log == std::vector<std::string>{"task.retry"});
  }
}
