// rrh-ctl's pieces: the JSON reader accepts what the processor writes and refuses broken
// text; the pretty formatter aligns tables and flattens objects; the exchange with a
// control socket returns the reply, or a timeout when nobody answers.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "client.hpp"
#include "control.hpp"
#include "format.hpp"
#include "json_reader.hpp"
#include "rrh/engine/engine.hpp"

namespace {

using rrh::ctl::json_value;

json_value parse(std::string_view text) {
  auto parsed = rrh::ctl::parse_json(text);
  INFO(text);
  REQUIRE(parsed.has_value());
  return std::move(*parsed);
}

std::string bound_endpoint(const zmq::socket_t& socket) {
  return socket.get(zmq::sockopt::last_endpoint);
}

}  // namespace

TEST_CASE("the JSON reader reads every kind of value and keeps member order", "[control]") {
  const auto value = parse(
      R"( {"b":1,"a":[true,false,null,-2.5e3,"x\"\\\/\n\u00e9\ud83d\ude00"],"c":{},"d":[]} )");
  REQUIRE(value.is_object());
  REQUIRE(value.members.size() == 4);
  CHECK(value.members[0].key == "b");
  CHECK(value.find("b")->as_u64() == 1u);
  const auto& items = value.find("a")->items;
  REQUIRE(items.size() == 5);
  CHECK(items[0].boolean);
  CHECK_FALSE(items[1].boolean);
  CHECK(items[1].type == json_value::kind::boolean);
  CHECK(items[2].is_null());
  CHECK(items[3].text == "-2.5e3");
  CHECK_FALSE(items[3].as_u64().has_value());
  CHECK(items[4].text == "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(value.find("c")->is_object());
  CHECK(value.find("d")->is_array());
  CHECK(value.find("missing") == nullptr);
  CHECK(rrh::ctl::to_json(value) ==
        "{\"b\":1,\"a\":[true,false,null,-2.5e3,\"x\\\"\\\\/\\n\xc3\xa9\xf0\x9f\x98\x80\"],"
        "\"c\":{},\"d\":[]}");
  CHECK(parse("18446744073709551615").as_u64() == 18446744073709551615ull);
  CHECK_FALSE(parse("18446744073709551616").as_u64().has_value());
}

TEST_CASE("the JSON reader refuses broken text and names the offset", "[control]") {
  for (const char* broken :
       {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "tru", "01", "1.", "-", "\"open", "\"\\x\"",
        "\"\\ud800\"", "\"\x01\"", "{} {}", "[1] x", "{a:1}", "1e"}) {
    INFO(broken);
    const auto parsed = rrh::ctl::parse_json(broken);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code == rrh::errc::malformed);
    CHECK(parsed.error().detail.rfind("invalid JSON at byte ", 0) == 0);
  }
  std::string deep(rrh::ctl::json_depth_max + 2, '[');
  deep += std::string(rrh::ctl::json_depth_max + 2, ']');
  CHECK_FALSE(rrh::ctl::parse_json(deep).has_value());
  std::string at_limit(rrh::ctl::json_depth_max + 1, '[');
  at_limit += std::string(rrh::ctl::json_depth_max + 1, ']');
  CHECK(rrh::ctl::parse_json(at_limit).has_value());
}

TEST_CASE("tables align columns, show empty cells as '-' and cut long cells", "[control]") {
  SECTION("alignment, counting UTF-8 characters, no trailing blanks") {
    const auto table = rrh::ctl::format_table({"AGENT", "STATE", "POOL"},
                                              {{"a-1", "healthy", ""}, {"agent-é", "dead", "p"}});
    CHECK(table ==
          "AGENT    STATE    POOL\n"
          "a-1      healthy  -\n"
          "agent-é  dead     p\n");
  }
  SECTION("a cell over the limit is cut to the limit with an ellipsis") {
    const std::string long_text(rrh::ctl::cell_chars_max + 10, 'x');
    const auto table = rrh::ctl::format_table({"E"}, {{long_text}});
    CHECK(table == "E\n" + std::string(rrh::ctl::cell_chars_max - 1, 'x') + "…\n");
    const std::string at_limit(rrh::ctl::cell_chars_max, 'x');
    CHECK(rrh::ctl::format_table({"E"}, {{at_limit}}) == "E\n" + at_limit + "\n");
  }
  SECTION("newlines inside a cell do not break the table") {
    CHECK(rrh::ctl::format_table({"E"}, {{"a\nb"}}) == "E\na b\n");
  }
}

