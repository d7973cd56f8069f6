#include <catch2/catch.hpp>

#include "command_dedup.hpp"

using rrh::shim_detail::command_dedup;
using seen = command_dedup::seen;

TEST_CASE("command_dedup applies each command id once", "[shim][dedup]") {
  command_dedup dedup(4);

  SECTION("a fresh id becomes pending, then done with its result") {
    REQUIRE(dedup.admit(7).state == seen::fresh);
    REQUIRE(dedup.admit(7).state == seen::pending);
    dedup.complete(7, rrh::command_result::refuse("no handler"));
    const auto again = dedup.admit(7);
    REQUIRE(again.state == seen::done);
    REQUIRE_FALSE(again.result.accepted);
    REQUIRE(again.result.reason == "no handler");
  }
  SECTION("the window forgets the oldest id first") {
    for (std::uint64_t id = 1; id <= 4; ++id) REQUIRE(dedup.admit(id).state == seen::fresh);
    REQUIRE(dedup.admit(5).state == seen::fresh);
    REQUIRE(dedup.size() == 4);
    REQUIRE(dedup.admit(2).state == seen::pending);
    REQUIRE(dedup.admit(1).state == seen::fresh);  // aged out
  }
  SECTION("a forgotten id is admitted again as fresh") {
    REQUIRE(dedup.admit(9).state == seen::fresh);
    dedup.forget(9);
    REQUIRE(dedup.size() == 0);
    REQUIRE(dedup.admit(9).state == seen::fresh);
    REQUIRE(dedup.size() == 1);
  }
}
