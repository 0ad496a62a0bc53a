#!/usr/bin/env bash
# Scale-out acceptance through the balancer of a fresh local cluster: readiness, the spike
# (2,000 new users, stock 100), one user drawing as fast as possible (held to the rate across
# instances), sustained load with api-2 killed by SIGKILL (HAProxy takes it out, the audit is
# clean, restart rejoins), and `down` leaving nothing running. Outputs in /tmp/acc-*.txt.
# Needs a release build (cargo build --release -p lottery-server -p lottery-load) and socat.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LOTTERY_BIN=$PWD/target/release/lottery
# A cluster of its own, beside any other: its state directory, ports and names.
export LOTTERY_CLUSTER_DIR=${LOTTERY_CLUSTER_DIR:-/tmp/lottery-acceptance}
export LOTTERY_CLUSTER_PORT_BASE=${LOTTERY_CLUSTER_PORT_BASE:-28000}
export LOTTERY_CLUSTER_NAME=${LOTTERY_CLUSTER_NAME:-lottery_acceptance}
LOAD=target/release/lottery-load
deploy/local-cluster.sh down --purge >/dev/null 2>&1
echo "== up"; date
deploy/local-cluster.sh up > /tmp/acc-up.log 2>&1 || { tail /tmp/acc-up.log; exit 1; }
eval "$(deploy/local-cluster.sh env)"
echo "readyz through the balancer: $(curl -s -o /dev/null -w '%{http_code}' "$LOTTERY_URL/readyz")"
echo "== spike"
$LOAD spike --config "$LOTTERY_CONFIG" --url "$LOTTERY_URL" > /tmp/acc-spike.txt; grep -E "requests in|classes|takes_within_stock|PASSED|FAILED" /tmp/acc-spike.txt
echo "== one user as fast as possible, 5 s"
$LOAD sustained --config "$LOTTERY_CONFIG" --url "$LOTTERY_URL" --users 1 -c 16 -d 5 > /tmp/acc-rate.txt; grep -E "requests in|answers|classes|PASSED|FAILED" /tmp/acc-rate.txt
echo "== sustained with api-2 killed"
$LOAD sustained --config "$LOTTERY_CONFIG" --url "$LOTTERY_URL" -c 64 -d 20 --drain-timeout 60 > /tmp/acc-kill.txt &
LOADPID=$!
sleep 6
PID=$(deploy/local-cluster.sh status | awk '$1=="api-2"{print $2}')
echo "killing api-2 (pid $PID) at $(date +%T.%N)"
kill -9 "$PID"
for i in $(seq 1 40); do
  st=$(echo "show stat" | socat stdio "$LOTTERY_CLUSTER_DIR/haproxy/admin.sock" 2>/dev/null | awk -F, '$2=="api-2"{print $18}')
  if [ "$st" = "DOWN" ]; then echo "haproxy: api-2 DOWN at $(date +%T.%N)"; break; fi
  sleep 0.1
done
wait $LOADPID
grep -E "requests in|classes|PASSED|FAILED|fail" /tmp/acc-kill.txt
deploy/local-cluster.sh restart api-2 >/dev/null 2>&1
deploy/local-cluster.sh status | head -12
echo "== down"
deploy/local-cluster.sh down --purge >/dev/null 2>&1
pgrep -af "$LOTTERY_CLUSTER_DIR" || echo "nothing left running"
date
