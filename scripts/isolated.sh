#!/usr/bin/env bash
# Runs a command in a network and mount namespace of its own: its network namespaces (/run/netns),
# links, bridges, routes, iptables rules and mounts are invisible to the host and to other isolated
# runs, so test files that count them can run side by side. Loopback is up; nothing else is reachable.
# Usage: isolated.sh COMMAND [ARG...]     (as root)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
mkdir -p /run/netns
exec unshare --net --mount --propagation private -- bash -c '
  set -euo pipefail
  ip link set lo up
  # named network namespaces are bind mounts under /run/netns: a private tmpfs holds this run'"'"'s own
  mount -t tmpfs -o mode=0755 berth-isolated /run/netns
  exec "$@"' isolated "$@"
