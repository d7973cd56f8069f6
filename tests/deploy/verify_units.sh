#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd with `systemd-analyze verify`, pointing their
# ExecStart at the binaries of this build (verify insists that the program exists), and
# checks that the example configuration files load in the programs they are for.
set -euo pipefail
source_dir="$1"
bin_dir="$2"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

"$bin_dir/rrh-processor" --config "$source_dir/deploy/rrh.yaml" --print-config >/dev/null
"$bin_dir/rrh-processor" --config "$source_dir/deploy/quickstart.yaml" --print-config >/dev/null
echo "deploy/rrh.yaml and deploy/quickstart.yaml load"

# rrh must not give up while a cause persists (a full disk, a port taken): each unit
# restarts whatever the exit, with no start limit that would leave it failed.
setting() {  # setting UNIT SECTION KEY: the last value of KEY in [SECTION], or nothing
  awk -v section="[$2]" -v key="$3" '
    /^\[/ { inside = ($0 == section) }
    inside && index($0, key "=") == 1 { value = substr($0, length(key) + 2) }
    END { print value }' "$1"
}
for unit in "$source_dir"/deploy/systemd/*.service; do
  name="$(basename "$unit")"
  for check in "Unit StartLimitIntervalSec 0" "Service Restart always"; do
    read -r section key wanted <<<"$check"
    found="$(setting "$unit" "$section" "$key")"
    if [[ "$found" != "$wanted" ]]; then
      echo "FAIL: $name: [$section] $key=$found, wanted $key=$wanted (the unit would give up restarting)"
      exit 1
    fi
  done
  if [[ -n "$(setting "$unit" Unit StartLimitBurst)" ]]; then
    echo "FAIL: $name: a StartLimitBurst= gives up restarting"
    exit 1
  fi
  echo "ok: $name restarts without a start limit"
done

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not found: unit check skipped"
  exit 0
fi
for unit in "$source_dir"/deploy/systemd/*.service; do
  name="$(basename "$unit")"
  sed -e "s#/usr/bin/rrh-#$bin_dir/rrh-#g" "$unit" >"$scratch/$name"
  # Only the unit's own findings count; verify also reports on unrelated system units.
  output="$(systemd-analyze verify "$scratch/$name" 2>&1 || true)"
  findings="$(grep -F "$name" <<<"$output" || true)"
  if [[ -n "$findings" ]]; then
    echo "$findings"
    echo "FAIL: $name"
    exit 1
  fi
  echo "ok: $name"
done
