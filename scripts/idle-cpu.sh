#!/usr/bin/env bash
# CPU an idle cluster uses: starts `kvsh -n NODES` (default 4) with stdin
# held open, waits 2 s for start-up, then reads the process's utime+stime
# from /proc over 10 s and prints it as a share of one core.
#
#   scripts/idle-cpu.sh [path/to/kvsh] [NODES]
set -euo pipefail
BIN=${1:-target/release/kvsh}
NODES=${2:-4}
sleep 14 | "$BIN" -n "$NODES" >/dev/null 2>&1 &
sleep 2
PID=$(pgrep -n -f "$BIN -n $NODES")
hz=$(getconf CLK_TCK)
t0=$(awk '{print $14+$15}' "/proc/$PID/stat")
sleep 10
t1=$(awk '{print $14+$15}' "/proc/$PID/stat")
awk -v d="$((t1 - t0))" -v hz="$hz" 'BEGIN { printf "idle CPU of %s nodes: %.2f%% of a core\n", "'"$NODES"'", d / hz / 10 * 100 }'
wait
