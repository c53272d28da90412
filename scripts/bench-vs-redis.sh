#!/usr/bin/env bash
# Runs kvsh's bench and redis-benchmark side by side on this machine and
# prints the figures and their ratios: the comparison in docs/performance.md.
#
#   scripts/bench-vs-redis.sh               # single Redis, then kvsh
#   REDIS_CLUSTER=1 scripts/bench-vs-redis.sh   # also a 3-master Redis Cluster
#
# Installs nothing. Redis is used if `redis-server` and `redis-benchmark` are
# on the PATH (Debian: apt-get install redis-server redis-tools); it is
# started on free loopback ports with persistence off, and stopped (by its
# PID) on exit. kvsh is `examples/bench.rs`: a 3-node, R=2 cluster in one
# process. Not part of CI: figures depend on the machine and what else runs.
#
# Environment: N (requests per run, default 200000), CLIENTS (50),
# PIPELINE (16, for the pipelined get), SIZE (100), KEYS (100000),
# LAT_N (requests for the 1-client latency runs, 20000), ROUNDS (5: the
# 1-client runs alternate this many raw and kvsh measurements),
# KVSH_BENCH (a prebuilt examples/bench binary to use instead of building),
# KVSH_CEILING (a prebuilt examples/zmq_ceiling, with KVSH_BENCH),
# REDIS_CLUSTER (0), REDIS_CLUSTER_REPLICAS (0: 3 masters; 1: 3 masters and
# 3 replicas), NICE (unset; e.g. -10 runs every server and client at that
# priority, to keep other work on a shared machine from skewing the figures;
# negative values need root).
set -euo pipefail

