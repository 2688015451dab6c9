#!/usr/bin/env bash
# Sourced by the bench scripts: crun refuses to run in cgroup-v1 hybrid mode until a v1 hugetlb hierarchy is
# mounted. This is host-wide and stays until reboot (BENCHMARKS.md says so).
if [ -x /usr/bin/crun ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ] && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  echo "bench: mounting the cgroup v1 hugetlb hierarchy for crun (host-wide, until reboot)" >&2
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi
