#!/usr/bin/env bash
# Installs whatever is missing, then runs every test (unit, integration and end-to-end) with node's test runner.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
cd "$root"
# Tests share the host's iptables, mounts and network namespaces and count them: run files one at a time.
mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
exec node --enable-source-maps --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
