#!/usr/bin/env bash
# Builds (once per machine, cached by version) and runs a real Kubernetes control plane on 127.0.0.1 for the virtual-node tests.
# Usage:
#   k8s-controlplane.sh build            build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd into the cache
#   k8s-controlplane.sh bindir           print the directory holding the binaries (builds them first if missing)
#   k8s-controlplane.sh start DIR        start etcd + apiserver + controller-manager + scheduler with state in DIR; prints DIR/kubeconfig
#                                      (K8S_COMPONENTS=apiserver: etcd and the API server only)
#   k8s-controlplane.sh stop DIR         stop what `start DIR` started, by the PIDs it recorded
# Environment: BERTH_K8S_CACHE (default /var/cache/berth/k8s), BERTH_K8S_SERVICE_CIDR (default 10.213.200.0/24).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
modroot="$root/test/k8s/controlplane"
# Read from go.mod itself: a cached build must be found without a Go toolchain or module download.
modver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$modroot/go.mod"; }
k8s_version="$(modver k8s.io/kubernetes)"
etcd_version="$(modver go.etcd.io/etcd/server/v3)"
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "k8s-controlplane: cannot read versions from $modroot/go.mod" >&2; exit 1; }
# Go may live outside PATH (e.g. in CI's environment).
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
cache="${BERTH_K8S_CACHE:-/var/cache/berth/k8s}/$k8s_version-etcd$etcd_version"
bindir="$cache/bin"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

log() { echo "k8s-controlplane: $*" >&2; }

built() {
  for t in "${tools[@]}" etcd; do [ -x "$bindir/$t" ] || return 1; done
}

build() {
  if built; then return 0; fi
  mkdir -p "$bindir"
  # Another test run may be building at the same time: one builder, the rest wait for its result.
  exec 9>"$cache/.build.lock"
  flock 9
  if built; then flock -u 9; return 0; fi
  local start=$SECONDS
  export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
  # Without these the binaries report v0.0.0-master and kubectl warns about version skew.
  local minor="${k8s_version#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  if [ ! -x "$bindir/etcd" ]; then
    log "building etcd $etcd_version"
    (cd "$modroot" && go build -ldflags "-s -w" -o "$bindir/etcd.tmp" go.etcd.io/etcd/server/v3) && mv "$bindir/etcd.tmp" "$bindir/etcd"
  fi
  log "building Kubernetes $k8s_version (${tools[*]}); this takes a while on a small machine"
  local tmp="$cache/tmp-bin"
  rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$modroot" && go build -ldflags "$ldflags" -o "$tmp/" "${tools[@]/#/k8s.io/kubernetes/cmd/}")
  for t in "${tools[@]}"; do mv "$tmp/$t" "$bindir/$t"; done
  rmdir "$tmp"
  echo "$((SECONDS - start))" > "$cache/build-seconds"
  log "built in $((SECONDS - start)) s into $bindir"
  flock -u 9
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_http() { # url, seconds, extra curl args...
  local url="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until curl -fsS -o /dev/null "$@" "$url" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { log "timed out waiting for $url"; return 1; }
    sleep 0.2
  done
}

start_bg() { # dir name cmd...  — runs cmd in the background, logs to DIR/NAME.log, records PID in DIR/pids
  local dir="$1" name="$2"; shift 2
  "$@" >"$dir/$name.log" 2>&1 &
  echo "$! $name" >> "$dir/pids"
}

start() {
  local dir="$1"
  build
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  : > "$dir/pids"
  local pki="$dir/pki"
  mkdir -p "$pki"
  # Certificates: one CA signs the apiserver serving cert and the client certs (controller-manager, scheduler, admin).
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=berth-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  local svc_cidr="${BERTH_K8S_SERVICE_CIDR:-10.213.200.0/24}"
  local svc_ip; svc_ip="$(node -e 'const [a]=process.argv[1].split("/");const p=a.split(".").map(Number);p[3]+=1;console.log(p.join("."))' "$svc_cidr")"
  printf 'subjectAltName=IP:127.0.0.1,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' "$svc_ip" > "$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
    -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  for c in "admin:system:masters" "kube-controller-manager:" "kube-scheduler:" "apiserver-kubelet-client:system:masters"; do
    local cn="${c%%:*}" org="${c#*:}"
    local subj="/CN=$cn"
    [ "$cn" = kube-controller-manager ] && subj="/CN=system:kube-controller-manager"
    [ "$cn" = kube-scheduler ] && subj="/CN=system:kube-scheduler"
    [ -n "$org" ] && subj="/O=$org$subj"
    openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$pki/$cn.key" -out "$pki/$cn.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$cn.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -out "$pki/$cn.crt" 2>/dev/null
  done
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  local token; token="$(openssl rand -hex 16)"
  echo "$token,admin,admin,system:masters" > "$pki/tokens.csv"
  echo "$token" > "$dir/token"

  local etcd_port etcd_peer api_port cm_port sched_port
  etcd_port="$(free_port)"; etcd_peer="$(free_port)"; api_port="$(free_port)"; cm_port="$(free_port)"; sched_port="$(free_port)"
  start_bg "$dir" etcd "$bindir/etcd" --name berth-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "berth-test=http://127.0.0.1:$etcd_peer" --listen-metrics-urls "" \
    --quota-backend-bytes 1073741824 --unsafe-no-fsync
  wait_http "http://127.0.0.1:$etcd_port/health" 30

  start_bg "$dir" kube-apiserver "$bindir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer "https://kubernetes.default.svc" \
    --service-cluster-ip-range "$svc_cidr" \
    --authorization-mode Node,RBAC --allow-privileged=true \
    --enable-priority-and-fairness=false --profiling=false
  wait_http "https://127.0.0.1:$api_port/readyz" 90 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token"

  kubeconfig "$dir/kubeconfig" "$api_port" "$pki" admin
  kubeconfig "$dir/controller-manager.kubeconfig" "$api_port" "$pki" kube-controller-manager
  kubeconfig "$dir/scheduler.kubeconfig" "$api_port" "$pki" kube-scheduler

  echo "$api_port" > "$dir/apiserver-port"
  # K8S_COMPONENTS=apiserver: etcd and the API server only (the scheduler benchmark runs its own kube-scheduler)
  if [ "${K8S_COMPONENTS:-all}" = apiserver ]; then echo "$dir/kubeconfig"; return; fi
  start_bg "$dir" kube-controller-manager "$bindir/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$cm_port" --leader-elect=false \
    --use-service-account-credentials --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$svc_cidr"
  start_bg "$dir" kube-scheduler "$bindir/kube-scheduler" \
    --kubeconfig "$dir/scheduler.kubeconfig" --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
  wait_http "https://127.0.0.1:$cm_port/healthz" 60 -k
  wait_http "https://127.0.0.1:$sched_port/healthz" 60 -k
  echo "$dir/kubeconfig"
}

kubeconfig() { # file port pki user
  local file="$1" port="$2" pki="$3" user="$4"
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: berth-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $pki/$user.crt
    client-key: $pki/$user.key
contexts:
- name: berth-test
  context: {cluster: berth-test, user: $user}
current-context: berth-test
EOF
}

stop() {
  local dir="$1"
  [ -f "$dir/pids" ] || return 0
  # Reverse order: the components before the API server, the API server before etcd.
  local pids; pids="$(tac "$dir/pids" | awk '{print $1}')"
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -f "$dir/pids"
}

case "${1:-}" in
  build) build ;;
  bindir) build; echo "$bindir" ;;
  start) start "${2:?state directory}" ;;
  stop) stop "${2:?state directory}" ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
