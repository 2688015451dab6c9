#!/usr/bin/env bash
# Overlay vs one host's bridge vs a bare veth, in one run (bench/overlay.ts), in a network and mount namespace of its
# own (scripts/isolated.sh), under the shared test lock.
# Usage: sudo bash bench/overlay.sh [--rounds N] [--trips N] [--connects N] [--seconds S] [--json FILE]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
exec flock /tmp/berth-tests.lock bash scripts/isolated.sh node --enable-source-maps dist/bench/overlay.js "$@"
