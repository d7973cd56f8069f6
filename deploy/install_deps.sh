#!/usr/bin/env bash
# Installs the Debian 12 packages rrh needs to build, test and run, and nothing else.
# Idempotent: when every package is already installed it prints nothing and exits 0.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: deploy/install_deps.sh [--list] [--help]

Installs the Debian packages rrh needs (compiler, CMake, ZeroMQ, msgpack, spdlog,
yaml-cpp, CLI11, Catch2, SQLite, Python test tools) with apt-get, only those missing.
Runs apt-get directly as root, through `sudo -n` otherwise; when neither is possible
it prints the exact command to run and exits 1.

  --list   print the package list, one per line, and exit
  --help   show this help
USAGE
}

packages=(
  build-essential cmake pkg-config
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libspdlog-dev libfmt-dev
  catch2 libyaml-cpp-dev libcli11-dev libsqlite3-dev sqlite3
  python3 python3-zmq python3-msgpack python3-pytest python3-dev python3-pybind11 pybind11-dev
  clang-14 libclang-rt-14-dev
)

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --list) printf '%s\n' "${packages[@]}"; exit 0 ;;
  "") ;;
  *) echo "install_deps.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_deps.sh: dpkg-query/apt-get not found; this script supports Debian 12." >&2
  echo "Install these packages (or their equivalents) yourself: ${packages[*]}" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  cat >&2 <<MESSAGE
install_deps.sh: these packages are missing and root rights are needed to install them:
  ${missing[*]}
Run as root:
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}
then run this script again.
MESSAGE
  exit 1
fi

echo "install_deps.sh: installing missing packages: ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install_deps.sh: done"
