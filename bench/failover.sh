#!/usr/bin/env bash
# Runs bench/failover.ts (a dev cluster's failover time and heartbeat cost) in a private network and mount namespace, trusting a CA made for the run.
# Usage: sudo bash bench/failover.sh [--groups 10,50] [--kills 3] [--idle-seconds 30] [--json FILE]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
tls_dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-tls.XXXXXX")
trap 'rm -rf "$tls_dir"' EXIT
node -e "import('./dist/src/lib/tls.js').then((m) => m.ensureCa(process.argv[1]))" "$tls_dir"
export BERTH_TEST_TLS_DIR="$tls_dir" NODE_EXTRA_CA_CERTS="$tls_dir/ca.crt"
bash scripts/isolated.sh node --enable-source-maps dist/bench/failover.js "$@"
