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
