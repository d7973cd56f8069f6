#pragma once
/// Errors as values: the core returns `expected<T>` instead of throwing, and the shell
/// (sockets, files, command line) decides whether to log, count or raise.
#include <string>
#include <utility>
#include <variant>

#include "rrh/assert.hpp"

namespace rrh {

/// Every error a core function can report. The meaning of each value is stable: tools
/// and counters use the names from `to_string`.
enum class errc {
  malformed,            ///< bytes that are not valid msgpack, or a field of the wrong type
  too_large,            ///< a message, id, text or checkpoint over its limit
  invalid_id,           ///< an id that is empty, too long or has a disallowed character
  unsupported_version,  ///< a protocol major version this build does not speak
  unknown_kind,         ///< a kind name that this build does not know
  outbox_full,          ///< the outbox is at capacity and the policy is `error`
  timeout,              ///< a blocking call passed its deadline
  closed,               ///< the object was closed or is shutting down
  invalid_argument,     ///< a caller passed a value outside its documented range
  config,               ///< a configuration file or variable could not be used
};

/// The stable, lower-case name of an error code, as counters and logs show it.
const char* to_string(errc code) noexcept;

/// An error code with a human-readable detail for logs.
struct error {
  errc code;
  std::string detail;
};

/// A value or an error. Minimal on purpose: C++20 has no std::expected.
template <class T>
class expected {
 public:
  expected(T value) : storage_(std::move(value)) {}  // NOLINT: implicit by design
  expected(rrh::error failure) : storage_(std::move(failure)) {}  // NOLINT: implicit by design

  /// True when a value is held.
  bool has_value() const noexcept { return storage_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    RRH_ASSERT(has_value());
    return std::get<0>(storage_);
  }
  const T& value() const& {
    RRH_ASSERT(has_value());
    return std::get<0>(storage_);
  }
  T&& value() && {
    RRH_ASSERT(has_value());
    return std::get<0>(std::move(storage_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const rrh::error& error() const {
    RRH_ASSERT(!has_value());
    return std::get<1>(storage_);
  }

 private:
  std::variant<T, rrh::error> storage_;
};

/// The result of an operation that returns nothing but may fail.
struct ok_t {};
using status = expected<ok_t>;
inline status ok() { return ok_t{}; }

/// Shorthand to build an error value.
inline error make_error(errc code, std::string detail) { return error{code, std::move(detail)}; }

}  // namespace rrh
