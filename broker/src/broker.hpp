#pragma once
/// The broker loop: forwards events XSUB → XPUB (and subscriptions back), relays commands
/// PULL → ROUTER, and republishes every command on the event bus. Stateless on purpose:
/// reliability lives in the shim and the processor, so a broker restart loses nothing
/// that matters.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <zmq.hpp>

#include "config.hpp"
#include "rrh/curve.hpp"
#include "rrh/expected.hpp"
#include "rrh/log.hpp"

namespace rrh::broker {

/// High-water mark of the event sockets (XSUB receive, XPUB send per subscriber), in
/// messages. PUB/XPUB drop at the HWM, so the libzmq default of 1000 would drop a burst
/// of a few thousand agents' heartbeats; 100k events of ~100 bytes cost ~10 MB per slow
/// subscriber at worst.
inline constexpr int event_hwm_messages = 100'000;
/// High-water mark of the command sockets (PULL receive, ROUTER send per shim), in
/// messages. Commands are few; a shim that falls this far behind gets its commands
/// reported as undeliverable and the processor retransmits them later.
inline constexpr int command_hwm_messages = 10'000;
/// Largest frame libzmq accepts on events-in and commands-in before it drops the
/// sending connection: a guard for the broker's memory against a broken peer. Frames
/// over `message_bytes_max` but under this cap reach the broker, which counts them.
inline constexpr std::int64_t transport_frame_bytes_max = 4 * 1'048'576;
/// Messages moved from one socket per poll wakeup. Draining in batches keeps the poll
/// overhead off the per-message cost; the limit keeps one busy socket from starving the
/// others (libzmq's own zmq_proxy uses 1000).
inline constexpr std::size_t event_batch_max = 1000;
/// Subscription messages moved XPUB → XSUB per wakeup.
inline constexpr std::size_t subscription_batch_max = 1000;
/// Commands relayed per wakeup.
inline constexpr std::size_t command_batch_max = 256;
/// Messages read and discarded from commands-out per wakeup (shims do not send there).
inline constexpr std::size_t ignored_batch_max = 256;
/// Frames of a command on commands-in: [target node id][command kind][body].
inline constexpr std::size_t command_frame_count = 3;
/// Frames of an event on events-in: [topic][body]. With CURVE the broker forwards
/// [topic][body][sender key] and drops anything else, so the key frame cannot be forged.
inline constexpr std::size_t event_frame_count = 2;
/// Node ids bound to a key (and routes to them) kept for the broker's lifetime, with
/// CURVE: past this, hellos of new nodes are refused and counted.
inline constexpr std::size_t node_bindings_max = 1'000'000;
/// ZAP domains, one per socket, so the handler knows what a peer connects to.
inline constexpr std::string_view zap_domain_events_in = "events-in";
inline constexpr std::string_view zap_domain_events_out = "events-out";
inline constexpr std::string_view zap_domain_commands_in = "commands-in";
inline constexpr std::string_view zap_domain_commands_out = "commands-out";
/// Node id the broker uses as sender of the events it publishes itself.
inline constexpr std::string_view broker_node_id = "broker";

/// Counters for the final stats line and for tests; plain numbers, read on the loop's
/// thread only.
struct stats {
  std::uint64_t events_forwarded = 0;         ///< messages moved XSUB → XPUB
  std::uint64_t subscriptions_forwarded = 0;  ///< subscribe/unsubscribe messages XPUB → XSUB
  std::uint64_t commands_relayed = 0;         ///< commands handed to a connected shim
  std::uint64_t commands_undeliverable = 0;   ///< reported commands whose target was absent or full
  /// `ack` commands whose target was absent or full: counted, never reported, since the
  /// node's next retransmission brings the processor's next ack anyway.
  std::uint64_t acks_undeliverable = 0;
  std::uint64_t malformed = 0;                ///< bad input dropped (frames, ids, sizes, bodies)
  std::uint64_t ignored = 0;                  ///< messages shims sent to commands-out
  std::uint64_t socket_errors = 0;            ///< unexpected zmq errors survived by the loop
  std::uint64_t hellos = 0;                   ///< CURVE: hellos that (re)bound a node's route
  std::uint64_t hellos_refused = 0;           ///< CURVE: hellos for a node bound to another key
};

/// The actual endpoints after binding (the port chosen for `tcp://host:*`).
struct bound_endpoints {
  std::string events_in;
  std::string events_out;
  std::string commands_in;
  std::string commands_out;
};

/// Checks the envelope frames of one command before it is relayed: the target must be a
/// valid node id (it becomes a ROUTER routing id and part of a bus topic), the kind a
/// valid kind name, the body non-empty and at most `message_bytes_max`. Pure, so the
/// rules are testable without sockets.
status check_command_frames(std::string_view target, std::string_view kind, std::size_t body_bytes);

/// The broker's sockets and loop. Construction binds (and throws std::runtime_error
/// naming the endpoint when it cannot); `run` is the loop; destruction sets linger and
/// closes the sockets so that the context terminates promptly.
class broker {
 public:
  broker(zmq::context_t& context, const config& settings,
         const security_setup& security = security_setup{});
  ~broker();
  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;

  /// Where each socket is bound, for the ready line.
  const bound_endpoints& endpoints() const { return endpoints_; }

  /// Moves messages until `stop_fd` becomes readable (a SIGINT/SIGTERM or
  /// `rrh::request_stop`). Survives bad input and transient socket errors.
  void run(int stop_fd);

  /// Counters so far.
  const stats& counters() const { return stats_; }
  /// Answers of the ZAP handler (all zero without CURVE).
  zap_stats authentication_counters() const { return zap_ ? zap_->counters() : zap_stats{}; }

 private:
  void forward_events();
  void forward_authenticated_events();
  bool authorize(std::string_view domain, const std::string& key);
  void handle_hello(const zmq::message_t& routing_id, zmq::message_t& hello);
  void send_own_event(std::string_view topic, zmq::message_t& body);
  void forward_subscriptions();
  void relay_commands();
  void discard_commands_out_input();
  void relay_one(zmq::message_t& target, zmq::message_t& kind, zmq::message_t& body);
  void publish_command_copy(std::string_view target, std::string_view kind,
                            const zmq::message_t& body);
  void report_undeliverable(std::string_view target, std::string_view kind,
                            const zmq::message_t& body, std::string_view reason);
  void note_malformed(const std::string& key, const std::string& detail);

  bus_security security_;
  std::string own_key_;        ///< Z85 public key appended to the broker's own events (curve)
  std::string processor_key_;  ///< only key allowed on commands-in when set (curve)
  allowed_keys allowed_;
  std::unique_ptr<zap_handler> zap_;  ///< created before the sockets bind (curve)
  std::unordered_map<std::string, std::string> node_keys_;    ///< node id -> key, first wins
  std::unordered_map<std::string, std::string> node_routes_;  ///< node id -> ROUTER routing id
  zmq::socket_t events_in_;
  zmq::socket_t events_out_;
  zmq::socket_t commands_in_;
  zmq::socket_t commands_out_;
  bound_endpoints endpoints_;
  std::uint64_t incarnation_;
  zmq::message_t topic_;    ///< CURVE: the topic frame held until the body is checked
  zmq::message_t scratch_;  ///< reused for every forwarded frame: recv fills it, send empties it
  stats stats_;
  log_throttle throttle_;
};

}  // namespace rrh::broker
