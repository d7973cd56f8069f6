#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "rrh/shim.hpp"

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST_CASE("shim_config defaults are valid and match the documentation", "[shim][config]") {
  const rrh::shim_config config;
  REQUIRE(config.validate());
  REQUIRE(config.heartbeat_interval_ms == 1000);
  REQUIRE(config.events_endpoint == "tcp://127.0.0.1:7701");
  REQUIRE(config.commands_endpoint == "tcp://127.0.0.1:7704");
  REQUIRE(config.outbox_overflow == rrh::overflow_policy::block);
}

TEST_CASE("shim_config reads YAML", "[shim][config]") {
  SECTION("every key is applied") {
    const auto path = write_temp("rrh_shim_config_ok.yaml",
                                 "node_id: worker-7\nheartbeat_interval_ms: 250\n"
                                 "outbox_capacity: 12\noutbox_overflow: error\n"
                                 "supervisor: launcher-1\n");
    const auto config = rrh::shim_config::from_yaml_file(path);
    REQUIRE(config);
    REQUIRE(config->node_id == "worker-7");
    REQUIRE(config->heartbeat_interval_ms == 250);
    REQUIRE(config->outbox_capacity == 12);
    REQUIRE(config->outbox_overflow == rrh::overflow_policy::error);
    REQUIRE(config->supervisor == "launcher-1");
  }
  SECTION("an unknown key is an error that names it") {
    const auto path = write_temp("rrh_shim_config_bad_key.yaml", "hearbeat_interval_ms: 250\n");
    const auto config = rrh::shim_config::from_yaml_file(path);
    REQUIRE_FALSE(config);
    REQUIRE(config.error().detail.find("hearbeat_interval_ms") != std::string::npos);
  }
  SECTION("a bad number is an error that names the key") {
    const auto path = write_temp("rrh_shim_config_bad_value.yaml", "outbox_capacity: lots\n");
    const auto config = rrh::shim_config::from_yaml_file(path);
    REQUIRE_FALSE(config);
    REQUIRE(config.error().detail.find("outbox_capacity") != std::string::npos);
  }
  SECTION("a missing file is an error") {
    REQUIRE_FALSE(rrh::shim_config::from_yaml_file("/nonexistent/rrh.yaml"));
  }
}

TEST_CASE("shim_config reads RRH_* environment variables", "[shim][config]") {
  ::setenv("RRH_NODE_ID", "env-node", 1);
  ::setenv("RRH_HEARTBEAT_MS", "75", 1);
  ::setenv("RRH_OUTBOX_OVERFLOW", "error", 1);
  const auto config = rrh::shim_config::from_environment();
  ::unsetenv("RRH_NODE_ID");
  ::unsetenv("RRH_HEARTBEAT_MS");
  ::unsetenv("RRH_OUTBOX_OVERFLOW");
  REQUIRE(config);
  REQUIRE(config->node_id == "env-node");
  REQUIRE(config->heartbeat_interval_ms == 75);
  REQUIRE(config->outbox_overflow == rrh::overflow_policy::error);

  ::setenv("RRH_OUTBOX_OVERFLOW", "sometimes", 1);
  const auto invalid = rrh::shim_config::from_environment();
  ::unsetenv("RRH_OUTBOX_OVERFLOW");
  REQUIRE_FALSE(invalid);
  REQUIRE(invalid.error().detail.find("RRH_OUTBOX_OVERFLOW") != std::string::npos);
}

TEST_CASE("shim_config validation rejects values outside their limits", "[shim][config]") {
  rrh::shim_config config;
  SECTION("node id with a space") {
    config.node_id = "bad node";
    REQUIRE_FALSE(config.validate());
  }
  SECTION("heartbeat interval of zero") {
    config.heartbeat_interval_ms = 0;
    REQUIRE_FALSE(config.validate());
  }
  SECTION("backoff cap below its start") {
    config.retransmit_initial_ms = 1000;
    config.retransmit_max_ms = 10;
    REQUIRE_FALSE(config.validate());
  }
  SECTION("empty outbox") {
    config.outbox_capacity = 0;
    REQUIRE_FALSE(config.validate());
  }
}
