#pragma once
/// The msgpack codec for wire protocol v1. Pure functions over bytes: no sockets, no
/// clock. Decoding never throws; every failure is an `rrh::error` the caller counts.
#include <cstddef>
#include <string>
#include <string_view>

#include "rrh/expected.hpp"
#include "rrh/protocol.hpp"

namespace rrh {

/// Prefix of the bus topic under which the broker republishes each relayed command.
inline constexpr std::string_view command_topic_prefix = "cmd.";

/// Encodes canonically: every field present, in the order PROTOCOL.md lists, integers in
/// their smallest msgpack form. Decoding and re-encoding a canonical message gives the
/// same bytes.
byte_buffer encode(const event& message);
byte_buffer encode(const command& message);

/// Decodes one event. Unknown fields are ignored; a missing field takes its default; an
/// unknown major version, an unknown kind, a wrong type, an invalid id or a value over a
/// limit is an error, and nothing is returned.
expected<event> decode_event(const void* data, std::size_t size);
/// Decodes one command, with the same rules as `decode_event`.
expected<command> decode_command(const void* data, std::size_t size);

/// Checks what a receiver would check (ids, text lengths, checkpoint size) without
/// encoding, so a sender can refuse bad input before it is sent.
status validate(const event& message);
status validate(const command& message);

/// Bus topic of an event: "<kind> <subject>", where the subject is the agent the event
/// concerns, else the episode for episode events, else the sender node. A subscriber
/// filters by kind prefix ("task.") or by exact kind and agent ("task.failed a1").
std::string event_topic(const event& message);

/// Bus topic under which the broker republishes a relayed command: "cmd.<kind> <node>".
std::string command_topic(std::string_view kind, std::string_view node);

}  // namespace rrh
