#include "rrh/protocol.hpp"

#include <utility>

namespace rrh {
namespace {

template <class Variant, std::size_t... index>
std::vector<std::string_view> names_of(std::index_sequence<index...>) {
  return {std::variant_alternative_t<index, Variant>::kind_name...};
}

template <class T>
concept has_agent = requires(const T& value) { value.agent; };

template <class Variant>
std::string_view kind_of(const Variant& body) noexcept {
  return std::visit([](const auto& value) { return std::decay_t<decltype(value)>::kind_name; },
                    body);
}

template <class Variant>
std::string_view agent_of(const Variant& body) noexcept {
  return std::visit(
      [](const auto& value) -> std::string_view {
        if constexpr (has_agent<std::decay_t<decltype(value)>>) {
          return value.agent;
        } else {
          return {};
        }
      },
      body);
}

}  // namespace

bool is_valid_id(std::string_view text) noexcept {
  if (text.empty() || text.size() > id_length_max) return false;
  for (const char c : text) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                         c == '@' || c == '-';
    if (!allowed) return false;
  }
  return true;
}

std::string_view kind_name(const event_body& body) noexcept { return kind_of(body); }

std::string_view kind_name(const command_body& body) noexcept { return kind_of(body); }

std::vector<std::string_view> event_kind_names() {
  return names_of<event_body>(std::make_index_sequence<std::variant_size_v<event_body>>{});
}

std::vector<std::string_view> command_kind_names() {
  return names_of<command_body>(std::make_index_sequence<std::variant_size_v<command_body>>{});
}

bool is_critical(const event_body& body) noexcept {
  return !std::holds_alternative<events::heartbeat>(body) &&
         !std::holds_alternative<events::probe_reply>(body) &&
         !std::holds_alternative<events::command_undeliverable>(body);
}

std::string_view subject_agent(const event_body& body) noexcept { return agent_of(body); }

std::string_view subject_agent(const command_body& body) noexcept { return agent_of(body); }

}  // namespace rrh
