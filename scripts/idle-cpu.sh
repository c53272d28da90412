#!/usr/bin/env bash
# CPU an idle cluster uses: starts `kvsh -n NODES` (default 4) with stdin
# held open, waits 3 s for start-up, then measures the process's CPU time
# over 10 s and prints it as a share of one core. With `perf` installed it
# reads the task clock (to the microsecond, per thread with PER_THREAD=1);
# otherwise utime+stime from /proc (10 ms ticks, so ±0.1%).
#
#   scripts/idle-cpu.sh [path/to/kvsh] [NODES] [more kvsh flags...]
set -euo pipefail
BIN=${1:-target/release/kvsh}
NODES=${2:-4}
shift $(($# < 2 ? $# : 2))
sleep 16 | "$BIN" -n "$NODES" "$@" >/dev/null 2>&1 &
sleep 3
PID=$(pgrep -n -f "$BIN -n $NODES")
if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
    # Per thread: "NAME-TID,MSEC,msec,task-clock,...".
    per=$(perf stat -x, --per-thread -e task-clock -p "$PID" sleep 10 2>&1 | grep task-clock || true)
    if [ "${PER_THREAD:-0}" = 1 ]; then
        echo "$per" | awk -F, '$2 ~ /^[0-9.]+$/ { printf "  %-20s %8.2f ms\n", $1, $2 }'
    fi
    ms=$(echo "$per" | awk -F, '$2 ~ /^[0-9.]+$/ { t += $2 } END { print t + 0 }')
    awk -v ms="$ms" 'BEGIN { printf "idle CPU of %s nodes: %.2f%% of a core (task clock)\n", "'"$NODES"'", ms / 100 }'
else
    hz=$(getconf CLK_TCK)
    t0=$(awk '{print $14+$15}' "/proc/$PID/stat")
    sleep 10
    t1=$(awk '{print $14+$15}' "/proc/$PID/stat")
    awk -v d="$((t1 - t0))" -v hz="$hz" 'BEGIN { printf "idle CPU of %s nodes: %.2f%% of a core (/proc ticks)\n", "'"$NODES"'", d / hz / 10 * 100 }'
fi
wait
