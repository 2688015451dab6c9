#!/usr/bin/env bash
# Builds berth's native helpers into dist/libexec/: berth-exec (exec with a pseudo-terminal) and
# berth-spawnd (starts berth's commands without forking the Node.js process).
# They need only a C compiler and libc headers, which building better-sqlite3 needs anyway.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build() {
  local src="$root/$1" out="$root/dist/libexec/$2"
  if [ -x "$out" ] && [ "$out" -nt "$src" ]; then return 0; fi
  mkdir -p "$(dirname "$out")"
  cc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
}
build src/runtime/container/berth-exec.c berth-exec
build src/lib/berth-spawnd.c berth-spawnd
