#!/usr/bin/env bash
# Interleaved A/B of two or more builds of examples/bench, for changes too
# small to see through this machine's drift: each round runs every build on
# each workload in turn, and the medians are printed.
#
#   cargo build --release --example bench && cp target/release/examples/bench /tmp/new
#   scripts/bench-ab.sh 5 /tmp/old /tmp/new
#
# Workloads (3 s each, 3 nodes, R=2, 100,000 keys, pinned clients):
# put 50x1, get 50x1, get 50x16 in batches of 16. Not part of CI.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 ROUNDS BENCH_BINARY..." >&2
    exit 2
fi
rounds=$1
shift
workloads=(
    "put --clients 50 --pinned --duration 3s"
    "get --clients 50 --pinned --duration 3s"
    "get --clients 50 --pipeline 16 --batch 16 --pinned --duration 3s"
)
declare -A runs
for _ in $(seq "$rounds"); do
    for w in "${!workloads[@]}"; do
        for b in "$@"; do
            # shellcheck disable=SC2086 # the workload is words on purpose
            v=$("$b" --raw-samples 0 ${workloads[$w]} | sed -nE 's/.*= ([0-9,]+) ops\/s.*/\1/p' | tr -d ,)
            runs[$b,$w]="${runs[$b,$w]:-} $v"
        done
    done
done
for w in "${!workloads[@]}"; do
    echo "== ${workloads[$w]}"
    for b in "$@"; do
        # shellcheck disable=SC2086 # split the figures
        median=$(printf '%s\n' ${runs[$b,$w]} | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        printf '  %-30s median %8s ops/s   runs:%s\n' "$b" "$median" "${runs[$b,$w]}"
    done
done
