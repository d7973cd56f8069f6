#pragma once
/// A whole bus for a test: a real broker, a real rrh-processor at test speed (with a
/// test's overrides) keeping its state in a scratch directory, and a recorder of
/// everything on the bus.
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "bus_recorder.hpp"
#include "processor_fixture.hpp"

namespace rrh::test {

struct processor_stack {
  explicit processor_stack(const std::string& name, const std::map<std::string, std::string>& overrides = {})
      : scratch(name), config_path(scratch.file("rrh.yaml")), state_path(scratch.file("state.db")) {
    auto resilience = test_speed_resilience();
    for (const auto& [key, value] : overrides) resilience[key] = value;
    write_file(config_path, resilience_yaml(resilience));
    processor = std::make_unique<processor_process>(broker, config_path, state_path);
  }

  /// Waits for `condition`, draining the bus into the recorder while it waits.
  bool wait_for(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::milliseconds(20'000)) {
    return wait_until(
        [&] {
          recorder.pump();
          return condition();
        },
        deadline);
  }

  /// Waits for an `agent.suspect` whose reason mentions `cause` ("watchdog", "probe").
  bool wait_for_suspect(const std::string& cause) {
    return wait_for([&] {
      for (const auto& [entry, suspect] : recorder.events_of<events::agent_suspect>()) {
        if (suspect->reason.find(cause) != std::string::npos) return true;
      }
      return false;
    });
  }

  broker_process broker;
  scratch_directory scratch;
  std::string config_path;
  std::string state_path;
  std::unique_ptr<processor_process> processor;
  sockets context;
  bus_recorder recorder{context, broker.events_out};
};

}  // namespace rrh::test
