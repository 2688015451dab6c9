#!/usr/bin/env bash
# A real berth cluster on this machine: etcd, control plane replicas, and N hosts, each a network namespace on an
# underlay bridge with its own `berth agent` in a private mount namespace (its data dir, runc root, container bridge;
# its sandboxes, rules and mounts live and die with it). The hosts' groups reach each other over the cluster's VXLAN
# overlay (10.252.0.0/16, a /22 per host given by the control plane). Real processes, real kernel networking.
#
# Usage (as root):
#   dev-cluster.sh up N [--replicas R]     N hosts (1..40), R control plane replicas (default 2). The last line on
#                                          stdout is {"url","token","hosts":[…],"ca","replicas":[…],"http","joinToken","dir"}
#                                          (url: replica 1's HTTPS, trusted through the CA file `ca`; http: its
#                                          plain HTTP on loopback).
#   dev-cluster.sh status                  that line again
#   dev-cluster.sh kill-host H             power loss: kill -9 of every process of host H (agent, conmons, containers)
#   dev-cluster.sh kill-agent H            a crash of host H's agent alone (kill -9): its containers keep running
#   dev-cluster.sh start-host H            starts host H's agent again: in the running host after kill-agent, in a
#                                          fresh boot of it (new mount namespace, empty /run) after kill-host
#   dev-cluster.sh partition H SECONDS     cuts H's underlay link for SECONDS (in the background; returns at once)
#   dev-cluster.sh kill-replica I          kill -9 of control plane replica I (1-based)
#   dev-cluster.sh start-replica I         starts replica I again
#   dev-cluster.sh down                    removes everything it made: processes, namespaces, links, data
# Environment: BERTH_DEV_CLUSTER_DIR (default /var/lib/berth-dev-cluster) holds its state, so several clusters
# can exist side by side only in separate network namespaces (scripts/isolated.sh): names and addresses are fixed.
# Registries reached over plain HTTP: BERTH_DEV_CLUSTER_INSECURE_REGISTRIES (comma-separated host:port; default
# 10.250.0.1:5000, the underlay side of this machine). BERTH_DEV_CLUSTER_CA_DIR: a directory with ca.crt and ca.key
# to make the cluster CA (default: a new one). Each host offers BERTH_DEV_CLUSTER_HOST_CPU cores (default 8) and
# BERTH_DEV_CLUSTER_HOST_MEMORY_GB (default 16): they all share this machine, so they overcommit it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=${BERTH_DEV_CLUSTER_DIR:-/var/lib/berth-dev-cluster}
bridge=bdev0
underlay_ip=10.250.0.1
etcd_port=${BERTH_DEV_CLUSTER_ETCD_PORT:-23790}
api_port=8743        # replica I serves HTTPS on UNDERLAY_IP:(api_port + I - 1)
agent_port=8790
cluster_cidr=10.252.0.0/16   # the overlay: each host's groups get a /22 of it from the control plane (1,019 addresses:
host_prefix=22               # room for a 1,000-group burst over 3 hosts, and for the 40 hosts `up` allows)
insecure=${BERTH_DEV_CLUSTER_INSECURE_REGISTRIES:-$underlay_ip:5000}
host_cpu=${BERTH_DEV_CLUSTER_HOST_CPU:-8}
host_memory=${BERTH_DEV_CLUSTER_HOST_MEMORY_GB:-16}

