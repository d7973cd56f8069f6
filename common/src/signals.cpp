#include "rrh/signals.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <mutex>

namespace rrh {
namespace {

std::atomic<bool> stop_flag{false};
std::atomic<int> last_signal{0};
int pipe_fds[2] = {-1, -1};

void wake() noexcept {
  if (pipe_fds[1] >= 0) {
    const char byte = 1;
    [[maybe_unused]] const auto written = ::write(pipe_fds[1], &byte, 1);
  }
}

extern "C" void on_stop_signal(int signal_number) {
  last_signal.store(signal_number);
  stop_flag.store(true);
  wake();
}

}  // namespace

void install_stop_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      pipe_fds[0] = pipe_fds[1] = -1;
    }
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
  });
}

bool stop_requested() noexcept { return stop_flag.load(); }

void request_stop() noexcept {
  stop_flag.store(true);
  wake();
}

int stop_fd() noexcept { return pipe_fds[0]; }

int stop_signal() noexcept { return last_signal.load(); }

}  // namespace rrh
