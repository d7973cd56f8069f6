#include "store_guard.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace rrh::processor {

namespace {

// A store error without the "state store '<path>': " that every store error starts with:
// the status line names the path once.
std::string brief(const std::string& detail, const std::string& path) {
  const std::string prefix = "state store '" + path + "': ";
  return detail.rfind(prefix, 0) == 0 ? detail.substr(prefix.size()) : detail;
}

}  // namespace

store_guard::store_guard(std::unique_ptr<store> opened, options settings, const clock& wall)
    : store_(std::move(opened)), settings_(settings), wall_(wall), retry_delay_ms_(settings.retry_initial_ms) {
  RRH_ASSERT(store_ != nullptr);
  RRH_ASSERT(settings_.retry_initial_ms > 0 && settings_.retry_max_ms >= settings_.retry_initial_ms);
  RRH_ASSERT(settings_.report_interval_ms >= 0 && settings_.file_check_interval_ms >= 0);
}

status store_guard::fail(mono_ms now, std::string reason, const rrh::error& failure, bool retry_at_once) {
  ++health_.failures;
  ++attempts_in_spell_;
  if (!health_.degraded) {
    health_.degraded = true;
    health_.since_wall_ms = static_cast<std::int64_t>(wall_.wall_ms());
    spell_started_ = now;
    retry_delay_ms_ = settings_.retry_initial_ms;
  }
  health_.reason = std::move(reason);
  if (retry_at_once) {
    next_retry_ = now;
  } else {
    next_retry_ = now + mono_ms{retry_delay_ms_};
    retry_delay_ms_ = std::min(retry_delay_ms_ * 2, settings_.retry_max_ms);
  }
  // The log_throttle of rrh/log.hpp reads a clock; here time is the argument, as in the engine.
  if (!last_report_ || now - *last_report_ >= mono_ms{settings_.report_interval_ms}) {
    last_report_ = now;
    spdlog::critical(
        "state store degraded for {} ms ({} failed attempts): {}; not acking and not reading events until "
        "a commit succeeds; next attempt in {} ms ({})",
        (now - spell_started_).count(), attempts_in_spell_, health_.reason, (next_retry_ - now).count(),
        failure.detail);
  }
  return failure;
}

void store_guard::recovered(mono_ms now) {
  if (!health_.degraded) return;
  spdlog::warn("state store recovered after {} ms and {} failed attempts (last: {}); acking resumes",
               (now - spell_started_).count(), attempts_in_spell_, health_.reason);
  ++health_.recoveries;
  health_.degraded = false;
  health_.reason.clear();
  health_.since_wall_ms = 0;
  retry_delay_ms_ = settings_.retry_initial_ms;
  attempts_in_spell_ = 0;
  last_report_.reset();
}

status store_guard::ensure_file(mono_ms now) {
  auto identity = store_->check_file();
  last_file_check_ = now;
  if (!identity) {
    file_named_ = false;
    return fail(now, "state file cannot be examined: " + brief(identity.error().detail, store_->path()),
                identity.error(), false);
  }
  file_named_ = identity.value() == store_file::same;
  if (file_named_) return ok();
  const std::string what = std::string("state file ") + to_string(identity.value());
  if (!health_.degraded) {  // while degraded, fail() reports once per interval
    spdlog::critical("{} ({}): writing the state of the open database to the path again", what, store_->path());
  }
  if (auto rebuilt = store_->rebuild(wall_.wall_ms()); !rebuilt) {
    return fail(now, what + "; rebuild failed: " + brief(rebuilt.error().detail, store_->path()), rebuilt.error(),
                false);
  }
  file_named_ = true;
  ++health_.recoveries;
  spdlog::warn("{}: rebuilt at {} from the open database", what, store_->path());
  return ok();
}

status store_guard::commit(const rrh::engine::engine& engine, const rrh::engine::effects& changes, mono_ms now) {
  if (auto checked = ensure_file(now); !checked) return checked;
  if (auto committed = store_->commit(engine, changes); !committed) {
    return fail(now, "commit failed: " + brief(committed.error().detail, store_->path()), committed.error(), false);
  }
  // Deleted while committing: this batch is in the open database only. Not acked; the next
  // attempt, due at once, rebuilds the file from the open database and commits again.
  auto after = store_->check_file();
  if (!after || after.value() != store_file::same) {
    file_named_ = false;
    const auto failure = after ? make_error(errc::config, "state store '" + store_->path() + "': the state file was " +
                                                              to_string(after.value()) + " during the commit")
                               : after.error();
    return fail(now, after ? std::string("state file ") + to_string(after.value()) : "state file cannot be examined",
                failure, after.has_value());
  }
  recovered(now);
  return ok();
}

bool store_guard::check_file(mono_ms now) {
  if (last_file_check_ && now - *last_file_check_ < mono_ms{settings_.file_check_interval_ms}) return file_named_;
  last_file_check_ = now;
  auto identity = store_->check_file();
  if (identity && identity.value() == store_file::same) {
    file_named_ = true;
    return true;
  }
  file_named_ = false;
  if (health_.degraded) return false;  // the attempt already scheduled will find it
  if (!identity) {
    (void)fail(now, "state file cannot be examined: " + brief(identity.error().detail, store_->path()),
               identity.error(), false);
    return false;
  }
  const std::string what = std::string("state file ") + to_string(identity.value());
  (void)fail(now, what, make_error(errc::config, "state store '" + store_->path() + "': " + what), true);
  return false;
}

}  // namespace rrh::processor