TEST_CASE("durations read at a glance", "[control]") {
  CHECK(rrh::ctl::format_duration_ms(0) == "0ms");
  CHECK(rrh::ctl::format_duration_ms(999) == "999ms");
  CHECK(rrh::ctl::format_duration_ms(1000) == "1.0s");
  CHECK(rrh::ctl::format_duration_ms(59'999) == "59.9s");
  CHECK(rrh::ctl::format_duration_ms(60'000) == "1m00s");
  CHECK(rrh::ctl::format_duration_ms(303'000) == "5m03s");
  CHECK(rrh::ctl::format_duration_ms(7'500'000) == "2h05m");
  CHECK(rrh::ctl::format_duration_ms(273'600'000) == "3d04h");
}

TEST_CASE("pretty output: tables for lists, key: value lines for objects", "[control]") {
  SECTION("agents") {
    const auto data = parse(
        R"({"total":2,"truncated":false,"agents":[)"
        R"({"agent":"a-1","node":"n-1","pool":"p","supervisor":"","episode":"e-1","state":"healthy","recovery_attempts":0},)"
        R"({"agent":"a-22","node":"n-1","pool":"","supervisor":"","episode":"","state":"quarantined","recovery_attempts":3}]})");
    CHECK(rrh::ctl::format_pretty("agents", data) ==
          "AGENT  NODE  STATE        ATTEMPTS  POOL  EPISODE\n"
          "a-1    n-1   healthy      0         p     e-1\n"
          "a-22   n-1   quarantined  3         -     -\n");
  }
  SECTION("a truncated list says how much is missing") {
    const auto data =
        parse(R"({"total":12000,"truncated":true,"tasks":[{"task":"t-1","agent":"a-1",)"
              R"("state":"running","attempt":1,"failures":0,"pool":"","episode":"",)"
              R"("last_error_type":"Timeout","last_error_message":"slow"}]})");
    CHECK(rrh::ctl::format_pretty("tasks", data) ==
          "TASK  AGENT  STATE    ATTEMPT  FAILURES  POOL  EPISODE  LAST_ERROR\n"
          "t-1   a-1    running  1        0         -     -        Timeout: slow\n"
          "(1 of 12000 tasks shown; ask for one id to see any other)\n");
  }
  SECTION("episodes") {
    const auto data = parse(
        R"({"total":1,"truncated":false,"episodes":[{"episode":"e-1","state":"ended","status":"aborted",)"
        R"("duration_ms":65000,"errors":5,"recoveries_attempted":3,"recoveries_succeeded":2,)"
        R"("tasks_failed":7,"tasks_retried":6,"tasks_recovered":4,"tasks_abandoned":1,"agents_seen":12}]})");
    CHECK(rrh::ctl::format_pretty("episodes", data) ==
          "EPISODE  STATE  STATUS   DURATION  ERRORS  RECOVERIES  "
          "TASKS_FAILED/RETRIED/RECOVERED/ABANDONED  AGENTS\n"
          "e-1      ended  aborted  1m05s     5       2/3         7/6/4/1" +
              std::string(std::string_view("TASKS_FAILED/RETRIED/RECOVERED/ABANDONED").size() -
                              std::string_view("7/6/4/1").size() + 2,
                          ' ') +
              "12\n");
  }
  SECTION("an empty list") {
    CHECK(rrh::ctl::format_pretty(
              "agents", parse(R"({"total":0,"truncated":false,"agents":[]})")) == "no agents\n");
  }
  SECTION("single objects and status: flattened, aligned key: value lines") {
    const auto data = parse(R"({"node_id":"p-1","agents":{"total":2,"by_state":{"healthy":2}},)"
                            R"("overrides":{},"agents_seen":["a-1","a-2"]})");
    CHECK(rrh::ctl::format_pretty("status", data) ==
          "node_id:                 p-1\n"
          "agents.total:            2\n"
          "agents.by_state.healthy: 2\n"
          "overrides:\n"
          "agents_seen:             a-1,a-2\n");
  }
  SECTION("config marks the seed's keys") {
    const auto data = parse(
        R"([{"key":"error_threshold","value":5,"unit":"count","meaning":"errors that end it","seed":true},)"
        R"({"key":"phi_threshold","value":8.0,"unit":"ratio","meaning":"dead at","seed":false}])");
    CHECK(rrh::ctl::format_pretty("config", data) ==
          "KEY              VALUE  UNIT   SEED  MEANING\n"
          "error_threshold  5      count  seed  errors that end it\n"
          "phi_threshold    8.0    ratio  -     dead at\n");
  }
  SECTION("data of an unexpected shape is shown, not refused") {
    CHECK(rrh::ctl::format_pretty("agents", parse(R"({"odd":1})")) == "odd: 1\n");
  }
}

TEST_CASE("rrh-ctl's exchange gets the processor's answer from a control ROUTER", "[control]") {
  zmq::context_t context;
  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  const auto endpoint = bound_endpoint(router);
  const rrh::engine::engine engine{rrh::engine::resilience_config{}};

  // Answers one request the way the processor's shell does: same envelope, answer_control.
  std::thread server([&] {
    std::array<zmq::pollitem_t, 1> items{{{router.handle(), 0, ZMQ_POLLIN, 0}}};
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(10'000));
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(router, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
    const std::string request = frames.back().to_string();
    const auto answer =
        rrh::processor::answer_control(engine, rrh::processor::processor_status{}, request);
    frames.back().rebuild(answer.data(), answer.size());
    zmq::send_multipart(router, frames);
  });
  const auto reply = rrh::ctl::ask(endpoint, "agents", std::chrono::milliseconds(10'000));
  server.join();
  REQUIRE(reply.has_value());
  CHECK(*reply == R"({"ok":true,"data":{"total":0,"truncated":false,"agents":[]}})");
}

TEST_CASE("rrh-ctl's exchange gives up at its deadline when nobody answers", "[control]") {
  zmq::context_t context;
  zmq::socket_t silent(context, zmq::socket_type::router);
  silent.set(zmq::sockopt::linger, 0);
  silent.bind("tcp://127.0.0.1:*");
  const auto started = std::chrono::steady_clock::now();
  const auto reply = rrh::ctl::ask(bound_endpoint(silent), "status", std::chrono::milliseconds(50));
  const auto waited = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(reply.has_value());
  CHECK(reply.error().code == rrh::errc::timeout);
  CHECK(waited >= std::chrono::milliseconds(50));
  CHECK(waited < std::chrono::milliseconds(5000));

  SECTION("an endpoint ZeroMQ refuses is a usage error, not a timeout") {
    const auto refused = rrh::ctl::ask("nonsense://x", "status", std::chrono::milliseconds(50));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == rrh::errc::invalid_argument);
  }
}
