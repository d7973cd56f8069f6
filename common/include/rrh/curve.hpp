#pragma once
/// The authenticated bus: CURVE key files, socket setup and the ZAP handler shared by the
/// broker, the processor, the shim and the tools. With `security: curve` every
/// connection is encrypted, and the servers (the broker, the processor's control socket)
/// accept only public keys found in a directory of allowed keys.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <zmq.hpp>

#include "rrh/expected.hpp"
#include "rrh/log.hpp"

namespace rrh {

/// Whether the bus is authenticated. `none` keeps ZeroMQ's NULL mechanism (no
/// authentication, no encryption: loopback or a private network only).
enum class bus_security : std::uint8_t { none, curve };

/// "none" or "curve".
const char* to_string(bus_security security) noexcept;
/// Parses "none" or "curve"; anything else is errc::config naming `setting`.
expected<bus_security> parse_bus_security(std::string_view text, std::string_view setting);

/// Length of a CURVE key in Z85 text (32 bytes encoded).
inline constexpr std::size_t curve_key_text_length = 40;
/// Largest key file read; a key is one line, so anything larger is not a key file.
inline constexpr std::size_t curve_key_file_bytes_max = 4096;
/// Key files taken from a directory of allowed keys; more is a configuration mistake.
inline constexpr std::size_t allowed_keys_max = 100'000;
/// Suffix of a public key file (`rrh-ctl keygen` writes NAME.key and NAME.key_secret).
inline constexpr std::string_view public_key_suffix = ".key";
/// Suffix of a secret key file.
inline constexpr std::string_view secret_key_suffix = ".key_secret";
/// The endpoint libzmq sends ZAP requests to, in the socket's own context.
inline constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";

/// True when this libzmq was built with CURVE (libsodium).
bool curve_available() noexcept;

/// For `security: curve`: an errc::config error when this libzmq has no CURVE, or when one
/// of the `required` settings (name, value) is empty, naming it; ok otherwise.
status check_curve_settings(std::initializer_list<std::pair<std::string_view, const std::string*>> required);

/// A CURVE key pair as Z85 text.
struct curve_keypair {
  std::string public_key;
  std::string secret_key;
};

/// True when `text` is 40 Z85 characters that decode to a 32-byte key.
bool is_curve_key_text(std::string_view text);

/// Reads a public key file (one line of Z85). Errors name `setting` and the path:
/// missing or unreadable file, not a key.
expected<std::string> read_public_key_file(const std::string& path, std::string_view setting);

/// Reads a secret key file and derives its public key. The file must not be readable by
/// group or others (as ssh refuses such keys), so a copied key with loose permissions is
/// noticed before it is used.
expected<curve_keypair> read_secret_key_file(const std::string& path, std::string_view setting);

/// Makes a key pair and writes `dir/NAME.key` (public) and `dir/NAME.key_secret` (secret,
/// mode 0600). Refuses to overwrite either file and refuses a name that is not a plain
/// file name. Returns the pair.
expected<curve_keypair> generate_key_files(const std::string& dir, const std::string& name);

/// The keys a client needs: its own pair and the server's public key.
struct curve_client_keys {
  curve_keypair own;
  std::string server_public_key;
};

/// Reads the two files of a client (`curve_secret_key_file`, `curve_server_key_file`);
/// errors name the setting whose file is wrong.
expected<curve_client_keys> load_client_keys(const std::string& secret_key_file,
                                             const std::string& server_key_file);

/// Sets `socket` up as a CURVE client of the server whose public key is in `keys`. Call
/// before connect.
void make_curve_client(zmq::socket_t& socket, const curve_client_keys& keys);

/// Sets `socket` up as a CURVE server with `own` keys; ZAP requests for it carry
/// `zap_domain`, so one handler can tell the sockets apart. Call before bind.
void make_curve_server(zmq::socket_t& socket, const curve_keypair& own, std::string_view zap_domain);

/// The public keys allowed to connect: every `*.key` file of a directory. The directory
/// is read again when an unknown key asks (at most once per `reload_interval`), so a key
/// added to it is accepted without a restart; a key removed stays accepted until a
/// restart (connections already made are not cut either).
class allowed_keys {
 public:
  /// Re-reads of the directory prompted by unknown keys are at least this far apart, so
  /// a flood of connection attempts cannot turn into a flood of directory reads.
  static constexpr std::chrono::milliseconds reload_interval{1000};

  explicit allowed_keys(std::string directory);

  /// Reads the directory. Errors (errc::config, naming `setting`): missing directory, an
  /// unreadable or malformed `.key` file, too many files. On error the keys held stay.
  status load(std::string_view setting);
  /// True when `key` (Z85) is allowed; re-reads the directory first when it is unknown
  /// and the last read is older than reload_interval.
  bool allows(const std::string& key);
  std::size_t size() const noexcept { return keys_.size(); }
  const std::string& directory() const noexcept { return directory_; }

 private:
  std::string directory_;
  std::set<std::string> keys_;
  std::chrono::steady_clock::time_point last_load_{};
};

/// Counters of a ZAP handler.
struct zap_stats {
  std::uint64_t accepted = 0;
  std::uint64_t refused = 0;
  std::uint64_t malformed = 0;  ///< requests that were not ZAP 1.0 CURVE requests
};

/// Answers ZeroMQ's authentication requests (ZAP, RFC 27) for the CURVE servers of one
/// context: binds a REP socket to inproc://zeromq.zap.01, which the owner polls with its
/// other sockets and drains with `handle_requests`. The decision is the owner's
/// `policy(domain, public_key_z85)`; an accepted peer's User-Id is its Z85 public key, so
/// every message it sends carries the key as metadata (`message.gets("User-Id")`).
class zap_handler {
 public:
  /// Requests answered per call of handle_requests.
  static constexpr std::size_t batch_max = 64;

  using policy = std::function<bool(std::string_view domain, const std::string& public_key)>;

  /// Binds the handler in `context`; must exist before the first CURVE server binds.
  zap_handler(zmq::context_t& context, policy decide);

  /// The socket to poll for ZMQ_POLLIN.
  zmq::socket_t& socket() noexcept { return socket_; }
  /// Answers the waiting requests (at most batch_max).
  void handle_requests();
  const zap_stats& counters() const noexcept { return stats_; }

 private:
  zmq::socket_t socket_;
  policy decide_;
  zap_stats stats_;
  log_throttle throttle_;
};

}  // namespace rrh
