#!/usr/bin/env bash
# Builds berth's native helper berth-exec (exec with a pseudo-terminal) into dist/libexec/.
# It needs only a C compiler and libc headers, which building better-sqlite3 needs anyway.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/src/runtime/container/berth-exec.c"
out="$root/dist/libexec/berth-exec"
if [ -x "$out" ] && [ "$out" -nt "$src" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
cc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
