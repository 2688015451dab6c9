#!/usr/bin/env bash
# Installs whatever is missing, then runs every test (unit, integration and end-to-end) with node's test runner.
# Usage: test.sh [PATTERN...]   (only test files whose path contains one of the patterns)
set -euo pipefail
# containers, cgroups and network namespaces need root: a user's run goes through sudo (a root shell needs none)
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "$0: run this as root (there is no sudo here)" >&2; exit 1; }
  exec sudo -E bash "$0" "$@"
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
# The Python clients (az CLI and SDK from PyPI), each in a venv of its own, cached by version.
bash "$root/scripts/python-clients.sh"
cd "$root"

# One CA for every berth server the tests start, trusted by each test process from its start (as a
# user's SDK would trust berth's CA through NODE_EXTRA_CA_CERTS).
tls_dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-test-tls.XXXXXX")
trap 'rm -rf "$tls_dir"' EXIT
node -e "import('./dist/src/lib/tls.js').then((m) => m.ensureCa(process.argv[1]))" "$tls_dir"
export BERTH_TEST_TLS_DIR="$tls_dir" NODE_EXTRA_CA_CERTS="$tls_dir/ca.crt"

mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
if [ $# -gt 0 ]; then
  selected=()
  for f in "${files[@]}"; do for p in "$@"; do [[ "$f" == *"$p"* ]] && { selected+=("$f"); break; }; done; done
  files=("${selected[@]}")
fi
# Tests share the host's iptables, mounts and network namespaces and count them: run files one at a time.
node --enable-source-maps --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