die() { echo "dev-cluster: $*" >&2; exit 1; }
say() { echo "dev-cluster: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run as root (namespaces, bridges, containers)"

# a live process (a killed one no one has reaped yet is a zombie: not alive)
alive() { local st; [ -n "${1:-}" ] && st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st:0:1}" != Z ]; }
pidof_file() { cat "$1" 2>/dev/null || true; }
host_index() { [[ "$1" =~ ^devh([0-9]+)$ ]] || die "no such host '$1' (hosts are devh1, devh2, …)"; echo "${BASH_REMATCH[1]}"; }
host_dir() { echo "$dir/hosts/$1"; }
host_ip() { echo "10.250.0.$((10 + $1))"; }
replica_url() { echo "https://$underlay_ip:$((api_port + $1 - 1))"; }
replicas() { cat "$dir/replicas" 2>/dev/null || echo 0; }
join_urls() { local u=() i; for i in $(seq 1 "$(replicas)"); do u+=("$(replica_url "$i")"); done; (IFS=,; echo "${u[*]}"); }

wait_for() { # WHAT SECONDS COMMAND…
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# Every process whose mount namespace is NS (a host's), all their descendants (containers have mount namespaces of
# their own, but they are children of the host's conmons), and every process in the cgroup of one of the host's
# containers (those in CONTAINERS, its data dir's): a container, or a runtime's child, whose parent a kill -9 took
# away is the machine's child, no longer the host's, but stays in its container's cgroup. Printed as PIDs.
processes_of_ns() {
  local ns=$1 containers=${2:-}
  node -e '
    const fs = require("fs");
    const [ns, containers] = process.argv.slice(1);
    let ids = new Set();
    try { ids = new Set(fs.readdirSync(containers)); } catch {}
    const ofHostContainer = (pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").some((l) => {
          const m = /^\d+:(pids|):\/berth\/([^/]+)$/.exec(l);
          return m && ids.has(m[2]);
        });
      } catch { return false; }
    };
    const parent = new Map(), inNs = [];
    for (const e of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
        parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
        if (fs.readlinkSync(`/proc/${e}/ns/mnt`) === ns || ofHostContainer(e)) inNs.push(Number(e));
      } catch {}
    }
    const out = new Set(inNs);
    for (let grew = true; grew;) {
      grew = false;
      for (const [pid, ppid] of parent) if (!out.has(pid) && out.has(ppid)) { out.add(pid); grew = true; }
    }
    console.log([...out].join("\n"));
  ' "$ns" "$containers"
}

