// CURVE key files and the security settings of the broker, the processor and the shim:
// keys are written and read back, and every unusable setting is an error that names it.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "config.hpp"
#include "processor_config.hpp"
#include "rrh/curve.hpp"
#include "rrh/shim.hpp"

namespace {

/// A scratch directory removed at the end of the test case.
class key_directory {
 public:
  key_directory()
      : path_(std::filesystem::temp_directory_path() /
              ("rrh-curve-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~key_directory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(file(name)) << text; }

 private:
  static int& counter() {
    static int value = 0;
    return value;
  }
  std::filesystem::path path_;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("key files are generated once and read back", "[common][curve]") {
  REQUIRE(rrh::curve_available());
  key_directory keys;
  auto made = rrh::generate_key_files(keys.path(), "node-a");
  REQUIRE(made);
  CHECK(made->public_key.size() == rrh::curve_key_text_length);
  CHECK(rrh::is_curve_key_text(made->public_key));

  SECTION("the secret file is private to its owner") {
    struct stat secret_status {};
    REQUIRE(::stat(keys.file("node-a.key_secret").c_str(), &secret_status) == 0);
    CHECK((secret_status.st_mode & 0777) == 0600);
  }
  SECTION("the public key reads back, and the secret gives the same public key") {
    auto public_key = rrh::read_public_key_file(keys.file("node-a.key"), "curve_server_key_file");
    REQUIRE(public_key);
    CHECK(*public_key == made->public_key);
    auto pair = rrh::read_secret_key_file(keys.file("node-a.key_secret"), "curve_secret_key_file");
    REQUIRE(pair);
    CHECK(pair->public_key == made->public_key);
    CHECK(pair->secret_key == made->secret_key);
  }
  SECTION("an existing key is never overwritten") {
    auto again = rrh::generate_key_files(keys.path(), "node-a");
    REQUIRE_FALSE(again);
    CHECK(contains(again.error().detail, "refusing to overwrite"));
    auto pair = rrh::read_secret_key_file(keys.file("node-a.key_secret"), "curve_secret_key_file");
    REQUIRE(pair);
    CHECK(pair->secret_key == made->secret_key);
  }
  SECTION("a name with a path in it is refused") {
    CHECK_FALSE(rrh::generate_key_files(keys.path(), "../escape"));
    CHECK_FALSE(rrh::generate_key_files(keys.path(), ""));
  }
}

TEST_CASE("unusable key files are errors naming the setting", "[common][curve]") {
  key_directory keys;
  SECTION("missing file") {
    auto read = rrh::read_public_key_file(keys.file("absent.key"), "curve_server_key_file");
    REQUIRE_FALSE(read);
    CHECK(read.error().code == rrh::errc::config);
    CHECK(contains(read.error().detail, "curve_server_key_file"));
    CHECK(contains(read.error().detail, "absent.key"));
  }
  SECTION("not a key") {
    keys.write("junk.key", "hello\n");
    auto read = rrh::read_public_key_file(keys.file("junk.key"), "curve_server_key_file");
    REQUIRE_FALSE(read);
    CHECK(contains(read.error().detail, "not a CURVE key"));
  }
  SECTION("empty file") {
    keys.write("empty.key", "");
    CHECK_FALSE(rrh::read_public_key_file(keys.file("empty.key"), "x"));
  }
  SECTION("a secret key readable by others") {
    REQUIRE(rrh::generate_key_files(keys.path(), "loose"));
    ::chmod(keys.file("loose.key_secret").c_str(), 0644);
    auto read = rrh::read_secret_key_file(keys.file("loose.key_secret"), "curve_secret_key_file");
    REQUIRE_FALSE(read);
    CHECK(contains(read.error().detail, "curve_secret_key_file"));
    CHECK(contains(read.error().detail, "chmod 600"));
  }
}

TEST_CASE("the allowed keys directory holds *.key files only", "[common][curve]") {
  key_directory keys;
  auto first = rrh::generate_key_files(keys.path(), "first");
  REQUIRE(first);
  keys.write("README", "not a key, ignored");
  rrh::allowed_keys allowed(keys.path());
  REQUIRE(allowed.load("curve_allowed_keys_dir"));
  CHECK(allowed.size() == 1);  // the .key_secret file is not an allowed key
  CHECK(allowed.allows(first->public_key));

  SECTION("a malformed .key file is an error naming the setting") {
    keys.write("broken.key", "nope");
    auto reloaded = allowed.load("curve_allowed_keys_dir");
    REQUIRE_FALSE(reloaded);
    CHECK(contains(reloaded.error().detail, "curve_allowed_keys_dir"));
    CHECK(allowed.allows(first->public_key));  // the keys held before stay
  }
  SECTION("a missing directory is an error") {
    rrh::allowed_keys missing(keys.file("absent"));
    CHECK_FALSE(missing.load("curve_allowed_keys_dir"));
  }
}

TEST_CASE("security modes parse", "[common][curve]") {
  CHECK(rrh::parse_bus_security("none", "security").value() == rrh::bus_security::none);
  CHECK(rrh::parse_bus_security("curve", "security").value() == rrh::bus_security::curve);
  auto bad = rrh::parse_bus_security("tls", "security");
  REQUIRE_FALSE(bad);
  CHECK(contains(bad.error().detail, "security"));
}

TEST_CASE("broker security settings are checked key by key", "[broker][curve]") {
  key_directory keys;
  REQUIRE(rrh::generate_key_files(keys.path(), "broker"));
  std::filesystem::create_directories(keys.file("allowed"));
  rrh::broker::config settings;
  CHECK(rrh::broker::load_security(settings).value().mode == rrh::bus_security::none);
  settings.security = "curve";
  SECTION("the secret key is required") {
    auto loaded = rrh::broker::load_security(settings);
    REQUIRE_FALSE(loaded);
    CHECK(contains(loaded.error().detail, "curve_secret_key_file"));
  }
  SECTION("the allowed keys directory is required") {
    settings.curve_secret_key_file = keys.file("broker.key_secret");
    auto loaded = rrh::broker::load_security(settings);
    REQUIRE_FALSE(loaded);
    CHECK(contains(loaded.error().detail, "curve_allowed_keys_dir"));
  }
  SECTION("a wrong processor key file is named") {
    settings.curve_secret_key_file = keys.file("broker.key_secret");
    settings.curve_allowed_keys_dir = keys.file("allowed");
    settings.curve_processor_key_file = keys.file("absent.key");
    auto loaded = rrh::broker::load_security(settings);
    REQUIRE_FALSE(loaded);
    CHECK(contains(loaded.error().detail, "curve_processor_key_file"));
  }
  SECTION("complete settings load") {
    settings.curve_secret_key_file = keys.file("broker.key_secret");
    settings.curve_allowed_keys_dir = keys.file("allowed");
    auto loaded = rrh::broker::load_security(settings);
    REQUIRE(loaded);
    CHECK(loaded->mode == rrh::bus_security::curve);
    CHECK(loaded->processor_key.empty());
  }
  SECTION("an unknown mode is named") {
    settings.security = "on";
    auto loaded = rrh::broker::load_security(settings);
    REQUIRE_FALSE(loaded);
    CHECK(contains(loaded.error().detail, "security"));
  }
}

TEST_CASE("processor security settings are checked key by key", "[processor][curve]") {
  key_directory keys;
  REQUIRE(rrh::generate_key_files(keys.path(), "processor"));
  REQUIRE(rrh::generate_key_files(keys.path(), "broker"));
  std::filesystem::create_directories(keys.file("control"));

  SECTION("the YAML keys are known and round-trip through --print-config") {
    const std::string yaml = "security: curve\ncurve_secret_key_file: " + keys.file("processor.key_secret") +
                             "\ncurve_server_key_file: " + keys.file("broker.key") +
                             "\ncurve_allowed_keys_dir: " + keys.file("control") + "\n";
    auto parsed = rrh::processor::parse_processor_settings(yaml, "test");
    REQUIRE(parsed);
    CHECK(parsed->security == "curve");
    const auto rendered = rrh::processor::render_processor_settings(parsed.value());
    CHECK(contains(rendered, "curve_allowed_keys_dir"));
    auto again = rrh::processor::parse_processor_settings(rendered, "rendered");
    REQUIRE(again);
    CHECK(again->curve_server_key_file == parsed->curve_server_key_file);
    auto loaded = rrh::processor::load_processor_security(parsed.value());
    REQUIRE(loaded);
    CHECK(loaded->mode == rrh::bus_security::curve);
  }
  SECTION("an unknown security mode in YAML is an error naming the key") {
    auto parsed = rrh::processor::parse_processor_settings("security: maybe\n", "test");
    REQUIRE_FALSE(parsed);
    CHECK(contains(parsed.error().detail, "security"));
  }
  SECTION("each missing key is named") {
    rrh::processor::processor_settings settings;
    settings.security = "curve";
    auto loaded = rrh::processor::load_processor_security(settings);
    REQUIRE_FALSE(loaded);
    CHECK(contains(loaded.error().detail, "curve_secret_key_file"));
    settings.curve_secret_key_file = keys.file("processor.key_secret");
    settings.curve_server_key_file = keys.file("absent.key");
    settings.curve_allowed_keys_dir = keys.file("control");
    loaded = rrh::processor::load_processor_security(settings);
    REQUIRE_FALSE(loaded);
    CHECK(contains(loaded.error().detail, "curve_server_key_file"));
  }
}

TEST_CASE("shim security settings are checked", "[shim][curve]") {
  key_directory keys;
  REQUIRE(rrh::generate_key_files(keys.path(), "node"));
  REQUIRE(rrh::generate_key_files(keys.path(), "broker"));
  keys.write("shim.yaml", "security: curve\ncurve_secret_key_file: " + keys.file("node.key_secret") + "\n");
  auto config = rrh::shim_config::from_yaml_file(keys.file("shim.yaml"));
  REQUIRE(config);
  CHECK(config->security == rrh::bus_security::curve);
  auto valid = config->validate();
  REQUIRE_FALSE(valid);
  CHECK(contains(valid.error().detail, "curve_server_key_file"));
  config->curve_server_key_file = keys.file("broker.key");
  CHECK(config->validate());
  keys.write("bad.yaml", "security: sometimes\n");
  auto bad = rrh::shim_config::from_yaml_file(keys.file("bad.yaml"));
  REQUIRE_FALSE(bad);
  CHECK(contains(bad.error().detail, "security"));
}
