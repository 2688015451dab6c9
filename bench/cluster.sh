#!/usr/bin/env bash
# Create-to-running through a remote agent vs the embedded default, in one run (bench/cluster.ts), in a network and
# mount namespace of its own (the dev cluster's bridge and addresses are fixed), under the shared test lock.
# Usage: sudo bash bench/cluster.sh [--samples N] [--json FILE]
#        sudo bash bench/cluster.sh --burst N [--json FILE]   N concurrent creates on three hosts (bench/cluster-burst.ts)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
# the same OCI runtime for both: crun where it runs
source bench/crun-hugetlb.sh
bench=dist/bench/cluster.js
case " $* " in *" --burst "*) bench=dist/bench/cluster-burst.js ;; esac
exec flock /tmp/berth-tests.lock bash scripts/isolated.sh node --enable-source-maps "$bench" "$@"
