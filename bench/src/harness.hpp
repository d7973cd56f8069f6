#pragma once
/// The common harness of rrh-bench: options, the figures each scenario reports, a real
/// broker + processor stack, and simulated agent nodes that speak the wire protocol.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "broker_process.hpp"
#include "rrh/protocol.hpp"

namespace rrh::bench {

using steady = std::chrono::steady_clock;

/// Everything the command line chooses. Zero sizes mean "the default for the mode".
struct options {
  bool quick = false;
  bool json = false;
  std::vector<std::string> scenarios;  ///< empty: all five, in order
  std::string broker_path;
  std::string processor_path;
  std::string agent_path;
  std::string state_dir;  ///< parent of the per-run state directories
  std::uint64_t ingest_events = 0;
  std::vector<std::uint64_t> scale_agents;
  std::uint64_t scale_heartbeats = 0;
  std::uint64_t latency_samples = 0;
  std::uint64_t background_rate = 0;  ///< events/s of background load in the latency scenario
  std::uint64_t detection_nodes = 0;
  double detection_settle_s = -1;  ///< negative: the default
  std::uint64_t storm_agents = 0;
  double storm_rate = 0;       ///< recovery_rate_per_s of the storm
  std::uint64_t storm_burst = 0;
};

/// One reported figure. `target` compares `ratio`: at least (ingest) or at most (others).
struct figure {
  std::string scenario;
  double value = 0;
  double baseline = 0;
  double ratio = 0;
  std::string unit;
  std::optional<double> target;  ///< none: reported for information only
  bool higher_is_better = false;
  bool lost_nothing = true;  ///< false turns `met` off whatever the ratio
  std::optional<bool> met() const;
};

/// What a scenario hands back: its figures, and lines that explain them.
struct scenario_result {
  std::vector<figure> figures;
  std::vector<std::string> notes;
};

/// A scenario that could not be measured (a process did not start, a deadline passed).
struct scenario_failure {
  std::string what;
};

/// Prints a figure as one JSON object on one line.
void print_json(const figure& item);
/// Prints a figure as one readable line.
void print_text(const figure& item);

/// Percentile `share` (0..1) of `values` (sorted in place); 0 for none.
double percentile(std::vector<double>& values, double share);

/// printf into a string of whatever length it takes (a scenario's note lines).
std::string format_text(const char* format, ...) __attribute__((format(printf, 1, 2)));

/// Writes `text` to `path`; throws scenario_failure on error.
void write_file(const std::string& path, const std::string& text);

/// The first number after `"key":` in a JSON text (the control socket's answers), or 0.
double json_number(const std::string& text, const std::string& key);

/// Resident set size of `pid`, in bytes (VmRSS).
std::uint64_t resident_bytes(pid_t pid);
/// CPU time of every thread of `pid` so far, in nanoseconds (schedstat).
std::uint64_t cpu_ns(pid_t pid);

/// A broker and a processor as child processes, the processor with the resilience keys
/// `resilience_yaml` and its state in a fresh directory under `options.state_dir`.
class stack {
 public:
  stack(const options& settings, const std::string& name, const std::string& resilience_yaml,
        bool with_processor = true);
  ~stack();
  stack(const stack&) = delete;
  stack& operator=(const stack&) = delete;

  /// Starts the processor (when the constructor did not).
  void start_processor();
  /// One control request ("status"); throws scenario_failure when no answer comes.
  std::string control(const std::string& request);
  /// A number of the processor's status answer.
  double status_number(const std::string& key) { return json_number(control("status"), key); }
  pid_t processor_pid() const { return processor_->pid(); }

  broker_process& broker() { return *broker_; }

