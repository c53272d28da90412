# Shared by the bench scripts: free loopback ports and starting Redis.
# Source it after setting `work` (a scratch directory), `pids` (an array
# the caller kills on exit) and `prio` (a command prefix, maybe empty).

# A free TCP port on loopback, below 55536 with port+10000 free too: a Redis
# Cluster node also listens on its port + 10000 (the cluster bus).
free_port() {
    python3 -c '
import random, socket
while True:
    p = random.randint(20000, 45000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass
' 2>/dev/null || echo $((20000 + RANDOM % 25000))
}
# Waits up to 10 s for a Redis server to answer.
wait_redis() {
    for _ in $(seq 100); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis on port $1 did not start" >&2
    return 1
}

# start_redis_cluster MASTERS REPLICAS: starts a Redis Cluster on free
# ports, waits until every node says it is up, and sets `cluster_nodes`
# (HOST:PORT words).
start_redis_cluster() {
    local masters=$1 replicas=$2 p n
    cluster_nodes=()
    for _ in $(seq $((masters * (1 + replicas)))); do
        p=$(free_port)
        mkdir -p "$work/c$p"
        (cd "$work/c$p" && exec "${prio[@]}" redis-server --port "$p" --bind 127.0.0.1 --save '' \
            --appendonly no --cluster-enabled yes --cluster-config-file nodes.conf \
            --daemonize no --logfile redis.log) &
        pids+=($!)
        cluster_nodes+=("127.0.0.1:$p")
    done
    for n in "${cluster_nodes[@]}"; do
        wait_redis "${n#*:}"
    done
    redis-cli --cluster create "${cluster_nodes[@]}" --cluster-replicas "$replicas" \
        --cluster-yes >/dev/null
    # Every node must agree the cluster is up, or the first requests
    # fail with CLUSTERDOWN.
    for n in "${cluster_nodes[@]}"; do
        for _ in $(seq 100); do
            redis-cli -p "${n#*:}" cluster info | grep -q 'cluster_state:ok' && break
            sleep 0.2
        done
    done
    sleep 1
}
