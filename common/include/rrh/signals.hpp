#pragma once
/// Clean shutdown on Ctrl-C: SIGINT and SIGTERM set a flag and wake a file descriptor
/// that event loops poll beside their sockets, so they stop at once, not at a timeout.

namespace rrh {

/// Installs handlers for SIGINT and SIGTERM (idempotent). Also ignores SIGPIPE.
void install_stop_handlers();

/// True once SIGINT or SIGTERM arrived (or `request_stop` was called).
bool stop_requested() noexcept;

/// Asks every loop that watches `stop_fd` to stop, as a signal would.
void request_stop() noexcept;

/// A file descriptor that becomes readable when a stop is requested; poll it with
/// ZMQ_POLLIN beside sockets. Valid after `install_stop_handlers`.
int stop_fd() noexcept;

/// The number of the last stop signal received, 0 when none.
int stop_signal() noexcept;

}  // namespace rrh
