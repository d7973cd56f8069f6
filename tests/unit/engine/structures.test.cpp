// The engine's inner structures against simple references (a std::map for the index, a
// sorted multiset for the timers), over seeded random operation sequences; and batch
// application against one event at a time.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "flat_index.hpp"
#include "rrh/codec.hpp"
#include "timer_queue.hpp"

namespace rrh::engine::test {
namespace {

/// Ids keyed by slot, as the engine's slot tables hold them.
struct id_slots {
  std::vector<std::string> ids;
  auto key_of() const {
    return [this](std::uint32_t slot) -> std::string_view { return ids[slot]; };
  }
};

}  // namespace

TEST_CASE("flat_index finds, inserts and erases like a map", "[engine][structures]") {
  detail::flat_index index;
  id_slots slots;
  std::map<std::string, std::uint32_t> reference;
  std::vector<std::uint32_t> free_slots;
  std::mt19937_64 random(GENERATE(1u, 2u, 3u));
  // Few distinct ids: inserts and erases collide with each other and wrap around.
  std::uniform_int_distribution<int> pick_id(0, 700);

  const auto hash_of = [](const std::string& id) { return detail::flat_index::hash(id); };
  for (int step = 0; step < 20'000; ++step) {
    const auto id = "agent-" + std::to_string(pick_id(random));
    const auto found = index.find(id, hash_of(id), slots.key_of());
    const auto expected = reference.find(id);
    REQUIRE(found.has_value() == (expected != reference.end()));
    if (found) {
      REQUIRE(*found == expected->second);
      index.erase(id, hash_of(id), slots.key_of());
      free_slots.push_back(*found);
      reference.erase(expected);
      REQUIRE_FALSE(index.find(id, hash_of(id), slots.key_of()).has_value());
    } else {
      std::uint32_t slot;
      if (!free_slots.empty()) {
        slot = free_slots.back();
        free_slots.pop_back();
        slots.ids[slot] = id;
      } else {
        slot = static_cast<std::uint32_t>(slots.ids.size());
        slots.ids.push_back(id);
      }
      index.insert(id, hash_of(id), slot, slots.key_of());
      reference.emplace(id, slot);
    }
    REQUIRE(index.size() == reference.size());
  }
  // Every id still present is found at its slot after all the shifting.
  for (const auto& [id, slot] : reference) {
    REQUIRE(index.find(id, hash_of(id), slots.key_of()) == std::optional<std::uint32_t>(slot));
  }
  REQUIRE(index.capacity() * 3 >= index.size() * 4);
}

TEST_CASE("flat_index hash spreads ids that differ in a few characters", "[engine][structures]") {
  // The index picks an id's home from the hash's low bits: ids named by pattern (nodes,
  // their agents, numbered tasks; every length from 1 to 40 bytes) must fill the homes
  // about as a random function would, or lookups degrade to long probes.
  constexpr std::size_t home_bits = 17;
  constexpr std::size_t homes = std::size_t{1} << home_bits;
  std::vector<std::string> ids;
  for (int node = 0; node < 800; ++node) {
    for (int agent = 0; agent < 100; ++agent) ids.push_back("n" + std::to_string(node) + ".a" + std::to_string(agent));
  }
  for (int task = 0; task < 20'000; ++task) ids.push_back("t" + std::to_string(task));
  for (std::size_t length = 1; length <= 40; ++length) {
    for (char last = 'a'; last <= 'z'; ++last) ids.push_back(std::string(length - 1, 'x') + last);
  }
  std::vector<std::uint32_t> per_home(homes);
  std::set<std::uint64_t> distinct;
  for (const auto& id : ids) {
    const auto hash = detail::flat_index::hash(id);
    distinct.insert(hash);
    ++per_home[hash & (homes - 1)];
  }
  REQUIRE(distinct.size() == ids.size());
  // For n ids thrown at random into m homes, the mean of a home's count squared over ids
  // is 1 + (n - 1)/m; a patterned hash gives many times that.
  double squares = 0;
  std::uint32_t fullest = 0;
  for (const auto count : per_home) {
    squares += static_cast<double>(count) * count;
    fullest = std::max(fullest, count);
  }
  const double n = static_cast<double>(ids.size());
  const double random_expectation = 1.0 + (n - 1.0) / static_cast<double>(homes);
  CHECK(squares / n < random_expectation * 1.05);
  CHECK(fullest <= 12);
}

TEST_CASE("flat_index erase keeps colliding chains reachable across the wrap", "[engine][structures]") {
  detail::flat_index index;
  id_slots slots;
  // Many ids in a small table: long probe chains, some wrapping past the end.
  for (std::uint32_t slot = 0; slot < 12; ++slot) {
    slots.ids.push_back("n" + std::to_string(slot));
    index.insert(slots.ids[slot], detail::flat_index::hash(slots.ids[slot]), slot, slots.key_of());
  }
  for (std::uint32_t gone = 0; gone < 12; gone += 2) {
    index.erase(slots.ids[gone], detail::flat_index::hash(slots.ids[gone]), slots.key_of());
  }
  for (std::uint32_t slot = 0; slot < 12; ++slot) {
    const auto found = index.find(slots.ids[slot], detail::flat_index::hash(slots.ids[slot]), slots.key_of());
    if (slot % 2 == 0) {
      REQUIRE_FALSE(found.has_value());
    } else {
      REQUIRE(found == std::optional<std::uint32_t>(slot));
    }
  }
}

namespace {
struct test_timer {
  time_ms due;
  std::uint64_t key;
};
}  // namespace

TEST_CASE("timer_queue pops in due order across buckets, equal due times in push order", "[engine][structures]") {
  detail::timer_queue<test_timer> queue;
  std::multiset<std::pair<time_ms, std::uint64_t>> reference;
  std::mt19937_64 random(GENERATE(11u, 12u));
  std::uniform_int_distribution<time_ms> delay(0, 400'000);  // up to ~400 buckets ahead
  std::uniform_int_distribution<int> action(0, 2);
  time_ms now = 1'700'000'000'000;
  std::uint64_t next_key = 0;
  for (int step = 0; step < 30'000; ++step) {
    if (action(random) != 0) {
      // Mostly forward, sometimes overdue (a restored timer or a late tick).
      const auto due = step % 17 == 0 ? now - 5 : now + delay(random);
      queue.push(test_timer{due, next_key});
      reference.emplace(due, next_key);
      ++next_key;
    } else {
      now += delay(random) / 50;
      while (!queue.empty() && queue.top().due <= now) {
        // Keys grow with every push: the reference's order, (due, key), is the due order
        // with ties in push order.
        const auto earliest = reference.begin();
        REQUIRE(queue.top().due == earliest->first);
        REQUIRE(queue.top().key == earliest->second);
        reference.erase(earliest);
        queue.pop();
      }
      REQUIRE((reference.empty() || reference.begin()->first > now));
    }
    REQUIRE(queue.size() == reference.size());
    REQUIRE(queue.next_due() == (reference.empty() ? std::optional<std::uint64_t>()
                                                   : std::optional<std::uint64_t>(reference.begin()->first)));
  }
}

TEST_CASE("a batch of events has the same effects as the events one by one", "[engine][structures]") {
  // Two engines, the same traffic: one gets each event alone, the other whole batches at
  // the same instants. Every effect must match, byte for byte once encoded. A large fleet
  // (a node hosting 16 384 more agents, beating every round) takes the batch's other
  // path, which loads records ahead and reuses the ids' hashes.
  const bool large = GENERATE(false, true);
  constexpr int bulk_agents = 16'384;
  auto config = quiet_config();
  config.agent_health_check_interval_ms = 5'000;  // probes fire inside the run
  engine single(config);
  engine batched(config);
  effects single_out;
  effects batched_out;
  std::mt19937_64 random(5);
  std::uniform_int_distribution<int> pick_node(0, 29);
  std::uniform_int_distribution<int> pick_agent(0, 9);
  std::uniform_int_distribution<int> pick_kind(0, 9);
  std::map<int, std::uint64_t> seq;
  time_ms now = engine_fixture::start_ms;
  std::uint64_t task_number = 0;

  const auto make = [&](int node, event_body body, bool critical) {
    event message;
    message.header.node = "n" + std::to_string(node);
    message.header.incarnation = 1;
    message.header.seq = critical ? ++seq[node] : 0;
    message.header.ts_ms = now;
    message.body = std::move(body);
    return message;
  };
  const auto encoded = [](const effects& out) {
    std::vector<byte_buffer> all;
    for (const auto& message : out.commands) all.push_back(encode(message));
    for (const auto& message : out.acks) all.push_back(encode(message));
    for (const auto& derived : out.events) {
      event message;
      message.header.node = "p";
      message.header.episode = derived.episode;
      message.body = derived.body;
      all.push_back(encode(message));
    }
    return all;
  };

  std::vector<event> batch;
  for (int node = 0; node < 30; ++node) {
    for (int agent = 0; agent < 10; ++agent) {
      // Agents of odd nodes name a supervisor: a lookup of a node other than the sender's.
      batch.push_back(make(node, events::agent_registered{"n" + std::to_string(node) + ".a" + std::to_string(agent),
                                                          "pool", {}, node % 2 == 1 ? "n" + std::to_string(node - 1) : "", 0},
                           true));
    }
  }
  events::heartbeat bulk_beat;
  bulk_beat.interval_ms = 1000;
  if (large) {
    for (int agent = 0; agent < bulk_agents; ++agent) {
      const auto id = "bulk.a" + std::to_string(agent);
      batch.push_back(make(1000, events::agent_registered{id, "bulk", {}, {}, 0}, true));
      bulk_beat.agents.push_back({id, 10, false});
    }
  }
  for (int round = 0; round < 400; ++round) {
    if (large) batch.push_back(make(1000, bulk_beat, false));
    for (const auto& message : batch) single.on_event(message, now, single_out);
    batched.on_events(batch, now, batched_out);
    REQUIRE(encoded(single_out) == encoded(batched_out));
    REQUIRE(single_out.tasks_changed == batched_out.tasks_changed);
    REQUIRE(single_out.agents_changed == batched_out.agents_changed);
    single_out.clear();
    batched_out.clear();
    batch.clear();

    now += 97;
    const auto count = 1 + round % 70;
    for (int made = 0; made < count; ++made) {
      const auto node = pick_node(random);
      const auto agent = "n" + std::to_string(node) + ".a" + std::to_string(pick_agent(random));
      const auto kind = pick_kind(random);
      if (kind == 9 && node % 2 == 1 && round % 50 == 0) {
        // A supervisor reports its child's exit: a lookup of a node other than the sender's.
        batch.push_back(make(node - 1, events::node_exited{"n" + std::to_string(node), 1, 0, 9, "killed", {}}, true));
      } else if (kind == 0 && node % 7 != 0) {  // nodes 0, 7, 14, ... fall silent and die
        events::heartbeat beat;
        beat.interval_ms = 1000;
        for (int hosted = 0; hosted < 10; ++hosted) {
          beat.agents.push_back({"n" + std::to_string(node) + ".a" + std::to_string(hosted), 10, false});
        }
        batch.push_back(make(node, beat, false));
      } else if (kind < 5) {
        const auto task = "t" + std::to_string(++task_number);
        batch.push_back(make(node, events::task_started{task, agent, 1}, true));
        batch.push_back(make(node, events::task_failed{task, agent, "Transient", "x", true, 1, "pool", {}}, true));
      } else {
        const auto task = "t" + std::to_string(++task_number);
        batch.push_back(make(node, events::task_started{task, agent, 1}, true));
        batch.push_back(make(node, events::task_succeeded{task, agent, 1}, true));
      }
    }
  }
  REQUIRE(single.stats().events_applied == batched.stats().events_applied);
  REQUIRE((batched.stats().events_loaded_ahead > 0) == large);
  REQUIRE(single.stats().commands_issued == batched.stats().commands_issued);
  REQUIRE(single.stats().commands_issued > 0);
  std::map<std::string, std::string> single_states;
  std::map<std::string, std::string> batched_states;
  single.for_each_agent([&](const agent_record& agent) { single_states[agent.agent] = to_string(agent.state); });
  batched.for_each_agent([&](const agent_record& agent) { batched_states[agent.agent] = to_string(agent.state); });
  REQUIRE(single_states == batched_states);
  REQUIRE(std::count_if(single_states.begin(), single_states.end(),
                        [](const auto& entry) { return entry.second != "healthy"; }) > 0);
}

}  // namespace rrh::engine::test
