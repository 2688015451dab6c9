#!/usr/bin/env bash
# For the quickstart: a registry on 127.0.0.1:5000 holding 127.0.0.1:5000/web:1, a tiny web server image
# built here from busybox-static (nothing is downloaded but Debian packages). BERTH_DEMO_REGISTRY=HOST:PORT
# serves it elsewhere (a dev cluster's hosts reach this machine at 10.250.0.1:5000).
set -euo pipefail
pkgs=(docker-registry skopeo umoci busybox-static curl)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

dir=${BERTH_DEMO_DIR:-/var/lib/berth-demo}
addr=${BERTH_DEMO_REGISTRY:-127.0.0.1:5000}
mkdir -p "$dir"
if ! curl -fs "http://$addr/v2/" >/dev/null; then
  cat > "$dir/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: $addr
YAML
  nohup docker-registry serve "$dir/registry.yml" > "$dir/registry.log" 2>&1 &
  echo $! > "$dir/registry.pid"
  for _ in $(seq 50); do curl -fs "http://$addr/v2/" >/dev/null && break; sleep 0.1; done
  echo "registry: http://$addr (pid $(cat "$dir/registry.pid"), stop it with: kill \$(cat $dir/registry.pid))" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/www" "$root/etc" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in sh httpd cat ls echo env hostname ps sleep wget; do ln -s busybox "$root/bin/$a"; done
echo '<h1>Hello from berth</h1>' > "$root/www/index.html"
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$root/etc/passwd"
tar -C "$root" -cf "$work/layer.tar" --numeric-owner --owner=0 --group=0 .
umoci init --layout "$work/oci"
umoci new --image "$work/oci:web"
umoci raw add-layer --no-history --image "$work/oci:web" "$work/layer.tar"
umoci config --no-history --image "$work/oci:web" --config.env PATH=/bin --config.exposedports 80/tcp \
  --config.cmd httpd --config.cmd -f --config.cmd -vv --config.cmd -p --config.cmd 80 --config.cmd -h --config.cmd /www
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:web" "docker://$addr/web:1"
echo "pushed $addr/web:1" >&2
