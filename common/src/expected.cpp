#include "rrh/expected.hpp"

namespace rrh {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::malformed: return "malformed";
    case errc::too_large: return "too_large";
    case errc::invalid_id: return "invalid_id";
    case errc::unsupported_version: return "unsupported_version";
    case errc::unknown_kind: return "unknown_kind";
    case errc::outbox_full: return "outbox_full";
    case errc::timeout: return "timeout";
    case errc::closed: return "closed";
    case errc::invalid_argument: return "invalid_argument";
    case errc::config: return "config";
  }
  return "unknown";
}

}  // namespace rrh
