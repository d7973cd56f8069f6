// The config loaders against YAML that is valid but not what they expect: keys that are
// maps, lists or null, aliases, deep nesting. Each input the config fuzzers turned into a
// crash is a case here; every one must be an errc::config error, never an exception.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "config.hpp"
#include "processor_config.hpp"
#include "rrh/shim.hpp"

namespace {

// Writes `text` to a file of its own under the temp directory and removes it at the end.
class yaml_file {
 public:
  explicit yaml_file(const std::string& text)
      : path_((std::filesystem::temp_directory_path() /
               ("rrh-badinput-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) +
                ".yaml"))
                  .string()) {
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~yaml_file() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  yaml_file(const yaml_file&) = delete;
  yaml_file& operator=(const yaml_file&) = delete;
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

// YAML whose keys are not plain names. The first two are inputs shim_config_fuzz found
// (shim_config::from_yaml_file threw YAML::TypedBadConversion out of the loader).
const std::vector<std::string>& keys_that_are_not_names() {
  static const std::vector<std::string> inputs = {
      "{node_id: \"n1\", outbox_overflow: error, heartbeat_interval_ms}: 0x10}\n",
      "{nod4 errzr,10}:",
      "? [a, b]\n: 1\n",
      "~: 5\n",
      "node_id: n1\n? {x: 1}\n: y\n",
  };
  return inputs;
}

}  // namespace

TEST_CASE("a shim config whose key is not a name is an error, not an exception",
          "[badinput][shim][config]") {
  for (const auto& text : keys_that_are_not_names()) {
    CAPTURE(text);
    const yaml_file file(text);
    const auto loaded = rrh::shim_config::from_yaml_file(file.path());
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().code == rrh::errc::config);
  }
}

TEST_CASE("a broker config whose key is not a name is an error", "[badinput][broker][config]") {
  for (const auto& text : keys_that_are_not_names()) {
    CAPTURE(text);
    const yaml_file file(text);
    const auto loaded = rrh::broker::load_config_file(file.path(), rrh::broker::config{});
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().code == rrh::errc::config);
  }
}

TEST_CASE("a processor config whose key is not a name is an error", "[badinput][processor][config]") {
  for (const auto& text : keys_that_are_not_names()) {
    CAPTURE(text);
    const auto parsed = rrh::processor::parse_processor_settings(text, "test");
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code == rrh::errc::config);
  }
  SECTION("inside the resilience section too") {
    const auto parsed =
        rrh::processor::parse_processor_settings("resilience:\n  [a]: 1\n", "test");
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code == rrh::errc::config);
  }
}

TEST_CASE("config loaders refuse structure where a value belongs", "[badinput][config]") {
  for (const std::string text :
       {"node_id: [a, b]\n", "node_id: {a: 1}\n", "heartbeat_interval_ms: -5\n",
        "heartbeat_interval_ms: 99999999999999999999999\n", "outbox_overflow: ~\n"}) {
    CAPTURE(text);
    const yaml_file file(text);
    const auto loaded = rrh::shim_config::from_yaml_file(file.path());
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().code == rrh::errc::config);
  }
  for (const std::string text :
       {"node_id: [a, b]\n", "resilience: [1, 2]\n", "resilience:\n  max_task_retries: {a: 1}\n",
        "resilience:\n  non_retryable_errors: [[a]]\n", "resilience:\n  jitter_seed: 1e999\n",
        "a: &x [1]\nresilience: *x\n"}) {
    CAPTURE(text);
    const auto parsed = rrh::processor::parse_processor_settings(text, "test");
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code == rrh::errc::config);
  }
}

TEST_CASE("deeply nested YAML is an error, not a stack overflow", "[badinput][config]") {
  const std::string nested = std::string(100'000, '[') + std::string(100'000, ']');
  const auto parsed = rrh::processor::parse_processor_settings("node_id: " + nested, "test");
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().code == rrh::errc::config);
  const yaml_file file("node_id: " + nested);
  CHECK_FALSE(rrh::shim_config::from_yaml_file(file.path()));
  CHECK_FALSE(rrh::broker::load_config_file(file.path(), rrh::broker::config{}));
}
