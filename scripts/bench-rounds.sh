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
# The last two rows are one client's p50 latency, as 1/p50, so that above 1
# is better in every column: kvsh/redis 0.67 means kvsh's p50 is 1.5x
# Redis's.
#
# Environment: ROUNDS (3), LAT_N (one client's requests, 5000), N (requests per run, 200000), CLIENTS (50),
# PIPELINE (16), SIZE (100), KEYS (100000), THREADS (bench's --threads;
# default: bench's own, one per core), REPLICAS (1: Redis Cluster with a
# replica per master), KVSH_BENCH (a prebuilt examples/bench), KVSH_BARE (a
# prebuilt examples/bare_ceiling), NICE.
# Needs redis-server, redis-cli and redis-benchmark on the PATH.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
N=${N:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
LAT_N=${LAT_N:-5000}
SIZE=${SIZE:-100}
KEYS=${KEYS:-100000}
REPLICAS=${REPLICAS:-1}
NICE=${NICE:-}
[ -n "${KVSH_BENCH:-}" ] && KVSH_BENCH=$(realpath "$KVSH_BENCH")
[ -n "${KVSH_BARE:-}" ] && KVSH_BARE=$(realpath "$KVSH_BARE")
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
bare=${KVSH_BARE:-}
if [ -z "$kvsh" ] || [ -z "$bare" ]; then
    cargo build --release --quiet --example bench --example bare_ceiling
    kvsh=${kvsh:-${CARGO_TARGET_DIR:-target}/release/examples/bench}
    bare=${bare:-${CARGO_TARGET_DIR:-target}/release/examples/bare_ceiling}
fi
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

field() { sed -E "s/.*[{,]\"$1\":(-?[0-9.eE+]+).*/\1/"; }
kv() { # kv ARGS...: one bench in a fresh 3-node R=2 cluster; ops/s.
    "${prio[@]}" "$kvsh" --json --nodes 3 --replicas 2 --raw-samples 0 "$@" "${threads[@]}" \
        --keys "$KEYS" --value-size "$SIZE" --clients "$CLIENTS" | field ops_per_sec
}
bk() { # bk ARGS...: the same bench against 3 bare servers with R=2; ops/s.
    "${prio[@]}" "$bare" --json --nodes 3 --replicas 2 "$@" "${threads[@]}" \
        --keys "$KEYS" --value-size "$SIZE" --clients "$CLIENTS" | field ops_per_sec
}
rb() { # rb TEST ARGS...: redis-benchmark --cluster; ops/s of TEST.
    local t=$1
    shift
    "${prio[@]}" redis-benchmark --cluster -h 127.0.0.1 -p "${cluster_nodes[0]#*:}" --csv \
        -d "$SIZE" -r "$KEYS" -c "$CLIENTS" "$@" | tr -d '"' | awk -F, -v t="$t" '$1 == t { print $2 }'
}
lat() { # lat PROGRAM ARGS...: p50 in µs of one client's requests (kvsh or bare).
    local prog=$1
    shift
    "${prio[@]}" "$prog" --json --nodes 3 --replicas 2 "$@" --keys "$KEYS" --value-size "$SIZE" \
        --clients 1 --threads 1 | field p50_us
}
rb_p50() { # rb_p50 TEST ARGS...: redis-benchmark --cluster with one client; p50 in µs.
    local t=$1
    shift
    "${prio[@]}" redis-benchmark --cluster -h 127.0.0.1 -p "${cluster_nodes[0]#*:}" --csv \
        -d "$SIZE" -r "$KEYS" -c 1 "$@" | tr -d '"' | awk -F, -v t="$t" '$1 == t { print $5 * 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

start_redis_cluster 3 "$REPLICAS"
echo "== $(nproc) CPUs; redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') cluster: 3 masters, $REPLICAS replica(s) each; kvsh: 3 nodes, R=2"
echo "== $CLIENTS clients, $SIZE-byte values, $KEYS keys, $N requests per run (x4 pipelined), $ROUNDS rounds"
printf '%-6s %-12s %9s %9s %9s %11s %11s %11s\n' round measure kvsh bare redis kvsh/redis bare/redis kvsh/bare
for r in $(seq "$ROUNDS"); do
    echo "-- round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    k_put=$(kv put --pinned --ops "$N")
    b_put=$(bk put --pinned --ops "$N")
    r_set=$(rb SET -t set -n "$N")
    k_get=$(kv get --pinned --ops "$N")
    b_get=$(bk get --pinned --ops "$N")
    r_get=$(rb GET -t get -n "$N")
    k_getp=$(kv get --pinned --ops "$((N * 4))" --pipeline "$PIPELINE" --batch "$PIPELINE")
    b_getp=$(bk get --pinned --ops "$((N * 4))" --pipeline "$PIPELINE" --batch "$PIPELINE")
    r_getp=$(rb GET -t get -n "$((N * 4))" -P "$PIPELINE")
    # One client: p50 latencies, turned into "rates" (1/p50) so that the
    # ratio columns read the same way as the others: above 1 is better.
    inv() { awk -v x="$1" 'BEGIN { if (x > 0) printf "%.1f", 1e6 / x; else print 0 }'; }
    k_p1=$(inv "$(lat "$kvsh" --raw-samples 0 put --ops "$LAT_N")")
    b_p1=$(inv "$(lat "$bare" put --ops "$LAT_N")")
    r_p1=$(inv "$(rb_p50 SET -t set -n "$LAT_N")")
    k_g1=$(inv "$(lat "$kvsh" --raw-samples 0 get --ops "$LAT_N")")
    b_g1=$(inv "$(lat "$bare" get --ops "$LAT_N")")
    r_g1=$(inv "$(rb_p50 GET -t get -n "$LAT_N")")
    for m in "put ${CLIENTS}x1:$k_put:$b_put:$r_set" "get ${CLIENTS}x1:$k_get:$b_get:$r_get" "get ${CLIENTS}x${PIPELINE}:$k_getp:$b_getp:$r_getp" \
        "1/p50 put 1:$k_p1:$b_p1:$r_p1" "1/p50 get 1:$k_g1:$b_g1:$r_g1"; do
        IFS=: read -r name k b rv <<<"$m"
        f=$work/$(tr " /" "__" <<<"$name")
        ratio "$k" "$rv" >>"$f.kr" && echo >>"$f.kr"
        ratio "$b" "$rv" >>"$f.br" && echo >>"$f.br"
        ratio "$k" "$b" >>"$f.kb" && echo >>"$f.kb"
        printf '%-6s %-12s %9.0f %9.0f %9.0f %11s %11s %11s\n' "$r" "$name" "$k" "$b" "$rv" \
            "$(ratio "$k" "$rv")" "$(ratio "$b" "$rv")" "$(ratio "$k" "$b")"
    done
done
echo "== medians of per-round ratios, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %11s %11s %11s\n' measure kvsh/redis bare/redis kvsh/bare
for name in "put ${CLIENTS}x1" "get ${CLIENTS}x1" "get ${CLIENTS}x${PIPELINE}" "1/p50 put 1" "1/p50 get 1"; do
    f=$work/$(tr " /" "__" <<<"$name")
    printf '%-14s %11s %11s %11s\n' "$name" "$(median <"$f.kr")" "$(median <"$f.br")" "$(median <"$f.kb")"
done
