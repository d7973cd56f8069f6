#pragma once
/// Records everything on the broker's events-out, as a tap would: events and relayed
/// commands, each with the time it arrived. Single-threaded: call `pump` to drain.
#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "broker_fixture.hpp"
#include "rrh/codec.hpp"

namespace rrh::test {

/// Milliseconds from `from` to `to`, as arrival times are compared.
inline double elapsed_ms(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

class bus_recorder {
 public:
  struct entry {
    std::chrono::steady_clock::time_point arrived;
    std::string topic;
    std::optional<event> message;      ///< set for events
    std::optional<command> relayed;    ///< set for relayed commands (topic "cmd.…")
  };

  bus_recorder(sockets& owner, const std::string& events_out)
      : subscriber_(owner.make(zmq::socket_type::sub)) {
    subscriber_.set(zmq::sockopt::subscribe, "");
    subscriber_.connect(events_out);
  }

  void pump() {
    while (auto parts = try_receive(subscriber_)) {
      if (parts->size() != 2) continue;
      entry item;
      item.arrived = std::chrono::steady_clock::now();
      item.topic = text_of((*parts)[0]);
      const auto& body = (*parts)[1];
      if (item.topic.rfind("cmd.", 0) == 0) {
        auto decoded = rrh::decode_command(body.data(), body.size());
        if (decoded) item.relayed = std::move(decoded.value());
      } else {
        auto decoded = rrh::decode_event(body.data(), body.size());
        if (decoded) item.message = std::move(decoded.value());
      }
      entries.push_back(std::move(item));
    }
  }

  /// Events of one body type, in arrival order (duplicates from retransmission included).
  template <class Body>
  std::vector<std::pair<const entry*, const Body*>> events_of() const {
    std::vector<std::pair<const entry*, const Body*>> found;
    for (const auto& item : entries) {
      if (!item.message) continue;
      if (const auto* body = std::get_if<Body>(&item.message->body)) found.emplace_back(&item, body);
    }
    return found;
  }

  /// Relayed commands of one body type, in arrival order.
  template <class Body>
  std::vector<std::pair<const entry*, const Body*>> commands_of() const {
    std::vector<std::pair<const entry*, const Body*>> found;
    for (const auto& item : entries) {
      if (!item.relayed) continue;
      if (const auto* body = std::get_if<Body>(&item.relayed->body)) found.emplace_back(&item, body);
    }
    return found;
  }

  // A deque: references handed out by events_of/commands_of stay valid as more arrive.
  std::deque<entry> entries;

 private:
  zmq::socket_t subscriber_;
};

}  // namespace rrh::test
