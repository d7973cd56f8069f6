// The resilience configuration keeps the seed's five keys and defaults, reads durations in
// every documented form, names the key in every error, applies overrides all or nothing,
// and survives a --print-config → load round trip.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>

#include "processor_config.hpp"
#include "rrh/engine/config.hpp"

namespace {

using rrh::setting_value;
using rrh::settings;
using rrh::engine::resilience_config;

std::string show(const setting_value& value) {
  return std::visit(
      [](const auto& held) -> std::string {
        using held_t = std::decay_t<decltype(held)>;
        if constexpr (std::is_same_v<held_t, std::string>) {
          return "'" + held + "'";
        } else if constexpr (std::is_same_v<held_t, bool>) {
          return held ? "true" : "false";
        } else {
          return std::to_string(held);
        }
      },
      value);
}

/// True when `result` is an errc::config error whose detail contains `needle`.
template <class Result>
bool fails_naming(const Result& result, const std::string& needle) {
  if (result.has_value()) return false;
  UNSCOPED_INFO("error: " << result.error().detail);
  return result.error().code == rrh::errc::config &&
         result.error().detail.find(needle) != std::string::npos;
}

/// A non-default value for every key; all together they pass validate().
settings every_key_changed() {
  return {
      {"max_recovery_attempts", std::int64_t{7}},
      {"recovery_cooldown", std::string("90s")},
      {"error_threshold", std::int64_t{12}},
      {"agent_health_check_interval", 45.5},
      {"task_retry_delay", std::string("250ms")},
      {"max_task_retries", std::int64_t{9}},
      {"retry_backoff", std::string("exponential")},
      {"retry_backoff_factor", 1.5},
      {"task_retry_delay_max", std::string("2m")},
      {"non_retryable_errors", std::string("ValueError, Auth \"Denied\": yes")},
      {"task_timeout", std::string("10m")},
      {"error_window", std::string("1h")},
      {"shutdown_grace", std::int64_t{12}},
      {"episode_timeout", std::string("2h")},
      {"failure_detector", std::string("missed_heartbeats")},
      {"phi_suspect_threshold", 3.25},
      {"phi_threshold", std::int64_t{11}},
      {"acceptable_pause", 0.75},
      {"min_std_deviation", std::string("40ms")},
      {"missed_heartbeats_suspect", std::int64_t{3}},
      {"missed_heartbeats_dead", std::int64_t{8}},
      {"stale_grace", std::int64_t{7}},
      {"probe_timeout", std::int64_t{20}},
      {"probe_slow", 1.25},
      {"recovery_timeout", std::int64_t{45}},
      {"recovery_rate_per_s", 2.5},
      {"recovery_burst", std::int64_t{10}},
      {"recovery_reset_after", std::string("15m")},
      {"disruption_threshold", 0.7},
      {"disruption_recovery_rate_per_s", 0.01},
      {"disruption_min_nodes", std::int64_t{25}},
      {"disruption_window", std::string("20s")},
      {"command_retransmit_initial", std::string("500ms")},
      {"command_retransmit_max", std::int64_t{10}},
      {"max_agents", std::int64_t{1000}},
      {"max_nodes", std::int64_t{50}},
      {"max_tasks_per_agent", std::int64_t{20}},
      {"max_tasks", std::int64_t{5000}},
      {"max_pending_commands", std::int64_t{3000}},
      {"max_episodes", std::int64_t{4}},
      {"node_retention", std::string("30m")},
      {"episode_retention", std::string("2h")},
      {"jitter_seed", std::int64_t{424242}},
  };
}

int temp_file_count = 0;

/// A file in the temporary directory, removed at the end of the test.
class temp_file {
 public:
  explicit temp_file(const std::string& text)
      : path_(std::filesystem::temp_directory_path() /
              ("rrh-config-test-" + std::to_string(::getpid()) + "-" +
               std::to_string(temp_file_count++) + ".yaml")) {
    std::ofstream(path_) << text;
  }
  ~temp_file() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

rrh::expected<rrh::processor::processor_settings> load_text(const std::string& text) {
  temp_file file(text);
  return rrh::processor::load_processor_settings(file.path());
}

void check_same(const rrh::processor::processor_settings& left,
                const rrh::processor::processor_settings& right) {
  CHECK(left.events_endpoint == right.events_endpoint);
  CHECK(left.publish_endpoint == right.publish_endpoint);
  CHECK(left.commands_endpoint == right.commands_endpoint);
  CHECK(left.control_endpoint == right.control_endpoint);
  CHECK(left.state_path == right.state_path);
  CHECK(left.node_id == right.node_id);
  CHECK(left.log_level == right.log_level);
  CHECK(left.resilience.non_retryable_errors == right.resilience.non_retryable_errors);
  for (const auto& key : rrh::engine::config_keys()) {
    const auto expected_value = rrh::engine::get_config_key(left.resilience, key.name);
    const auto actual_value = rrh::engine::get_config_key(right.resilience, key.name);
    INFO(key.name << ": " << show(expected_value) << " vs " << show(actual_value));
    CHECK(expected_value == actual_value);
  }
}

}  // namespace

TEST_CASE("defaults are the seed's five keys with the seed's values", "[engine][config]") {
  const resilience_config defaults;
  CHECK(defaults.validate().has_value());
  CHECK(defaults.max_recovery_attempts == 3);
  CHECK(defaults.recovery_cooldown_ms == 60'000);
  CHECK(defaults.error_threshold == 5);
  CHECK(defaults.agent_health_check_interval_ms == 300'000);
  CHECK(defaults.task_retry_delay_ms == 30'000);

  std::set<std::string> seed_keys;
  for (const auto& key : rrh::engine::config_keys()) {
    if (key.from_seed) seed_keys.emplace(key.name);
  }
  CHECK(seed_keys == std::set<std::string>{"max_recovery_attempts", "recovery_cooldown",
                                           "error_threshold", "agent_health_check_interval",
                                           "task_retry_delay"});
  // In the seed's units: counts, and durations in seconds.
  CHECK(rrh::engine::get_config_key(defaults, "max_recovery_attempts") ==
        setting_value{std::int64_t{3}});
  CHECK(rrh::engine::get_config_key(defaults, "recovery_cooldown") == setting_value{60.0});
  CHECK(rrh::engine::get_config_key(defaults, "error_threshold") == setting_value{std::int64_t{5}});
  CHECK(rrh::engine::get_config_key(defaults, "agent_health_check_interval") ==
        setting_value{300.0});
  CHECK(rrh::engine::get_config_key(defaults, "task_retry_delay") == setting_value{30.0});
}

TEST_CASE("the key table is complete, unique and documented", "[engine][config]") {
  const auto& keys = rrh::engine::config_keys();
  std::set<std::string> names;
  for (const auto& key : keys) {
    INFO(key.name);
    CHECK(names.emplace(key.name).second);
    CHECK_FALSE(key.meaning.empty());
    CHECK(std::set<std::string>{"s", "count", "ratio", "1/s", "name", "list"}.count(
              std::string(key.unit)) == 1);
    // YAML names drop the _ms suffix; durations are written in seconds.
    CHECK(key.name.find("_ms") == std::string_view::npos);
  }
  // every_key_changed() covers every key, so the round trips below test all of them.
  const auto changed = every_key_changed();
  CHECK(changed.size() == keys.size());
  for (const auto& [name, value] : changed) {
    INFO(name);
    CHECK(names.count(name) == 1);
  }
  CHECK(rrh::engine::to_string(rrh::engine::backoff_policy::exponential_full_jitter) ==
        std::string("exponential_full_jitter"));
  CHECK(rrh::engine::to_string(rrh::engine::detector_mode::missed_heartbeats) ==
        std::string("missed_heartbeats"));
}

TEST_CASE("parse_duration_ms reads seconds, fractions and units", "[engine][config]") {
  using rrh::engine::parse_duration_ms;
  const auto ms = [](const setting_value& value) -> std::uint64_t {
    auto parsed = parse_duration_ms(value);
    INFO(show(value) << (parsed ? "" : " → " + parsed.error().detail));
    REQUIRE(parsed.has_value());
    return *parsed;
  };
  SECTION("an integer is seconds") {
    CHECK(ms(std::int64_t{0}) == 0);
    CHECK(ms(std::int64_t{30}) == 30'000);
  }
  SECTION("a double is seconds with fractions, rounded to milliseconds") {
    CHECK(ms(0.25) == 250);
    CHECK(ms(1.5) == 1500);
    CHECK(ms(0.1) == 100);
    CHECK(ms(0.0004) == 0);
  }
  SECTION("a string carries a unit, or is seconds without one") {
    CHECK(ms(std::string("250ms")) == 250);
    CHECK(ms(std::string("2s")) == 2000);
    CHECK(ms(std::string("1.5s")) == 1500);
    CHECK(ms(std::string("5m")) == 300'000);
    CHECK(ms(std::string("1h")) == 3'600'000);
    CHECK(ms(std::string("30")) == 30'000);
    CHECK(ms(std::string(".5")) == 500);
    CHECK(ms(std::string(" 250 ms ")) == 250);
  }
  SECTION("negative, NaN, infinite, empty, garbage and overflowing values are errors") {
    const std::vector<setting_value> invalid{std::int64_t{-1},
                                             -0.5,
                                             std::nan(""),
                                             std::numeric_limits<double>::infinity(),
                                             1e30,
                                             std::numeric_limits<std::int64_t>::max(),
                                             true,
                                             std::string(""),
                                             std::string("  "),
                                             std::string("abc"),
                                             std::string("-5s"),
                                             std::string("5x"),
                                             std::string("5 sec"),
                                             std::string("nan"),
                                             std::string("inf"),
                                             std::string("1e400"),
                                             std::string("99999999999999999h"),
                                             std::string("s"),
                                             std::string("1.2.3s")};
    for (const auto& value : invalid) {
      INFO(show(value));
      const auto parsed = parse_duration_ms(value);
      REQUIRE_FALSE(parsed.has_value());
      CHECK(parsed.error().code == rrh::errc::config);
    }
  }
}

TEST_CASE("set_config_key converts each kind and names the key in every error",
          "[engine][config]") {
  resilience_config config;
  using rrh::engine::set_config_key;

  SECTION("durations, counts, ratios, names and lists are set") {
    REQUIRE(set_config_key(config, "recovery_cooldown", std::int64_t{90}));
    CHECK(config.recovery_cooldown_ms == 90'000);
    REQUIRE(set_config_key(config, "task_retry_delay", std::string("1.5s")));
    CHECK(config.task_retry_delay_ms == 1500);
    REQUIRE(set_config_key(config, "max_recovery_attempts", std::int64_t{1000}));
    CHECK(config.max_recovery_attempts == 1000);
    REQUIRE(set_config_key(config, "error_threshold", 8.0));  // a whole double is a count
    CHECK(config.error_threshold == 8);
    REQUIRE(set_config_key(config, "retry_backoff_factor", std::int64_t{3}));
    CHECK(config.retry_backoff_factor == 3.0);
    REQUIRE(set_config_key(config, "retry_backoff", std::string("fixed")));
    CHECK(config.retry_backoff == rrh::engine::backoff_policy::fixed);
    REQUIRE(set_config_key(config, "failure_detector", std::string("missed_heartbeats")));
    CHECK(config.failure_detector == rrh::engine::detector_mode::missed_heartbeats);
    REQUIRE(
        set_config_key(config, "non_retryable_errors", std::string(" ValueError, ,AuthError,")));
    CHECK(config.non_retryable_errors == std::vector<std::string>{"ValueError", "AuthError"});
    CHECK(rrh::engine::get_config_key(config, "non_retryable_errors") ==
          setting_value{std::string("ValueError,AuthError")});
    REQUIRE(set_config_key(config, "non_retryable_errors", std::string("")));
    CHECK(config.non_retryable_errors.empty());
    REQUIRE(set_config_key(config, "agent_health_check_interval", std::string("100ms")));
    CHECK(config.agent_health_check_interval_ms == 100);
  }

  SECTION("an unknown key, a wrong type or an out-of-range value is an error naming the key") {
    const std::vector<std::pair<std::string, setting_value>> invalid{
        {"recovery_cooldwn", std::int64_t{60}},
        {"recovery_cooldown_ms", std::int64_t{60}},
        {"recovery_cooldown", std::int64_t{-60}},
        {"recovery_cooldown", true},
        {"recovery_cooldown", std::string("soon")},
        {"recovery_cooldown", std::string("2d")},
        {"task_retry_delay", std::string("25h")},
        {"max_recovery_attempts", std::int64_t{1001}},
        {"max_recovery_attempts", std::int64_t{-1}},
        {"max_recovery_attempts", 2.5},
        {"max_recovery_attempts", std::string("3")},
        {"error_threshold", std::int64_t{0}},
        {"agent_health_check_interval", std::string("99ms")},
        {"retry_backoff_factor", 0.5},
        {"retry_backoff_factor", std::int64_t{101}},
        {"retry_backoff_factor", std::nan("")},
        {"retry_backoff_factor", std::string("2")},
        {"retry_backoff", std::string("linear")},
        {"retry_backoff", std::int64_t{1}},
        {"failure_detector", std::string("gossip")},
        {"phi_threshold", 0.0},
        {"phi_suspect_threshold", std::int64_t{-1}},
        {"missed_heartbeats_suspect", std::int64_t{0}},
        {"recovery_rate_per_s", 0.0},
        {"recovery_burst", std::int64_t{0}},
        {"min_std_deviation", std::int64_t{0}},
        {"max_agents", std::int64_t{0}},
        {"max_episodes", std::int64_t{0}},
        {"non_retryable_errors", std::int64_t{5}},
    };
    for (const auto& [key, value] : invalid) {
      INFO(key << " = " << show(value));
      resilience_config changed;
      const auto result = set_config_key(changed, key, value);
      CHECK(fails_naming(result, key + ":"));
      // A failed set leaves the configuration as it was.
      CHECK(rrh::engine::get_config_key(changed, "recovery_cooldown") == setting_value{60.0});
      CHECK(changed.max_recovery_attempts == 3);
      CHECK(changed.retry_backoff_factor == 2.0);
    }
  }

  SECTION("get_config_key gives back what set_config_key took, for every key") {
    for (const auto& [key, value] : every_key_changed()) {
      INFO(key << " = " << show(value));
      REQUIRE(set_config_key(config, key, value));
      const auto read = rrh::engine::get_config_key(config, key);
      resilience_config copy;
      REQUIRE(set_config_key(copy, key, read));
      CHECK(rrh::engine::get_config_key(copy, key) == read);
      CHECK_FALSE(read == rrh::engine::get_config_key(resilience_config{}, key));
    }
    CHECK(config.validate().has_value());
    CHECK(std::get<std::string>(rrh::engine::get_config_key(config, "no_such_key")).empty());
  }
}

TEST_CASE("validate checks ranges and relations and names the key", "[engine][config]") {
  resilience_config config;
  std::string key;
  SECTION("task_retry_delay_max below task_retry_delay") {
    config.task_retry_delay_max_ms = config.task_retry_delay_ms - 1;
    key = "task_retry_delay_max:";
  }
  SECTION("phi_suspect_threshold above phi_threshold") {
    config.phi_suspect_threshold = config.phi_threshold + 0.5;
    key = "phi_suspect_threshold:";
  }
  SECTION("missed_heartbeats_suspect above missed_heartbeats_dead") {
    config.missed_heartbeats_suspect = config.missed_heartbeats_dead + 1;
    key = "missed_heartbeats_suspect:";
  }
  SECTION("command_retransmit_initial above command_retransmit_max") {
    config.command_retransmit_initial_ms = config.command_retransmit_max_ms + 1;
    key = "command_retransmit_initial:";
  }
  SECTION("probe_slow above probe_timeout") {
    config.probe_slow_ms = config.probe_timeout_ms + 1;
    key = "probe_slow:";
  }
  SECTION("a field set directly out of its range") {
    config.agent_health_check_interval_ms = 99;
    key = "agent_health_check_interval:";
  }
  SECTION("task_retry_delay above one day") {
    config.task_retry_delay_ms = 86'400'001;
    config.task_retry_delay_max_ms = config.task_retry_delay_ms;
    key = "task_retry_delay:";
  }
  SECTION("a limit of zero") {
    config.max_pending_commands = 0;
    key = "max_pending_commands:";
  }
  SECTION("an empty name in non_retryable_errors") {
    config.non_retryable_errors = {"ValueError", ""};
    key = "non_retryable_errors:";
  }
  SECTION("the limits of each range are accepted") {
    config.max_recovery_attempts = 1000;
    config.error_threshold = 1;
    config.task_retry_delay_ms = 86'400'000;
    config.task_retry_delay_max_ms = 86'400'000;
    config.retry_backoff_factor = 100.0;
    config.phi_suspect_threshold = config.phi_threshold;
    config.missed_heartbeats_suspect = 1;
    config.missed_heartbeats_dead = 1;
    config.agent_health_check_interval_ms = 100;
    config.recovery_burst = 1;
    config.command_retransmit_initial_ms = config.command_retransmit_max_ms;
    CHECK(config.validate().has_value());
    return;
  }
  CHECK(fails_naming(config.validate(), key));
}

TEST_CASE("apply_overrides applies every key or none", "[engine][config]") {
  resilience_config base;
  base.max_task_retries = 4;

  SECTION("all keys of a valid block are applied over the base") {
    const auto applied =
        rrh::engine::apply_overrides(base, settings{{"recovery_cooldown", std::int64_t{120}},
                                                    {"task_retry_delay", std::string("2s")}});
    REQUIRE(applied.has_value());
    CHECK(applied->recovery_cooldown_ms == 120'000);
    CHECK(applied->task_retry_delay_ms == 2000);
    CHECK(applied->max_task_retries == 4);  // untouched keys keep the base's value
  }
  SECTION("every key at once") {
    const auto applied = rrh::engine::apply_overrides(base, every_key_changed());
    REQUIRE(applied.has_value());
    CHECK(applied->jitter_seed == 424242);
    CHECK(applied->non_retryable_errors ==
          std::vector<std::string>{"ValueError", "Auth \"Denied\": yes"});
  }
  SECTION("one bad key fails the whole block, naming that key") {
    const auto applied =
        rrh::engine::apply_overrides(base, settings{{"error_threshold", std::int64_t{9}},
                                                    {"recovery_cooldown", std::int64_t{120}},
                                                    {"task_retry_delay", std::int64_t{-5}}});
    CHECK(fails_naming(applied, "task_retry_delay:"));
  }
  SECTION("an unknown key fails the whole block") {
    const auto applied = rrh::engine::apply_overrides(
        base,
        settings{{"error_threshold", std::int64_t{9}}, {"max_recovery_attemps", std::int64_t{2}}});
    CHECK(fails_naming(applied, "max_recovery_attemps: unknown key"));
  }
  SECTION("keys valid alone but not together fail, naming the relation's key") {
    const auto applied =
        rrh::engine::apply_overrides(base, settings{{"task_retry_delay", std::int64_t{600}}});
    CHECK(fails_naming(applied, "task_retry_delay_max:"));
    const auto both =
        rrh::engine::apply_overrides(base, settings{{"task_retry_delay", std::int64_t{600}},
                                                    {"task_retry_delay_max", std::int64_t{900}}});
    CHECK(both.has_value());
  }
  // The base is never modified, whatever happened.
  CHECK(base.recovery_cooldown_ms == 60'000);
  CHECK(base.error_threshold == 5);
  CHECK(base.task_retry_delay_ms == 30'000);
}

TEST_CASE("load_processor_settings reads the processor's YAML file", "[engine][config]") {
  SECTION("a full file sets every top-level key and resilience keys in every form") {
    const auto loaded = load_text(R"(
events: tcp://10.0.0.5:8702
publish: "tcp://10.0.0.5:8701"
commands: tcp://10.0.0.5:8703
control: tcp://127.0.0.1:9705
state: /var/lib/rrh/state.db
node_id: processor-2
log_level: debug
resilience:
  max_recovery_attempts: 4
  recovery_cooldown: 90
  error_threshold: 7
  agent_health_check_interval: 2.5
  task_retry_delay: 250ms
  task_retry_delay_max: 5m
  retry_backoff: fixed
  retry_backoff_factor: 3
  non_retryable_errors: [ValueError, "AuthError"]
  failure_detector: missed_heartbeats
  phi_threshold: 9.5
  error_window: 1h
)");
    REQUIRE(loaded.has_value());
    const auto& settings = *loaded;
    CHECK(settings.events_endpoint == "tcp://10.0.0.5:8702");
    CHECK(settings.publish_endpoint == "tcp://10.0.0.5:8701");
    CHECK(settings.commands_endpoint == "tcp://10.0.0.5:8703");
    CHECK(settings.control_endpoint == "tcp://127.0.0.1:9705");
    CHECK(settings.state_path == "/var/lib/rrh/state.db");
    CHECK(settings.node_id == "processor-2");
    CHECK(settings.log_level == "debug");
    const auto& resilience = settings.resilience;
    CHECK(resilience.max_recovery_attempts == 4);
    CHECK(resilience.recovery_cooldown_ms == 90'000);
    CHECK(resilience.error_threshold == 7);
    CHECK(resilience.agent_health_check_interval_ms == 2500);
    CHECK(resilience.task_retry_delay_ms == 250);
    CHECK(resilience.task_retry_delay_max_ms == 300'000);
    CHECK(resilience.retry_backoff == rrh::engine::backoff_policy::fixed);
    CHECK(resilience.retry_backoff_factor == 3.0);
    CHECK(resilience.non_retryable_errors == std::vector<std::string>{"ValueError", "AuthError"});
    CHECK(resilience.failure_detector == rrh::engine::detector_mode::missed_heartbeats);
    CHECK(resilience.phi_threshold == 9.5);
    CHECK(resilience.error_window_ms == 3'600'000);
    CHECK(resilience.max_task_retries == 3);  // absent keys keep their defaults
  }
  SECTION("an empty file keeps every default") {
    const auto loaded = load_text("");
    REQUIRE(loaded.has_value());
    check_same(*loaded, rrh::processor::processor_settings{});
  }
  SECTION("a comma-separated string works for non_retryable_errors too") {
    const auto loaded = load_text("resilience:\n  non_retryable_errors: ValueError, AuthError\n");
    REQUIRE(loaded.has_value());
    CHECK(loaded->resilience.non_retryable_errors ==
          std::vector<std::string>{"ValueError", "AuthError"});
  }
  SECTION("every mistake is an error naming the key") {
    const std::vector<std::pair<std::string, std::string>> invalid{
        {"resilience:\n  recovery_cooldwn: 60\n", "resilience.recovery_cooldwn: unknown key"},
        {"events_in: tcp://127.0.0.1:7702\n", "events_in: unknown key"},
        {"resilience:\n  error_threshold: five\n", "resilience.error_threshold:"},
        {"resilience:\n  error_threshold: true\n", "resilience.error_threshold:"},
        {"resilience:\n  task_retry_delay: -5\n", "resilience.task_retry_delay:"},
        {"resilience:\n  task_retry_delay: -0.5\n", "resilience.task_retry_delay:"},
        {"resilience:\n  task_retry_delay:\n", "resilience.task_retry_delay:"},
        {"resilience:\n  retry_backoff: [fixed]\n", "resilience.retry_backoff:"},
        {"resilience:\n  non_retryable_errors: [[a]]\n", "resilience.non_retryable_errors:"},
        {"resilience:\n  non_retryable_errors: [\"a,b\"]\n", "resilience.non_retryable_errors:"},
        {"resilience:\n  recovery_cooldown: 60\n  recovery_cooldown: 30\n",
         "resilience.recovery_cooldown: repeated key"},
        {"resilience:\n  task_retry_delay: 600\n", "resilience.task_retry_delay_max:"},
        {"resilience: 5\n", "resilience:"},
        {"events: [a, b]\n", "events:"},
        {"node_id: \"bad id\"\n", "node_id:"},
        {"state: \"\"\n", "state:"},
        {"log_level: loud\n", "log_level:"},
        {"- just\n- a list\n", "expected a mapping"},
        {"events: [unclosed\n", "config file"},
    };
    for (const auto& [text, needle] : invalid) {
      INFO(text);
      CHECK(fails_naming(load_text(text), needle));
    }
  }
  SECTION("a missing file is an error naming it") {
    const auto loaded = rrh::processor::load_processor_settings("/nonexistent/rrh/processor.yaml");
    CHECK(fails_naming(loaded, "/nonexistent/rrh/processor.yaml"));
  }
}

TEST_CASE("render_processor_settings loads back to the same settings", "[engine][config]") {
  rrh::processor::processor_settings settings;
  SECTION("defaults") {}
  SECTION("every key changed, with text that needs quoting") {
    settings.events_endpoint = "tcp://[::1]:8702";
    settings.publish_endpoint = "ipc:///tmp/rrh #1";
    settings.commands_endpoint = "tcp://127.0.0.1:8703";
    settings.control_endpoint = R"(inproc://control: "quoted" \ back)";
    settings.state_path = "/tmp/state with spaces\tand tab.db";
    settings.node_id = "processor@host-1";
    settings.log_level = "warn";
    auto changed = rrh::engine::apply_overrides(settings.resilience, every_key_changed());
    REQUIRE(changed.has_value());
    settings.resilience = *changed;
  }
  const std::string text = rrh::processor::render_processor_settings(settings);
  INFO(text);
  // Every key is written, each with a comment.
  for (const auto& key : rrh::engine::config_keys()) {
    CHECK(text.find("  " + std::string(key.name) + ": ") != std::string::npos);
  }
  CHECK(text.find("recovery_cooldown: ") != std::string::npos);
  CHECK(text.find("# least time between two recoveries of one agent") != std::string::npos);

  const auto loaded = load_text(text);
  if (!loaded) FAIL(loaded.error().detail);
  check_same(settings, *loaded);
}
