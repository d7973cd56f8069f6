#include "rrh/curve.hpp"

#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include <zmq_addon.hpp>

#include <array>
#include <iterator>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace rrh {
namespace {

/// Size of a decoded CURVE key.
constexpr std::size_t curve_key_bytes = 32;
/// Frames of a ZAP 1.0 request for CURVE: version, request id, domain, address,
/// identity, mechanism, credentials (the client's public key).
constexpr std::size_t zap_request_frames = 7;

rrh::error key_error(std::string_view setting, const std::string& path, const std::string& why) {
  return make_error(errc::config, std::string(setting) + ": '" + path + "': " + why);
}

/// The file's text without surrounding white space, or an error.
expected<std::string> read_key_text(const std::string& path, std::string_view setting) {
  if (path.empty()) return make_error(errc::config, std::string(setting) + ": no file given");
  std::error_code failure;
  if (!std::filesystem::is_regular_file(path, failure)) {
    return key_error(setting, path, "no such file");
  }
  const auto size = std::filesystem::file_size(path, failure);
  if (failure || size > curve_key_file_bytes_max) {
    return key_error(setting, path, "not a key file (larger than " +
                                        std::to_string(curve_key_file_bytes_max) + " bytes)");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return key_error(setting, path, "cannot read it");
  std::ostringstream text;
  text << file.rdbuf();
  std::string content = text.str();
  const auto first = content.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return key_error(setting, path, "the file is empty");
  const auto last = content.find_last_not_of(" \t\r\n");
  content = content.substr(first, last - first + 1);
  if (!is_curve_key_text(content)) {
    return key_error(setting, path,
                     "not a CURVE key (expected one line of 40 Z85 characters, as "
                     "`rrh-ctl keygen` writes)");
  }
  return content;
}

status write_new_file(const std::filesystem::path& path, const std::string& text, mode_t mode) {
  // O_EXCL: never overwrite a key, even one created between our check and the write.
  const std::string name = path.string();
  FILE* file = nullptr;
  const int descriptor = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (descriptor < 0) {
    return make_error(errc::config, "cannot create '" + name + "': " + std::strerror(errno));
  }
  file = ::fdopen(descriptor, "w");
  if (file == nullptr) {
    ::close(descriptor);
    return make_error(errc::config, "cannot write '" + name + "'");
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) return make_error(errc::config, "cannot write '" + name + "'");
  return ok();
}

std::string text_of(const zmq::message_t& message) {
  return {static_cast<const char*>(message.data()), message.size()};
}

}  // namespace

const char* to_string(bus_security security) noexcept {
  return security == bus_security::curve ? "curve" : "none";
}

expected<bus_security> parse_bus_security(std::string_view text, std::string_view setting) {
  if (text == "none") return bus_security::none;
  if (text == "curve") return bus_security::curve;
  return make_error(errc::config, std::string(setting) + ": '" + std::string(text) +
                                      "' is not a security mode (none or curve)");
}

bool curve_available() noexcept { return zmq_has("curve") != 0; }

status check_curve_settings(std::initializer_list<std::pair<std::string_view, const std::string*>> required) {
  if (!curve_available()) {
    return make_error(errc::config, "security: curve, but this libzmq has no CURVE support");
  }
  for (const auto& [name, value] : required) {
    if (value->empty()) return make_error(errc::config, std::string(name) + ": required with security: curve");
  }
  return ok();
}

bool is_curve_key_text(std::string_view text) {
  if (text.size() != curve_key_text_length) return false;
  const std::string terminated(text);
  std::array<std::uint8_t, curve_key_bytes> decoded{};
  return zmq_z85_decode(decoded.data(), terminated.c_str()) != nullptr;
}

expected<std::string> read_public_key_file(const std::string& path, std::string_view setting) {
  return read_key_text(path, setting);
}

expected<curve_keypair> read_secret_key_file(const std::string& path, std::string_view setting) {
  struct stat file_status {};
  if (!path.empty() && ::stat(path.c_str(), &file_status) == 0 && (file_status.st_mode & 077) != 0) {
    return key_error(setting, path,
                     "the secret key is readable by group or others (run chmod 600 on it)");
  }
  auto secret = read_key_text(path, setting);
  if (!secret) return secret.error();
  std::array<char, curve_key_text_length + 1> public_text{};
  if (zmq_curve_public(public_text.data(), secret->c_str()) != 0) {
    return key_error(setting, path, "cannot derive the public key (libzmq without CURVE?)");
  }
  return curve_keypair{std::string(public_text.data(), curve_key_text_length), *secret};
}

expected<curve_keypair> generate_key_files(const std::string& dir, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return make_error(errc::invalid_argument, "key name '" + name + "' is not a plain file name");
  }
  if (!curve_available()) {
    return make_error(errc::config, "this libzmq has no CURVE support (built without libsodium)");
  }
  std::error_code failure;
  if (!std::filesystem::is_directory(dir, failure)) {
    return make_error(errc::config, "'" + dir + "' is not a directory");
  }
  const auto public_path = std::filesystem::path(dir) / (name + std::string(public_key_suffix));
  const auto secret_path = std::filesystem::path(dir) / (name + std::string(secret_key_suffix));
  for (const auto& path : {public_path, secret_path}) {
    if (std::filesystem::exists(path, failure)) {
      return make_error(errc::config, "'" + path.string() + "' exists; refusing to overwrite it");
    }
  }
  std::array<char, curve_key_text_length + 1> public_text{};
  std::array<char, curve_key_text_length + 1> secret_text{};
  if (zmq_curve_keypair(public_text.data(), secret_text.data()) != 0) {
    return make_error(errc::config, std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
  }
  curve_keypair pair{std::string(public_text.data(), curve_key_text_length),
                     std::string(secret_text.data(), curve_key_text_length)};
  // The secret first: a crash between the two leaves no public key without its secret.
  if (auto written = write_new_file(secret_path, pair.secret_key + "\n", 0600); !written) {
    return written.error();
  }
  if (auto written = write_new_file(public_path, pair.public_key + "\n", 0644); !written) {
    return written.error();
  }
  return pair;
}

expected<curve_client_keys> load_client_keys(const std::string& secret_key_file,
                                             const std::string& server_key_file) {
  auto own = read_secret_key_file(secret_key_file, "curve_secret_key_file");
  if (!own) return own.error();
  auto server = read_public_key_file(server_key_file, "curve_server_key_file");
  if (!server) return server.error();
  return curve_client_keys{std::move(own.value()), std::move(server.value())};
}

void make_curve_client(zmq::socket_t& socket, const curve_client_keys& keys) {
  socket.set(zmq::sockopt::curve_serverkey, keys.server_public_key);
  socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
}

void make_curve_server(zmq::socket_t& socket, const curve_keypair& own, std::string_view zap_domain) {
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, own.secret_key);
  socket.set(zmq::sockopt::zap_domain, std::string(zap_domain));
}

