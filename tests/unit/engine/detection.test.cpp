// Passive failure detection: phi-accrual and missed-heartbeat modes, stale (hung) agents,
// and liveness judged on the processor's clock only.
#include <catch2/catch.hpp>

#include <random>

#include "fixture.hpp"
#include "rrh/engine/detector.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

constexpr time_ms second_ms = 1000;

// Registers a1 on n1 and heartbeats n1 every second for `beats` beats; returns the time
// of the last heartbeat and feeds the same arrivals into `mirror`.
time_ms steady_heartbeats(engine_fixture& fixture, int beats, phi_detector& mirror) {
  fixture.register_agent("n1", "a1");
  mirror.heartbeat(fixture.now(), 1000);  // the first event of a node opens its window
  for (int beat = 0; beat < beats; ++beat) {
    fixture.advance(second_ms);
    fixture.heartbeat("n1");
    mirror.heartbeat(fixture.now(), 1000);
  }
  return fixture.now();
}

}  // namespace

TEST_CASE("silence makes a node's agents suspect, then dead", "[engine][detection]") {
  SECTION("phi-accrual: suspect and dead exactly when the detector predicts") {
    engine_fixture fixture;
    phi_detector mirror;
    const auto last_beat_ms = steady_heartbeats(fixture, 20, mirror);
    const auto& config = fixture.subject().config();
    const auto suspect_ms = mirror.time_at_phi(config.phi_suspect_threshold, config.acceptable_pause_ms,
                                               config.min_std_deviation_ms);
    const auto dead_ms =
        mirror.time_at_phi(config.phi_threshold, config.acceptable_pause_ms, config.min_std_deviation_ms);

    fixture.advance_to(suspect_ms - 1);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    fixture.advance_to(suspect_ms);
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);
    REQUIRE(fixture.events_of<events::agent_suspect>().size() == 1);
    REQUIRE(fixture.events_of<events::agent_suspect>()[0].phi >= config.phi_suspect_threshold);

    fixture.advance_to(dead_ms - 1);
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);
    fixture.advance_to(dead_ms);
    REQUIRE(fixture.times_of<events::agent_dead>() == std::vector<time_ms>{dead_ms});
    REQUIRE(fixture.events_of<events::agent_dead>()[0].silent_ms == dead_ms - last_beat_ms);

    // Steady 1 s beats: dead a few deviations past the mean plus the acceptable pause.
    const double mean_ms = mirror.mean_interval_ms();
    REQUIRE(mean_ms == Approx(1000.0).margin(30.0));
    const double floor_ms = mean_ms + static_cast<double>(config.acceptable_pause_ms);
    // Beats a second apart deviate less than the floor, so the floor is the deviation.
    const double deviation_ms = static_cast<double>(config.min_std_deviation_ms);
    const auto silence_ms = static_cast<double>(dead_ms - last_beat_ms);
    REQUIRE(silence_ms >= floor_ms);
    REQUIRE(silence_ms <= floor_ms + 6.0 * deviation_ms);
    REQUIRE(suspect_ms > last_beat_ms + 4000);
    REQUIRE(suspect_ms < dead_ms);
  }

  SECTION("phi-accrual: a heartbeat while suspect cancels the pending death") {
    engine_fixture fixture;
    phi_detector mirror;
    steady_heartbeats(fixture, 20, mirror);
    const auto& config = fixture.subject().config();
    const auto suspect_ms = mirror.time_at_phi(config.phi_suspect_threshold, config.acceptable_pause_ms,
                                               config.min_std_deviation_ms);
    const auto dead_ms =
        mirror.time_at_phi(config.phi_threshold, config.acceptable_pause_ms, config.min_std_deviation_ms);
    fixture.advance_to(suspect_ms);
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);

    fixture.heartbeat("n1");
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    fixture.advance_to(dead_ms + 100);
    REQUIRE(fixture.events_of<events::agent_dead>().empty());
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
  }

  SECTION("missed_heartbeats: suspect after exactly N intervals, dead after exactly M") {
    auto config = quiet_config();
    config.failure_detector = detector_mode::missed_heartbeats;
    config.missed_heartbeats_suspect = 2;
    config.missed_heartbeats_dead = 5;
    engine_fixture fixture(config);
    phi_detector unused;
    const auto last_beat_ms = steady_heartbeats(fixture, 3, unused);

    fixture.advance_to(last_beat_ms + 2 * second_ms - 1);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    fixture.advance_to(last_beat_ms + 2 * second_ms);
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);
    fixture.advance_to(last_beat_ms + 5 * second_ms - 1);
    REQUIRE(fixture.events_of<events::agent_dead>().empty());
    fixture.advance_to(last_beat_ms + 5 * second_ms);
    REQUIRE(fixture.times_of<events::agent_dead>() == std::vector<time_ms>{last_beat_ms + 5 * second_ms});
  }

  SECTION("missed_heartbeats: the interval is the one the node declares") {
    auto config = quiet_config();
    config.failure_detector = detector_mode::missed_heartbeats;
    engine_fixture fixture(config);
    fixture.node("n1").heartbeat_interval_ms = 250;
    fixture.register_agent("n1", "a1");
    fixture.heartbeat("n1");
    const auto last_beat_ms = fixture.now();
    fixture.advance_to(last_beat_ms + 5 * 250);
    REQUIRE(fixture.times_of<events::agent_dead>() == std::vector<time_ms>{last_beat_ms + 5 * 250});
  }
}

