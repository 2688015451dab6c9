#!/usr/bin/env bash
# Installs whatever is missing, then starts berth in the background (embedded default) and configures the CLI.
set -euo pipefail
# containers, cgroups and network namespaces need root: a user's run goes through sudo (a root shell needs none)
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "$0: run this as root (there is no sudo here)" >&2; exit 1; }
  exec sudo -E bash "$0" "$@"
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh" --runtime-only
exec "$root/bin/berth" up --skip-install "$@"
