#!/usr/bin/env bash
# Installs what berth needs and is missing: Debian packages, npm packages, and the TypeScript build.
# Usage: install-deps.sh [--runtime-only]   (--runtime-only: what `berth server` needs, not the test tools)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runtime_pkgs=(runc crun conmon tini e2fsprogs containernetworking-plugins iproute2 iptables nftables zstd attr procps ca-certificates git gcc libc6-dev)
# Test tools: a real registry, image building (skopeo/umoci from busybox-static), htpasswd for registry auth,
# Debian's az CLI, python3-venv for the PyPI clients (scripts/python-clients.sh), a real etcd for the Store
# conformance suite; iperf3 for the overlay benchmark (bench/overlay.ts).
test_pkgs=(docker-registry skopeo umoci busybox-static apache2-utils openssl jq curl azure-cli bsdutils python3-venv etcd-server etcd-client iperf3)

pkgs=("${runtime_pkgs[@]}")
[ "${1:-}" = "--runtime-only" ] || pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # another install (a parallel run) may hold dpkg's lock: wait for it rather than fail
  apt-get -o DPkg::Lock::Timeout=600 update -q >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
fi

cd "$root"
# better-sqlite3 builds from source against the local Node headers (no prebuilt download is possible).
export npm_config_nodedir=/usr
# Installed again only when the lockfile's content changed (a fresh checkout's newer mtime is no reason).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.berth-lock-sha256 2>/dev/null)" != "$lock_sum" ] \
   || ! node -e "require('better-sqlite3')" 2>/dev/null; then
  echo "install-deps: npm ci" >&2
  npm ci --no-audit --no-fund >&2
  echo "$lock_sum" > node_modules/.berth-lock-sha256
fi
echo "install-deps: building" >&2
npm run --silent build >&2
