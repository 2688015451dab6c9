#!/usr/bin/env bash
# One command for BENCHMARKS.md: installs the peers and tools, builds, and runs the benchmark under the shared test lock.
# Usage: sudo bash bench/run.sh [--quick] [--no-peers] [--samples N] [--groups N] [--density N] [--pool N] [--runtime runc|crun|auto] [--json FILE]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
if [[ " $* " != *" --no-peers "* ]]; then
  missing=()
  for p in podman docker.io crun; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
fi
source bench/crun-hugetlb.sh
# Other test runs on this machine count host-wide netns, veths, iptables rules and mounts: take the shared lock.
exec flock /tmp/berth-tests.lock node --enable-source-maps dist/bench/bench.js "$@"