first_process_in_ns() { # NS: a container monitor (conmon) living in exactly this mount namespace, if any
  local p
  for p in /proc/[0-9]*; do
    # only a monitor keeps a host's containers: what else outlives a killed agent there is on its way out (its
    # command helper exits once the agent is gone), and entering a namespace as its last process leaves it fails
    [ "$(cat "$p/comm" 2>/dev/null)" = conmon ] && [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$1" ] && { basename "$p"; return 0; }
  done
  return 0
}

kill_host_processes() { # NAME: kill -9 until none is left
  local name=$1 ns_file
  ns_file="$(host_dir "$name")/mntns"
  [ -s "$ns_file" ] || return 0
  local ns; ns=$(cat "$ns_file")
  # a process on its way out leaves its namespaces before it is gone: what was killed is waited for by PID too
  local killed=() p
  for _ in $(seq 1 50); do
    local pids; pids=$(processes_of_ns "$ns" "$(host_dir "$name")/data/containers")
    if [ -z "$pids" ]; then
      for p in "${killed[@]}"; do
        wait_for "process $p to end" 10 bash -c "$(declare -f alive); ! alive $p" || die "process $p of host $name is still alive after kill -9"
      done
      rm -f "$ns_file" "$(host_dir "$name")/agent.pid"
      # what a power loss takes too: the cgroups of its containers (runc deletes them only with a container it stops)
      local id cg
      for id in $(ls "$(host_dir "$name")/data/containers" 2>/dev/null); do
        for cg in /sys/fs/cgroup/*/berth/"$id" /sys/fs/cgroup/berth/"$id"; do [ -d "$cg" ] && { rmdir "$cg" 2>/dev/null || true; }; done
      done
      return 0
    fi
    # shellcheck disable=SC2206
    killed+=($pids)
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.1
  done
  die "processes of host $name are still alive after kill -9: $(processes_of_ns "$ns" "$(host_dir "$name")/data/containers" | tr '\n' ' ')"
}

start_host() { # NAME
  local name=$1 i d ip
  i=$(host_index "$name"); d=$(host_dir "$name"); ip=$(host_ip "$i")
  ip netns list | grep -qw "$name" || die "host $name does not exist (up first)"
  alive "$(pidof_file "$d/agent.pid")" && die "host $name is running"
  mkdir -p "$d/data"
  local logged; logged=$(stat -c %s "$d/agent.log" 2>/dev/null || echo 0)
  local agent_args=(
    node --enable-source-maps "$root/dist/src/cli/main.js" agent
    --join "$(join_urls)" --token "$(cat "$dir/join-token")" --ca "$dir/ca.crt" --name "$name"
    --zone "zone-$(( (i - 1) % 3 + 1 ))" --label "dev-cluster=true" --cpu "$host_cpu" --memory-gb "$host_memory"
    --advertise-address "$ip" --listen "$ip:$agent_port" --data-dir "$d/data"
    --bridge berth0 --runc-root /run/berth/runc --stop-grace 1
  )
  local r; for r in ${insecure//,/ }; do agent_args+=(--insecure-registry "$r"); done
  local running=""
  [ -s "$d/mntns" ] && running=$(first_process_in_ns "$(cat "$d/mntns")")
  if [ -n "$running" ]; then
    # the host still runs (its agent crashed): the agent comes back into it, where its containers are
    setsid nsenter --mount="/proc/$running/ns/mnt" --net="/run/netns/$name" -- "${agent_args[@]}" >>"$d/agent.log" 2>&1 </dev/null &
  else
    # a boot: the agent runs in the host's network namespace and in a private mount namespace of its own, with
    # fresh tmpfs on /run/netns (its sandboxes) and /run/berth (its runc state), which go with the host, and a
    # sysfs of its own network namespace (what `ip netns exec` mounts) that keeps the machine's cgroup hierarchies
    setsid nsenter --net="/run/netns/$name" -- unshare --mount --propagation private -- bash -c '
      set -e
      mount -t tmpfs -o mode=0755 berth-devhost /run/netns
      mkdir -p /run/berth && mount -t tmpfs -o mode=0700 berth-devhost /run/berth
      mkdir /run/berth/cgroup && mount --rbind /sys/fs/cgroup /run/berth/cgroup
      mount -t sysfs berth-devhost /sys
      mount --move /run/berth/cgroup /sys/fs/cgroup
      rmdir /run/berth/cgroup 2>/dev/null || true
      exec "$@"' devhost "${agent_args[@]}" >>"$d/agent.log" 2>&1 </dev/null &
  fi
  local pid=$!
  echo "$pid" >"$d/agent.pid"
  # its mount namespace, once unshare (or nsenter) has put it there: how kill-host finds its processes later
  wait_for "the mount namespace of $name" 10 grep -q berth-devhost "/proc/$pid/mounts" \
    || die "host $name did not start: $(tail -5 "$d/agent.log")"
  readlink "/proc/$pid/ns/mnt" >"$d/mntns"
  wait_for "host $name to join" 60 bash -c "tail -c +$((logged + 1)) '$d/agent.log' | grep -q 'is in the cluster'" \
    || die "host $name did not join: $(tail -20 "$d/agent.log")"
  say "host $name up ($ip, agent pid $pid, log $d/agent.log)"
}

start_replica() { # I
  local i=$1 d="$dir/cp$1"
  alive "$(pidof_file "$d/server.pid")" && die "replica $i is running"
  mkdir -p "$d"
  local logged; logged=$(stat -c %s "$d/server.log" 2>/dev/null || echo 0)
  # each its own data and TLS dir: the cluster CA reaches the others through the store
  if [ "$i" = 1 ] && [ -n "${BERTH_DEV_CLUSTER_CA_DIR:-}" ] && [ ! -e "$d/tls/ca.crt" ]; then
    mkdir -p "$d/tls" && chmod 0700 "$d/tls"
    cp "$BERTH_DEV_CLUSTER_CA_DIR/ca.crt" "$BERTH_DEV_CLUSTER_CA_DIR/ca.key" "$d/tls/"
  fi
  setsid node --enable-source-maps "$root/dist/src/cli/main.js" server \
    --store "etcd://127.0.0.1:$etcd_port" --data-dir "$d" \
    --listen "127.0.0.1:$((18780 + i))" --listen-https "$underlay_ip:$((api_port + i - 1))" \
    --advertise-address "$underlay_ip" --token "$(cat "$dir/token")" --join-token "$(cat "$dir/join-token")" \
    --dns-listen "127.0.0.1:$((18752 + i))" --stop-grace 1 --cluster-cidr "$cluster_cidr" --host-subnet-prefix "$host_prefix" \
    >>"$d/server.log" 2>&1 </dev/null &
  echo $! >"$d/server.pid"
  wait_for "replica $i" 30 bash -c "tail -c +$((logged + 1)) '$d/server.log' | grep -q 'serving the ACI API'" \
    || die "replica $i did not start: $(tail -20 "$d/server.log")"
  [ -s "$dir/ca.crt" ] || cp "$d/tls/ca.crt" "$dir/ca.crt"
  say "control plane replica $i up ($(replica_url "$i"), pid $(cat "$d/server.pid"), log $d/server.log)"
}

summary() {
  local hosts=() u=()
  for h in "$dir"/hosts/*/; do [ -d "$h" ] && hosts+=("\"$(basename "$h")\""); done
  for i in $(seq 1 "$(replicas)"); do u+=("\"$(replica_url "$i")\""); done
  printf '{"url":"%s","token":"%s","hosts":[%s],"ca":"%s","replicas":[%s],"http":"%s","joinToken":"%s","dir":"%s"}\n' \
    "$(replica_url 1)" "$(cat "$dir/token")" "$(IFS=,; echo "${hosts[*]}")" "$dir/ca.crt" "$(IFS=,; echo "${u[*]}")" "http://127.0.0.1:18781" "$(cat "$dir/join-token")" "$dir"
}

up() {
  local n=${1:-}; shift || true
  local r=2
  while [ $# -gt 0 ]; do
    case $1 in --replicas) r=$2; shift 2 ;; *) die "unknown option $1" ;; esac
  done
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 40 ] || die "usage: up N (1..40 hosts) [--replicas R]"
  [[ "$r" =~ ^[0-9]+$ ]] && [ "$r" -ge 1 ] && [ "$r" -le 5 ] || die "--replicas takes 1..5"
  [ -e "$dir/replicas" ] && die "a dev cluster exists in $dir: down first"
  ip link show "$bridge" >/dev/null 2>&1 && die "$bridge exists: down first"
  [ -f "$root/dist/src/cli/main.js" ] || (cd "$root" && npm run --silent build >&2)
  command -v etcd >/dev/null || die "etcd is not installed (apt-get install etcd-server)"
  mkdir -p "$dir/hosts"
  chmod 0700 "$dir"
  echo "$r" >"$dir/replicas"
  head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' >"$dir/token"
  head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' >"$dir/join-token"
  # if anything below fails, what was made goes again
  trap 'say "up failed: removing what it made"; down >/dev/null 2>&1 || true' EXIT

  ip link add "$bridge" type bridge
  ip addr add "$underlay_ip/24" dev "$bridge"
  ip link set "$bridge" up
  ip link set lo up

  setsid etcd --name dev --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 10))" \
    --initial-cluster "dev=http://127.0.0.1:$((etcd_port + 10))" --auto-compaction-mode revision --auto-compaction-retention 10000 \
    >>"$dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd.pid"
  wait_for etcd 30 curl -fs "http://127.0.0.1:$etcd_port/health" || die "etcd did not start: $(tail -5 "$dir/etcd.log")"
  say "etcd up (127.0.0.1:$etcd_port, pid $(cat "$dir/etcd.pid"))"

  for i in $(seq 1 "$r"); do start_replica "$i"; done

  for i in $(seq 1 "$n"); do
    local name="devh$i" ip; ip=$(host_ip "$i")
    mkdir -p "$(host_dir "$name")"
    ip netns add "$name"
    ip link add "bdev-h$i" type veth peer name eth0 netns "$name"
    ip link set "bdev-h$i" master "$bridge" up
    ip -n "$name" link set lo up
    ip -n "$name" addr add "$ip/24" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" route add default via "$underlay_ip"
    ip netns exec "$name" sysctl -qw net.ipv4.ip_forward=1
  done
  for i in $(seq 1 "$n"); do start_host "devh$i"; done
  trap - EXIT
  summary
}

