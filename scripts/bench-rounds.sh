#!/usr/bin/env bash
# The throughput targets of docs/performance.md, measured as they are
# stated: kvsh's `bench` (event-loop clients, 3 nodes, R=2) against
# redis-benchmark --cluster (3 masters + REPLICAS replicas each) in the
# same run, ROUNDS interleaved rounds, each round's ratio kvsh / Redis, and
# the median of the per-round ratios. The load average is printed before
# every round, so a round taken while something else ran can be seen.
#
#   scripts/bench-rounds.sh                    # ROUNDS=3
#   ROUNDS=5 KVSH_BENCH=target/release/examples/bench scripts/bench-rounds.sh
#
# Environment: ROUNDS (3), N (requests per run, 200000), CLIENTS (50),
# PIPELINE (16), SIZE (100), KEYS (100000), THREADS (bench's --threads;
# default: bench's own, one per core), REPLICAS (1: Redis Cluster with a
# replica per master), KVSH_BENCH (a prebuilt examples/bench), NICE.
# Needs redis-server, redis-cli and redis-benchmark on the PATH.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
N=${N:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
SIZE=${SIZE:-100}
KEYS=${KEYS:-100000}
REPLICAS=${REPLICAS:-1}
NICE=${NICE:-}
[ -n "${KVSH_BENCH:-}" ] && KVSH_BENCH=$(realpath "$KVSH_BENCH")
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
prio=()
[ -n "$NICE" ] && prio=(nice -n "$NICE")
# free_port, wait_redis, start_redis_cluster.
# shellcheck source=scripts/redis-lib.sh
source scripts/redis-lib.sh

for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
kvsh=${KVSH_BENCH:-}
if [ -z "$kvsh" ]; then
    cargo build --release --quiet --example bench
    kvsh=${CARGO_TARGET_DIR:-target}/release/examples/bench
fi
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

field() { sed -E "s/.*[{,]\"$1\":(-?[0-9.eE+]+).*/\1/"; }
kv() { # kv ARGS...: one bench in a fresh 3-node R=2 cluster; ops/s.
    "${prio[@]}" "$kvsh" --json --nodes 3 --replicas 2 --raw-samples 0 "$@" "${threads[@]}" \
        --keys "$KEYS" --value-size "$SIZE" --clients "$CLIENTS" | field ops_per_sec
}
rb() { # rb TEST ARGS...: redis-benchmark --cluster; ops/s of TEST.
    local t=$1
    shift
    "${prio[@]}" redis-benchmark --cluster -h 127.0.0.1 -p "${cluster_nodes[0]#*:}" --csv \
        -d "$SIZE" -r "$KEYS" -c "$CLIENTS" "$@" | tr -d '"' | awk -F, -v t="$t" '$1 == t { print $2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

start_redis_cluster 3 "$REPLICAS"
echo "== $(nproc) CPUs; redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') cluster: 3 masters, $REPLICAS replica(s) each; kvsh: 3 nodes, R=2"
echo "== $CLIENTS clients, $SIZE-byte values, $KEYS keys, $N requests per run (x4 pipelined), $ROUNDS rounds"
printf '%-6s %-14s %10s %10s %7s\n' round measure kvsh redis ratio
for r in $(seq "$ROUNDS"); do
    echo "-- round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    k_put=$(kv put --pinned --ops "$N")
    r_set=$(rb SET -t set -n "$N")
    k_get=$(kv get --pinned --ops "$N")
    r_get=$(rb GET -t get -n "$N")
    k_getp=$(kv get --pinned --ops "$((N * 4))" --pipeline "$PIPELINE" --batch "$PIPELINE")
    r_getp=$(rb GET -t get -n "$((N * 4))" -P "$PIPELINE")
    for m in "put ${CLIENTS}x1:$k_put:$r_set" "get ${CLIENTS}x1:$k_get:$r_get" "get ${CLIENTS}x${PIPELINE}:$k_getp:$r_getp"; do
        IFS=: read -r name k rv <<<"$m"
        echo "$(ratio "$k" "$rv")" >>"$work/${name// /_}"
        printf '%-6s %-14s %10.0f %10.0f %7s\n' "$r" "$name" "$k" "$rv" "$(ratio "$k" "$rv")"
    done
done
echo "== median of per-round ratios (kvsh / Redis Cluster), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
for name in "put ${CLIENTS}x1" "get ${CLIENTS}x1" "get ${CLIENTS}x${PIPELINE}"; do
    printf '%-14s %s   (rounds: %s)\n' "$name" "$(median <"$work/${name// /_}")" "$(paste -sd' ' "$work/${name// /_}")"
done