TEST_CASE("a stale agent is judged on its own, inside a living node", "[engine][detection]") {
  auto config = quiet_config();
  config.stale_grace_ms = 5000;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1");
  fixture.register_agent("n1", "a2");
  fixture.advance_with_heartbeats(fixture.now() + 3000, {"n1"});
  fixture.node("n1").stale_agents.insert("a1");
  fixture.heartbeat("n1");
  const auto stale_since_ms = fixture.now();

  SECTION("stale in a heartbeat: suspect at once") {
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);
    REQUIRE(fixture.times_of<events::agent_suspect>() == std::vector<time_ms>{stale_since_ms});
    REQUIRE(fixture.state_of("a2") == agent_state::healthy);
  }

  SECTION("still stale after stale_grace_ms: dead, while the node and its other agents live") {
    fixture.advance_with_heartbeats(stale_since_ms + 5000 - 1, {"n1"});
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);
    fixture.advance_with_heartbeats(stale_since_ms + 5000, {"n1"});
    REQUIRE(fixture.times_of<events::agent_dead>() == std::vector<time_ms>{stale_since_ms + 5000});
    REQUIRE(fixture.events_of<events::agent_dead>()[0].agent == "a1");
    REQUIRE(fixture.state_of("a2") == agent_state::healthy);
  }

  SECTION("a non-stale heartbeat within the grace makes it healthy and cancels the death") {
    fixture.advance_with_heartbeats(stale_since_ms + 2000, {"n1"});
    fixture.node("n1").stale_agents.clear();
    fixture.heartbeat("n1");
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    fixture.advance_with_heartbeats(stale_since_ms + 20'000, {"n1"});
    REQUIRE(fixture.events_of<events::agent_dead>().empty());
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
  }
}

TEST_CASE("liveness is judged on the processor's clock, not the sender's", "[engine][detection]") {
  // Two engines see the same arrivals; in one the sender's clock is wildly off.
  auto run = [](std::uint64_t skew_ms, bool ahead) {
    engine_fixture fixture;
    fixture.register_agent("n1", "a1");
    for (int beat = 0; beat < 10; ++beat) {
      fixture.advance(1000);
      auto message = fixture.heartbeat_event(fixture.node("n1"));
      message.header.ts_ms = ahead ? message.header.ts_ms + skew_ms : message.header.ts_ms - skew_ms;
      fixture.deliver(message);
    }
    fixture.advance(60'000);
    return fixture.times_of<events::agent_dead>();
  };
  const auto honest = run(0, true);
  REQUIRE(honest.size() == 1);

  SECTION("a sender clock a day ahead changes nothing") { REQUIRE(run(86'400'000, true) == honest); }
  SECTION("a sender clock a year behind changes nothing") {
    REQUIRE(run(365ull * 86'400'000, false) == honest);
  }
  SECTION("a heartbeat stamped long ago still counts as arriving now") {
    engine_fixture fixture;
    fixture.register_agent("n1", "a1");
    fixture.advance(30'000);  // a1 is dead by now
    REQUIRE(fixture.state_of("a1") == agent_state::recovering);
    auto message = fixture.heartbeat_event(fixture.node("n1"));
    message.header.ts_ms = 1;
    fixture.deliver(message);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    REQUIRE(fixture.subject().node("n1")->last_heartbeat_ms == fixture.now());
  }
}

TEST_CASE("time_at_phi is the first millisecond at which phi reaches the threshold", "[engine][detection]") {
  // Random heartbeat histories and thresholds: the closed form, settled to the
  // millisecond, must agree with phi() evaluated on both sides of it.
  std::mt19937_64 random(GENERATE(1u, 2u, 3u, 4u));
  std::uniform_int_distribution<std::uint64_t> interval(1, 5000);
  std::uniform_int_distribution<std::uint64_t> pause(0, 10'000);
  std::uniform_int_distribution<std::uint64_t> deviation_floor(1, 500);
  std::uniform_real_distribution<double> threshold(0.5, 30.0);
  for (int history = 0; history < 300; ++history) {
    phi_detector detector;
    time_ms now = 1'700'000'000'000;
    const auto declared = interval(random);
    detector.heartbeat(now, declared);
    const int beats = static_cast<int>(random() % 150);
    for (int beat = 0; beat < beats; ++beat) {
      now += interval(random) / (1 + random() % 4);
      detector.heartbeat(now, declared);
    }
    const auto acceptable_pause = pause(random);
    const auto floor = deviation_floor(random);
    for (const double level : {threshold(random), threshold(random), 8.0, 5.0}) {
      INFO("history " << history << " threshold " << level);
      const auto at = detector.time_at_phi(level, acceptable_pause, floor);
      REQUIRE(at > now);
      CHECK(detector.phi(at, acceptable_pause, floor) >= level);
      CHECK(detector.phi(at - 1, acceptable_pause, floor) < level);
    }
  }
}

TEST_CASE("a node's first heartbeat restarts detection on the interval it promises", "[engine][detection]") {
  // Registration opens the window with the default interval (1 s); the node then beats
  // every 100 ms. Judged by the default, its death would take seconds to notice.
  auto config = quiet_config();
  config.acceptable_pause_ms = 0;
  config.min_std_deviation_ms = 10;
  engine_fixture fixture(config);
  fixture.node("n1").heartbeat_interval_ms = 100;
  fixture.register_agent("n1", "a1");
  fixture.advance_with_heartbeats(fixture.now() + 1000, {"n1"});  // ten beats, 100 ms apart
  const auto last_beat_ms = fixture.now();
  fixture.advance_to(last_beat_ms + 500);
  const auto deaths = fixture.times_of<events::agent_dead>();
  REQUIRE(deaths.size() == 1);
  CHECK(deaths[0] - last_beat_ms < 300);
}