// ---- allowed keys --------------------------------------------------------------------

allowed_keys::allowed_keys(std::string directory) : directory_(std::move(directory)) {}

status allowed_keys::load(std::string_view setting) {
  last_load_ = std::chrono::steady_clock::now();
  std::error_code failure;
  if (directory_.empty()) return make_error(errc::config, std::string(setting) + ": no directory given");
  if (!std::filesystem::is_directory(directory_, failure)) {
    return make_error(errc::config, std::string(setting) + ": '" + directory_ + "' is not a directory");
  }
  std::set<std::string> found;
  std::filesystem::directory_iterator entries(directory_, failure);
  if (failure) {
    return make_error(errc::config,
                      std::string(setting) + ": cannot list '" + directory_ + "': " + failure.message());
  }
  for (const auto& entry : entries) {
    const auto name = entry.path().filename().string();
    if (name.size() <= public_key_suffix.size() ||
        name.compare(name.size() - public_key_suffix.size(), public_key_suffix.size(),
                     public_key_suffix) != 0) {
      continue;  // secret keys (.key_secret), notes and the like are not allowed keys
    }
    if (found.size() >= allowed_keys_max) {
      return make_error(errc::config, std::string(setting) + ": more than " +
                                          std::to_string(allowed_keys_max) + " keys in '" +
                                          directory_ + "'");
    }
    auto key = read_public_key_file(entry.path().string(), setting);
    if (!key) return key.error();
    found.insert(std::move(key.value()));
  }
  keys_ = std::move(found);
  return ok();
}

bool allowed_keys::allows(const std::string& key) {
  if (keys_.count(key) > 0) return true;
  if (std::chrono::steady_clock::now() - last_load_ < reload_interval) return false;
  if (auto reloaded = load("allowed keys"); !reloaded) {
    spdlog::warn("re-reading allowed keys: {}", reloaded.error().detail);
  }
  return keys_.count(key) > 0;
}

// ---- ZAP -----------------------------------------------------------------------------

zap_handler::zap_handler(zmq::context_t& context, policy decide)
    : socket_(context, zmq::socket_type::rep), decide_(std::move(decide)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind(zap_endpoint);
}

void zap_handler::handle_requests() {
  for (std::size_t handled = 0; handled < batch_max; ++handled) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket_, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
    std::string status_code = "400";
    std::string status_text = "not allowed";
    std::string user_id;
    const std::string request_id = frames.size() > 1 ? text_of(frames[1]) : std::string();
    if (frames.size() != zap_request_frames || text_of(frames[0]) != "1.0" ||
        text_of(frames[5]) != "CURVE" || frames[6].size() != curve_key_bytes) {
      ++stats_.malformed;
      status_text = "only CURVE is accepted";
    } else {
      std::array<char, curve_key_text_length + 1> key_text{};
      zmq_z85_encode(key_text.data(), static_cast<const std::uint8_t*>(frames[6].data()),
                     curve_key_bytes);
      const std::string key(key_text.data(), curve_key_text_length);
      const std::string domain = text_of(frames[2]);
      if (decide_(domain, key)) {
        ++stats_.accepted;
        status_code = "200";
        status_text = "OK";
        user_id = key;
      } else {
        ++stats_.refused;
        if (const auto count = throttle_.admit("refused." + domain); count > 0) {
          spdlog::warn("refused a connection to {} from {} with key {} ({} refused since last report)",
                       domain, text_of(frames[3]), key, count);
        }
      }
    }
    const std::array<std::string, 6> reply{"1.0", request_id, status_code, status_text, user_id, ""};
    for (std::size_t index = 0; index < reply.size(); ++index) {
      const auto flags = index + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      socket_.send(zmq::buffer(reply[index]), flags);
    }
  }
}

}  // namespace rrh
