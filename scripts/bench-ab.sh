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
case $rounds in
'' | *[!0-9]*)
    echo "ROUNDS must be a number, got '$rounds'" >&2
    exit 2
    ;;
esac
workloads=(
    "put --clients 50 --pinned --duration 3s"
    "get --clients 50 --pinned --duration 3s"
    "get --clients 50 --pipeline 16 --batch 16 --pinned --duration 3s"
)
builds=("$@")
# Figures by build position (the same path twice is an A/A check) and
# workload; a failed run is recorded as "failed" and left out of the median.
declare -A runs
for _ in $(seq "$rounds"); do
    for w in "${!workloads[@]}"; do
        for i in "${!builds[@]}"; do
            # shellcheck disable=SC2086 # the workload is words on purpose
            if json=$("${builds[$i]}" --json --raw-samples 0 ${workloads[$w]}); then
                v=$(sed -nE 's/.*"ops_per_sec":([0-9.]+).*/\1/p' <<<"$json")
            else
                v=""
            fi
            if [ -z "$v" ]; then
                echo "warning: ${builds[$i]} ${workloads[$w]} failed" >&2
                v=failed
            fi
            runs[$i,$w]="${runs[$i,$w]:-} $v"
        done
    done
done
for w in "${!workloads[@]}"; do
    echo "== ${workloads[$w]}"
    for i in "${!builds[@]}"; do
        # shellcheck disable=SC2086 # split the figures
        median=$(printf '%s\n' ${runs[$i,$w]} | grep -v failed | sort -n |
            awk '{ a[NR] = $1 } END { if (NR) printf "%.0f", a[int((NR + 1) / 2)]; else print "none" }')
        printf '  %d %-28s median %8s ops/s   runs:%s\n' "$((i + 1))" "${builds[$i]}" "$median" "${runs[$i,$w]}"
    done
done
