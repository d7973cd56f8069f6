#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh::engine;
using rrh::engine::test::engine_fixture;

TEST_CASE("a supervisor's node.exited makes the child's agents dead at once", "[engine][supervisor]") {
  engine_fixture world;
  world.register_agent("child-1", "worker-1", "", "launcher-1");
  world.register_agent("child-1", "worker-2", "", "launcher-1");
  world.heartbeat("child-1");
  world.heartbeat("launcher-1");
  REQUIRE(world.state_of("worker-1") == agent_state::healthy);

  world.deliver(world.critical(world.node("launcher-1"),
                               rrh::events::node_exited{"child-1", 4312, 0, 9, "killed by SIGKILL",
                                                        {"worker-1", "worker-2"}}));

  SECTION("dead without waiting for silence, with the supervisor's reason") {
    REQUIRE(world.state_of("worker-1") != agent_state::healthy);
    const auto dead = world.events_of<rrh::events::agent_dead>();
    REQUIRE(dead.size() == 2);
    REQUIRE(dead.front().reason.find("killed by SIGKILL") != std::string::npos);
  }
  SECTION("the recovery goes to the supervisor") {
    const auto recovers = world.commands_of<rrh::commands::agent_recover>();
    REQUIRE(recovers.size() == 2);
    REQUIRE(recovers.front().message.node == "launcher-1");
  }
  SECTION("the restarted child's registration brings the agent back") {
    world.node("child-1", 2);
    world.register_agent("child-1", "worker-1", "", "launcher-1");
    REQUIRE(world.state_of("worker-1") == agent_state::healthy);
    REQUIRE(world.events_of<rrh::events::agent_recovered>().size() == 1);
  }
  SECTION("an exit report for an unknown node changes nothing") {
    world.clear_log();
    world.deliver(world.critical(world.node("launcher-1"),
                                 rrh::events::node_exited{"never-seen", 1, 1, 0, "exited with code 1", {}}));
    REQUIRE(world.events_of<rrh::events::agent_dead>().empty());
  }
}
