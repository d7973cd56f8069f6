#pragma once
/// A test's stand-in for the processor: subscribes to the broker's events-out, records
/// every event by (node, incarnation, seq), acks critical events cumulatively when told
/// to, and pushes commands into commands-in. Single-threaded: call `pump` to drain.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "broker_fixture.hpp"
#include "rrh/codec.hpp"

namespace rrh::test {

class bus_peer {
 public:
  bus_peer(sockets& owner, const std::string& events_out, const std::string& commands_in)
      : subscriber_(owner.make(zmq::socket_type::sub)), pusher_(owner.make(zmq::socket_type::push)) {
    subscriber_.set(zmq::sockopt::subscribe, "");
    subscriber_.connect(events_out);
    pusher_.connect(commands_in);
  }

  /// Whether critical events are acked as they arrive in order.
  bool auto_ack = false;

  /// Drains what has arrived; acks progress when auto_ack is on.
  void pump() {
    while (auto parts = try_receive(subscriber_)) {
      if (parts->size() != 2) {
        ++malformed;
        continue;
      }
      const auto topic = text_of((*parts)[0]);
      if (topic.rfind("cmd.", 0) == 0) {
        relayed_commands.push_back(topic);
        continue;
      }
      auto decoded = rrh::decode_event((*parts)[1].data(), (*parts)[1].size());
      if (!decoded) {
        ++malformed;
        continue;
      }
      record(*decoded, (*parts)[1]);
    }
    if (auto_ack) send_acks();
  }

  /// Highest seq n such that 1..n of (node, incarnation) all arrived.
  std::uint64_t contiguous(const std::string& node, std::uint64_t incarnation) const {
    const auto found = streams_.find({node, incarnation});
    if (found == streams_.end()) return 0;
    std::uint64_t seq = 0;
    while (found->second.count(seq + 1) > 0) ++seq;
    return seq;
  }

  /// Copies of (node, incarnation, seq) received, retransmissions included.
  std::size_t copies(const std::string& node, std::uint64_t incarnation, std::uint64_t seq) const {
    const auto found = copies_.find({node, incarnation, seq});
    return found == copies_.end() ? 0 : found->second;
  }

  /// Sends a command through the broker's commands-in.
  void send(const command& message) {
    send_parts(pusher_, {message.node, std::string(kind_name(message.body)), bytes_of(encode(message))});
  }

  /// Acks of one command id seen so far.
  std::vector<events::command_ack> acks_of(std::uint64_t command_id) const {
    std::vector<events::command_ack> found;
    for (const auto& ack : command_acks) {
      if (ack.command_id == command_id) found.push_back(ack);
    }
    return found;
  }

  /// Critical events by (node, incarnation) and seq, each kept once.
  std::map<std::pair<std::string, std::uint64_t>, std::map<std::uint64_t, event>> streams() const {
    return streams_;
  }

  std::vector<events::command_ack> command_acks;
  std::vector<events::probe_reply> probe_replies;
  std::vector<events::heartbeat> heartbeats;
  std::vector<std::string> relayed_commands;
  std::size_t malformed = 0;
  std::size_t conflicting_copies = 0;  ///< same (node, incarnation, seq) with other bytes

 private:
  void record(const event& message, const zmq::message_t& body) {
    if (const auto* ack = std::get_if<events::command_ack>(&message.body)) command_acks.push_back(*ack);
    if (const auto* reply = std::get_if<events::probe_reply>(&message.body)) probe_replies.push_back(*reply);
    if (const auto* beat = std::get_if<events::heartbeat>(&message.body)) heartbeats.push_back(*beat);
    if (message.header.seq == 0) return;
    const auto key = std::make_tuple(message.header.node, message.header.incarnation, message.header.seq);
    // A copy of something already acked means the sender missed the ack: ack again.
    if (++copies_[key] > 1) reack_.insert({message.header.node, message.header.incarnation});
    const std::string bytes(static_cast<const char*>(body.data()), body.size());
    auto [position, inserted] = first_bytes_.emplace(key, bytes);
    if (!inserted && position->second != bytes) ++conflicting_copies;
    streams_[{message.header.node, message.header.incarnation}].emplace(message.header.seq, message);
  }

  void send_acks() {
    for (const auto& [stream, received] : streams_) {
      const auto upto = contiguous(stream.first, stream.second);
      auto& last = acked_[stream];
      if (upto <= last && reack_.count(stream) == 0) continue;
      last = std::max(last, upto);
      reack_.erase(stream);
      command ack;
      ack.id = 0;
      ack.node = stream.first;
      ack.body = commands::ack{stream.second, upto};
      send(ack);
    }
  }

  zmq::socket_t subscriber_;
  zmq::socket_t pusher_;
  std::map<std::pair<std::string, std::uint64_t>, std::map<std::uint64_t, event>> streams_;
  std::map<std::tuple<std::string, std::uint64_t, std::uint64_t>, std::size_t> copies_;
  std::map<std::tuple<std::string, std::uint64_t, std::uint64_t>, std::string> first_bytes_;
  std::map<std::pair<std::string, std::uint64_t>, std::uint64_t> acked_;
  std::set<std::pair<std::string, std::uint64_t>> reack_;
};

}  // namespace rrh::test
