#!/usr/bin/env bash
# Installs whatever is missing, then starts berth in the background (embedded default) and configures the CLI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh" --runtime-only
exec "$root/bin/berth" up --skip-install "$@"
