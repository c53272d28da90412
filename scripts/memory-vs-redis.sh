#!/usr/bin/env bash
# Memory per key, kvsh against Redis, one after the other in each round:
# one million keys of 100 bytes at R=2. kvsh's figure is the RSS growth of
# the whole process per stored key replica (`bench --rss`); Redis's is twice
# the `used_memory` growth of one instance after `DEBUG POPULATE` (master
# plus replica). Give one or more builds of examples/bench to compare them.
#
#   cargo build --release --example bench
#   ROUNDS=2 scripts/memory-vs-redis.sh target/release/examples/bench [/tmp/old-bench]
#
# Needs redis-server and redis-cli on the PATH; installs nothing. Not part
# of CI.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 BENCH_BINARY..." >&2
    exit 2
fi
rounds=${ROUNDS:-2}
# shellcheck source=scripts/redis-lib.sh
. "$(dirname "$0")/redis-lib.sh"
redis_per_key() {
    local port
    port=$(free_port)
    redis-server --port "$port" --save '' --appendonly no --enable-debug-command yes >/dev/null 2>&1 &
    wait_redis "$port"
    used() { redis-cli -p "$port" info memory | sed -nE 's/^used_memory:([0-9]+).*/\1/p'; }
    local before after
    before=$(used)
    redis-cli -p "$port" debug populate 1000000 bench 100 >/dev/null
    after=$(used)
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait
    echo $((2 * (after - before) / 1000000))
}
for round in $(seq "$rounds"); do
    for b in "$@"; do
        per=$("$b" --raw-samples 0 --rss get --keys 1000000 --ops 1 --keep 2>&1 |
            sed -nE 's/.*per stored key replica: ([0-9]+) bytes.*/\1/p')
        echo "round $round  $b: $((2 * per)) bytes per key ($per per replica)"
    done
    echo "round $round  redis master+replica: $(redis_per_key) bytes per key"
done
