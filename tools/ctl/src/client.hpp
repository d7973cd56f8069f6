#pragma once
/// rrh-ctl's one exchange with the processor's control socket: send a request, wait for the
/// reply or a deadline. Never hangs: the socket lingers 0 ms, so closing it with an
/// unanswered request returns at once.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "rrh/curve.hpp"
#include "rrh/expected.hpp"

namespace rrh::ctl {

/// Default control endpoint of rrh-processor.
inline constexpr std::string_view control_endpoint_default = "tcp://127.0.0.1:7705";

/// Longest reply accepted, in bytes: a full `agents` list of the largest fleet fits.
inline constexpr std::size_t reply_bytes_max = std::size_t{64} * 1024 * 1024;

/// Sends `request` as one frame (after an empty delimiter, as REQ does) from a DEALER
/// connected to `endpoint`, and returns the reply frame's text. Errors: errc::timeout when
/// no reply arrives within `timeout`; errc::invalid_argument for an endpoint ZeroMQ refuses;
/// errc::malformed or errc::too_large for a reply of the wrong shape or size.
/// With `curve`, the DEALER is a CURVE client of the processor's control socket (its
/// server key is the processor's public key); a refused key shows as errc::timeout.
expected<std::string> ask(const std::string& endpoint, std::string_view request,
                          std::chrono::milliseconds timeout, const curve_client_keys* curve = nullptr);

}  // namespace rrh::ctl