N=${N:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
SIZE=${SIZE:-100}
KEYS=${KEYS:-100000}
LAT_N=${LAT_N:-20000}
ROUNDS=${ROUNDS:-5}
REDIS_CLUSTER=${REDIS_CLUSTER:-0}
REDIS_CLUSTER_REPLICAS=${REDIS_CLUSTER_REPLICAS:-0}
NICE=${NICE:-}

# Paths given relative to where the script was started.
[ -n "${KVSH_BENCH:-}" ] && KVSH_BENCH=$(realpath "$KVSH_BENCH")
[ -n "${KVSH_CEILING:-}" ] && KVSH_CEILING=$(realpath "$KVSH_CEILING")
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# A numeric top-level field of a one-line JSON object: field p50_us.
field() { sed -E "s/.*[{,]\"$1\":(-?[0-9.eE+]+).*/\1/"; }
# A ratio with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# The prefix that runs a command at the NICE priority, if one is set
# (`nice` execs the command, so $! is still the server's PID).
prio=()
if [ -n "$NICE" ]; then
    prio=(nice -n "$NICE")
fi
# free_port, wait_redis, start_redis_cluster.
# shellcheck source=scripts/redis-lib.sh
source scripts/redis-lib.sh

echo "== machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)${NICE:+, running at nice $NICE}"

kvsh=$work/kvsh-bench
if [ -n "${KVSH_BENCH:-}" ]; then
    cp "$KVSH_BENCH" "$kvsh"
else
    echo "== building kvsh (release)"
    cargo build --release --quiet --example bench --example zmq_ceiling
    cp "$target/release/examples/bench" "$kvsh"
fi
# The bare-ZeroMQ ceiling (examples/zmq_ceiling.rs); with KVSH_BENCH set,
# give KVSH_CEILING too, or that row is left out.
ceiling=${KVSH_CEILING:-}
if [ -z "${KVSH_BENCH:-}" ]; then
    ceiling=${ceiling:-$target/release/examples/zmq_ceiling}
fi

# kvsh NAME ARGS...: one bench in a fresh 3-node R=2 cluster; JSON to $work/NAME.
kvsh_run() {
    local name=$1
    shift
    "${prio[@]}" "$kvsh" --json --nodes 3 --replicas 2 "$@" >"$work/$name"
}

echo "== kvsh: 3 nodes, R=2, $SIZE-byte values, $KEYS keys"
# The many-client runs pin each client to one node, with random keys among
# those the node leads: the shape of redis-benchmark --cluster, which ties
# each client to one master and puts a hash tag of that master's slots in
# every key. The same runs unpinned (each client routes every key to its
# primary, so a pipeline of 16 is split over three sockets) follow, for
# reference.
kvsh_run put --raw-samples 20000 put --pinned --ops "$N" --clients "$CLIENTS" --keys "$KEYS" --value-size "$SIZE"
kvsh_run get --raw-samples 0 get --pinned --ops "$N" --clients "$CLIENTS" --keys "$KEYS" --value-size "$SIZE"
kvsh_run getp --raw-samples 0 get --pinned --ops "$((N * 4))" --clients "$CLIENTS" --pipeline "$PIPELINE" --batch "$PIPELINE" --keys "$KEYS" --value-size "$SIZE"
kvsh_run putr --raw-samples 0 put --ops "$N" --clients "$CLIENTS" --keys "$KEYS" --value-size "$SIZE"
kvsh_run getr --raw-samples 0 get --ops "$N" --clients "$CLIENTS" --keys "$KEYS" --value-size "$SIZE"
kvsh_run getpr --raw-samples 0 get --ops "$((N * 4))" --clients "$CLIENTS" --pipeline "$PIPELINE" --batch "$PIPELINE" --keys "$KEYS" --value-size "$SIZE"
# The 1-client runs alternate raw round trips and bench runs ($ROUNDS each)
# and report medians, so the anchor and kvsh see the same minutes.
kvsh_run put1 --rounds "$ROUNDS" --raw-samples "$LAT_N" put --ops "$((LAT_N / ROUNDS))" --clients 1 --keys "$KEYS" --value-size "$SIZE"
kvsh_run get1 --rounds "$ROUNDS" --raw-samples "$LAT_N" get --ops "$((LAT_N / ROUNDS))" --clients 1 --keys "$KEYS" --value-size "$SIZE"
# What bare ZeroMQ carries with one message in flight per client, with no
# kvsh code: the ceiling for any store behind this transport and client
# shape on this machine. (With pipelining kvsh packs requests into one frame,
# so there an echo of separate messages is no ceiling.)
if [ -n "$ceiling" ] && [ -x "$ceiling" ]; then
    "${prio[@]}" "$ceiling" --json --clients "$CLIENTS" --pipeline 1 --duration 5 >"$work/zmq1"
else
    echo "== no zmq_ceiling binary (set KVSH_CEILING): the ceiling row is left out"
fi
for f in put get getp putr getr getpr put1 get1 zmq1; do
    [ -f "$work/$f" ] || continue
    printf '  %-5s %s\n' "$f" "$(cat "$work/$f")"
done

have_redis=0
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    have_redis=1
fi

# redis_csv NAME ARGS...: redis-benchmark --csv; "rps p50_ms" per test to $work/NAME.TEST.
redis_csv() {
    local name=$1
    shift
    "${prio[@]}" redis-benchmark --csv "$@" | tr -d '"' | while IFS=, read -r test rps _avg _min p50 _rest; do
        case $test in
        SET | GET) echo "$rps $p50" >"$work/$name.$test" ;;
        esac
    done
}

