#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>

#include "process_info.hpp"
#include "rrh/shim.hpp"
#include "stale_recover.hpp"

using rrh::commands::agent_recover;
using rrh::shim_detail::is_stale_recover;

TEST_CASE("a node refuses a recover of its agent that names another incarnation",
          "[shim][recover]") {
  constexpr std::uint64_t own = 0x1234'5678;
  SECTION("an earlier incarnation of the node hosting the agent is stale") {
    CHECK(is_stale_recover(agent_recover{.agent = "a1", .attempt = 1, .incarnation = own - 1}, true,
                           own));
  }
  SECTION("the current incarnation is acted on: the processor judged this start dead (hung)") {
    CHECK_FALSE(is_stale_recover(agent_recover{.agent = "a1", .attempt = 1, .incarnation = own},
                                 true, own));
  }
  SECTION("no incarnation (an older processor) is acted on as before") {
    CHECK_FALSE(is_stale_recover(agent_recover{"a1", 1}, true, own));
  }
  SECTION("an agent hosted elsewhere is the supervisor's to judge") {
    CHECK_FALSE(is_stale_recover(agent_recover{.agent = "a1", .attempt = 1, .incarnation = own - 1},
                                 false, own));
  }
}

TEST_CASE("a supervisor's chosen incarnation names one start only", "[shim][recover]") {
  SECTION("the first shim of a process takes it, a second draws a fresh one") {
    constexpr std::uint64_t chosen = 4'242'424'242;
    CHECK(rrh::shim_detail::start_incarnation(chosen) == chosen);
    const auto second = rrh::shim_detail::start_incarnation(chosen);
    CHECK(second != chosen);
    CHECK(second != 0);
  }
  SECTION("none chosen: a fresh one") { CHECK(rrh::shim_detail::start_incarnation(0) != 0); }
}

TEST_CASE("shim_config reads RRH_INCARNATION in a process that leads its group only",
          "[shim][config]") {
  ::setenv("RRH_INCARNATION", "987654321", 1);
  auto loaded = rrh::shim_config::from_environment();
  ::unsetenv("RRH_INCARNATION");
  REQUIRE(loaded);
  // What a process started by rrh-launch (a group of its own) reads; any other process,
  // such as one its child starts, ignores the inherited variable.
  CHECK(loaded->incarnation == (::getpgrp() == ::getpid() ? 987654321u : 0u));
}
