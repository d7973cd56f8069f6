#include "rrh/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace rrh {

status setup_logging(const std::string& name, const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return make_error(errc::invalid_argument,
                      "unknown log level '" + level +
                          "' (use trace, debug, info, warn, error, critical or off)");
  }
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return ok();
}

std::uint64_t log_throttle::admit(const std::string& key) {
  const std::lock_guard lock(mutex_);
  auto& entry = slots_[key];
  const auto now = clock_.now();
  if (!entry.logged_once || now - entry.last_logged >= interval_) {
    const auto count = entry.suppressed + 1;
    entry.logged_once = true;
    entry.last_logged = now;
    entry.suppressed = 0;
    return count;
  }
  ++entry.suppressed;
  return 0;
}

}  // namespace rrh