kill_host() {
  local name=$1
  host_index "$name" >/dev/null
  [ -d "$(host_dir "$name")" ] || die "no such host $name"
  kill_host_processes "$name"
  say "host $name is off (its processes killed; its namespace and data dir stay: start-host $name boots it)"
}

partition() {
  local name=$1 secs=$2 i
  i=$(host_index "$name")
  [[ "$secs" =~ ^[0-9]+$ ]] || die "usage: partition HOST SECONDS"
  ip link show "bdev-h$i" >/dev/null 2>&1 || die "no such host $name"
  ip link set "bdev-h$i" down
  setsid bash -c "sleep $secs; ip link set bdev-h$i up" >/dev/null 2>&1 </dev/null &
  echo $! >"$(host_dir "$name")/partition.pid"
  say "host $name is cut off until $(date -d "+$secs seconds" +%H:%M:%S) ($secs s)"
}

down() {
  [ -d "$dir" ] || { say "nothing to remove ($dir does not exist)"; ip link del "$bridge" 2>/dev/null || true; return 0; }
  for h in "$dir"/hosts/*/; do
    [ -d "$h" ] || continue
    local name; name=$(basename "$h")
    local p; p=$(pidof_file "$h/partition.pid"); alive "$p" && kill -9 "$p" 2>/dev/null || true
    kill_host_processes "$name"
  done
  for d in "$dir"/cp*/; do
    [ -d "$d" ] || continue
    local p; p=$(pidof_file "$d/server.pid")
    if alive "$p"; then kill -TERM "$p"; wait_for "replica to stop" 10 bash -c "! kill -0 $p" || kill -9 "$p" 2>/dev/null || true; fi
  done
  local p; p=$(pidof_file "$dir/etcd.pid")
  if alive "$p"; then kill -TERM "$p"; wait_for "etcd to stop" 10 bash -c "! kill -0 $p" || kill -9 "$p" 2>/dev/null || true; fi
  for h in "$dir"/hosts/*/; do
    [ -d "$h" ] || continue
    local name; name=$(basename "$h")
    # its container bridge, sandboxes' veths and rules go with the namespace; the underlay veth now, not when
    # the kernel gets round to the namespace's cleanup
    ip link del "bdev-h$(host_index "$name")" 2>/dev/null || true
    ip netns del "$name" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$dir"
  say "removed"
}

cmd=${1:-}; shift || true
case $cmd in
  up) up "$@" ;;
  status) [ -e "$dir/replicas" ] || die "no dev cluster in $dir"; summary ;;
  kill-host) [ $# -eq 1 ] || die "usage: kill-host HOST"; kill_host "$1" ;;
  kill-agent) [ $# -eq 1 ] || die "usage: kill-agent HOST"; p=$(pidof_file "$(host_dir "$1")/agent.pid"); alive "$p" || die "the agent of $1 is not running"
    kill -9 "$p"; wait_for "the agent to die" 10 bash -c "$(declare -f alive); ! alive $p"; say "agent of $1 (pid $p) killed; its containers run on" ;;
  start-host) [ $# -eq 1 ] || die "usage: start-host HOST"; start_host "$1" ;;
  partition) [ $# -eq 2 ] || die "usage: partition HOST SECONDS"; partition "$1" "$2" ;;
  kill-replica) [ $# -eq 1 ] || die "usage: kill-replica I"; p=$(pidof_file "$dir/cp$1/server.pid"); alive "$p" || die "replica $1 is not running"
    kill -9 "$p"; wait_for "the replica to die" 10 bash -c "$(declare -f alive); ! alive $p"; say "replica $1 (pid $p) killed" ;;
  start-replica) [ $# -eq 1 ] || die "usage: start-replica I"; start_replica "$1" ;;
  down) down ;;
  *) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