 private:
  const options& settings_;
  std::string directory_;
  std::string resilience_yaml_;
  std::unique_ptr<broker_process> broker_;
  std::unique_ptr<child_process> processor_;
  std::string control_endpoint_;
  zmq::context_t context_;
};

/// An encoded bus message: [topic][body].
struct bus_message {
  std::string topic;
  std::string body;
};

/// Encodes an event as a bus message.
bus_message to_bus(const event& message);

/// Simulated agent nodes in one thread: one PUB shared by all (a node's identity is in the
/// event, not the socket), one DEALER per node with routing id = node id (commands come
/// back addressed to it). Critical events are numbered per node, kept in an outbox until
/// the processor acks them, and resent go-back-N after a silence, as the shim does; the
/// number of unacked events is bounded by a window so that nothing queues up to a
/// high-water mark and gets dropped.
class fleet {
 public:
  /// Resend the outbox of a node whose acks made no progress for this long.
  static constexpr std::chrono::milliseconds retransmit_after_ms{500};
  /// Events resent per node and round, as the shim does.
  static constexpr std::size_t retransmit_batch_max = 512;

  fleet(zmq::context_t& context, const broker_process& broker, std::size_t node_count,
        const std::string& node_prefix, std::uint64_t window_events);

  std::size_t size() const { return nodes_.size(); }
  const std::string& node_id(std::size_t node) const { return nodes_[node].id; }
  std::uint64_t incarnation(std::size_t node) const { return nodes_[node].incarnation; }

  /// An event envelope from `node`; `critical` gives it the node's next seq.
  event make(std::size_t node, event_body body, bool critical);
  /// Publishes a best-effort event (seq 0).
  void send_best_effort(const bus_message& message);
  /// Publishes a critical event of `node` (made by `make`, in seq order) and keeps it
  /// until acked; waits (pumping acks) while the window is full.
  void send_critical(std::size_t node, bus_message message);

  /// Drains acks and commands of every node; resends what is due. `on_command` sees every
  /// command other than `ack`.
  void pump();
  /// Waits up to `timeout` (rounded up to a millisecond) for anything on the nodes'
  /// DEALERs, then pumps.
  void wait_for_command(std::chrono::microseconds timeout);
  /// Pumps until every critical event is acked or `deadline`; false on timeout.
  bool wait_all_acked(steady::time_point deadline);

  /// Critical events sent (first transmissions) and acked so far.
  std::uint64_t critical_sent() const { return critical_sent_; }
  std::uint64_t critical_acked() const { return critical_acked_; }
  std::uint64_t retransmitted() const { return retransmitted_; }
  /// Nodes whose every critical event is acked.
  bool all_acked() const { return critical_acked_ == critical_sent_; }

  /// Called for each command received (not acks), with the node index and receive time.
  std::function<void(std::size_t, const command&, steady::time_point)> on_command;

 private:
  struct node_state {
    std::string id;
    std::uint64_t incarnation = 0;
    std::uint64_t next_seq = 1;
    std::uint64_t acked_seq = 0;
    std::deque<std::pair<std::uint64_t, bus_message>> outbox;  // (seq, message)
    steady::time_point last_progress;
    zmq::socket_t dealer;
  };
  void publish(const bus_message& message);
  void drain(std::size_t node);
  std::vector<zmq::pollitem_t>& poll_items();

  zmq::socket_t publisher_;
  std::vector<node_state> nodes_;
  std::uint64_t window_events_;
  std::uint64_t critical_sent_ = 0;
  std::uint64_t critical_acked_ = 0;
  std::uint64_t retransmitted_ = 0;
  std::size_t sends_since_pump_ = 0;
  std::vector<zmq::pollitem_t> poll_items_;
};

/// Repeats `step` until `done` is true or `deadline` passes; returns `done()`.
bool pump_until(const std::function<bool()>& done, const std::function<void()>& step,
                steady::time_point deadline);

/// A SUB on the broker's events-out for `prefixes`, with its handshake done: a probe event
/// published on `publisher` must arrive before it is used.
zmq::socket_t subscribe(zmq::context_t& context, const broker_process& broker,
                        const std::vector<std::string>& prefixes);

// The scenarios; each throws scenario_failure when it cannot measure.
scenario_result run_ingest(const options& settings);
scenario_result run_scale(const options& settings);
scenario_result run_latency(const options& settings);
scenario_result run_detection(const options& settings);
scenario_result run_storm(const options& settings);

/// Resilience keys every scenario shares: no probes, and no silence detection unless a
/// scenario measures it (nodes beat only when the scenario says so), as YAML lines.
std::string quiet_resilience_yaml(const std::string& acceptable_pause_s = "86400");

}  // namespace rrh::bench