if [ "$have_redis" = 1 ]; then
    port=$(free_port)
    "${prio[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --logfile "$work/redis.log" &
    pids+=($!)
    wait_redis "$port"
    echo "== redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'): single instance on port $port"
    common=(-h 127.0.0.1 -p "$port" -d "$SIZE" -r "$KEYS")
    redis_csv r -t set,get -n "$N" -c "$CLIENTS" "${common[@]}"
    redis_csv rp -t get -n "$((N * 4))" -c "$CLIENTS" -P "$PIPELINE" "${common[@]}"
    redis_csv r1 -t set,get -n "$LAT_N" -c 1 "${common[@]}"
    redis-cli -p "$port" flushall >/dev/null

    if [ "$REDIS_CLUSTER" = 1 ]; then
        start_redis_cluster 3 "$REDIS_CLUSTER_REPLICAS"
        nodes=("${cluster_nodes[@]}")
        echo "== redis cluster: 3 masters, $REDIS_CLUSTER_REPLICAS replica(s) each"
        cc=(--cluster -h 127.0.0.1 -p "${nodes[0]#*:}" -d "$SIZE" -r "$KEYS")
        redis_csv c -t set,get -n "$N" -c "$CLIENTS" "${cc[@]}"
        redis_csv cp -t get -n "$((N * 4))" -c "$CLIENTS" -P "$PIPELINE" "${cc[@]}"
    fi
else
    echo "== redis-server or redis-benchmark not found: kvsh figures only"
fi

k() { field "$2" <"$work/$1"; }
raw=$(k put1 median_raw_p50_us)
echo
echo "== results (ops/s; latency p50 in µs)"
printf '%-34s %12s %12s %8s\n' "measure" "kvsh" "redis" "ratio"
row() { printf '%-34s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
r_rps() { [ -f "$work/$1" ] && cut -d' ' -f1 "$work/$1" || echo 0; }
r_p50() { [ -f "$work/$1" ] && awk '{ printf "%.1f", $2 * 1000 }' "$work/$1" || echo 0; }
row "put ${CLIENTS}x1 ops/s" "$(k put median_ops_per_sec)" "$(r_rps r.SET)"
row "get ${CLIENTS}x1 ops/s" "$(k get median_ops_per_sec)" "$(r_rps r.GET)"
row "get ${CLIENTS}x${PIPELINE} ops/s" "$(k getp median_ops_per_sec)" "$(r_rps rp.GET)"
if [ "$REDIS_CLUSTER" = 1 ]; then
    row "put ${CLIENTS}x1 ops/s (vs cluster)" "$(k put median_ops_per_sec)" "$(r_rps c.SET)"
    row "get ${CLIENTS}x1 ops/s (vs cluster)" "$(k get median_ops_per_sec)" "$(r_rps c.GET)"
    row "get ${CLIENTS}x${PIPELINE} ops/s (vs cluster)" "$(k getp median_ops_per_sec)" "$(r_rps cp.GET)"
fi
row "put ${CLIENTS}x1 unpinned (info)" "$(k putr median_ops_per_sec)" "$(r_rps r.SET)"
row "get ${CLIENTS}x1 unpinned (info)" "$(k getr median_ops_per_sec)" "$(r_rps r.GET)"
row "get ${CLIENTS}x${PIPELINE} unpinned (info)" "$(k getpr median_ops_per_sec)" "$(r_rps rp.GET)"
if [ -f "$work/zmq1" ]; then
    row "bare zmq echo ${CLIENTS}x1 (ceiling)" "$(k zmq1 msgs_per_sec)" "$(r_rps r.GET)"
    echo "kvsh get ${CLIENTS}x1 / bare zmq echo = $(ratio "$(k get median_ops_per_sec)" "$(k zmq1 msgs_per_sec)")"
fi
row "put 1x1 p50 µs" "$(k put1 median_p50_us)" "$(r_p50 r1.SET)"
row "get 1x1 p50 µs" "$(k get1 median_p50_us)" "$(r_p50 r1.GET)"
echo
echo "raw zmq round trip p50: $raw µs (median of the rounds of the 1-client put), $(k get1 median_raw_p50_us) µs (of the get)"
echo "put 1x1 p50 / raw p50 = $(k put1 p50_over_raw | xargs printf '%.2f')   (median over $ROUNDS rounds of each round's ratio; target <= 2.5)"
echo "get 1x1 p50 / raw p50 = $(k get1 p50_over_raw | xargs printf '%.2f')   (median over $ROUNDS rounds of each round's ratio; target <= 1.3)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
