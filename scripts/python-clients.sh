#!/usr/bin/env bash
# Makes the virtual environments of the Python Azure clients the tests drive (pinned, cached by version outside the repo).
# Usage: python-clients.sh   (the venvs are $BERTH_VENVS/<package>-<version>, by default under /var/cache/berth/venvs)
# The az CLI and the SDK pin conflicting versions of the packages they share: each gets a venv of its own.
set -euo pipefail
venvs="${BERTH_VENVS:-/var/cache/berth/venvs}"
pins=("azure-cli==2.91.0" "azure-mgmt-containerinstance==10.2.0b2")
mkdir -p "$venvs"
for pin in "${pins[@]}"; do
  dir="$venvs/${pin/==/-}"
  [ -f "$dir/.complete" ] && continue
  echo "python-clients: installing $pin into $dir" >&2
  # made in place (a venv's scripts name its path); one without the marker was interrupted: made again
  rm -rf "$dir"
  /usr/bin/python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input "$pin" >&2
  touch "$dir/.complete"
done
