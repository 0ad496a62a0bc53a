#!/usr/bin/env bash
# Measures every set-up of docs/performance.md with the load tool and draws the charts.
#
#   scripts/perf-report.sh embedded     embedded mode: draws (returning and new users), reads,
#                                       spike; the configuration cache on and off; group commit
#                                       on and off
#   scripts/perf-report.sh cluster      deploy/local-cluster.sh: one instance and four behind
#                                       HAProxy, Redis Cluster; spike through the balancer
#   scripts/perf-report.sh redis-single the same on the local single Redis
#   scripts/perf-report.sh stock-db     one instance with the database row-lock stock strategy
#   scripts/perf-report.sh charts       the PNG charts from the results
#
# Results: docs/performance/results/<comparison>--<set-up>--r<run>.json, three runs each
# (RUNS), DURATION seconds per run, CONNECTIONS connections. Release builds; run it on an
# otherwise idle machine, nothing else under load.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RESULTS=${RESULTS:-docs/performance/results}
RUNS=${RUNS:-3}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-256}
LOTTERY=target/release/lottery
LOAD=target/release/lottery-load
mkdir -p "$RESULTS"

build() {
  cargo build --release --locked -p lottery-server -p lottery-load
}

# run COMPARISON SET_UP TARGET_FLAGS... -- SCENARIO_ARGS...
run() {
  local comparison=$1 set_up=$2
  shift 2
  local target=()
  while [ "$1" != "--" ]; do
    target+=("$1")
    shift
  done
  shift
  for r in $(seq 1 "$RUNS"); do
    local out="$RESULTS/$comparison--$set_up--r$r"
    "$LOAD" "$@" "${target[@]}" --json "$out.json" >"$out.txt"
    head -3 "$out.txt"
  done
}

# An embedded server on a fresh data directory with extra settings in the environment.
embedded_server() {
  local dir
  dir=$(mktemp -d)
  # The per-user rate limit (10/s) would cap 1,000 returning users at 10,000 draws/s.
  env LOTTERY_HTTP__DRAWS_PER_SECOND=100000 LOTTERY_HTTP__DRAW_BURST=100000 "$@" \
    LOTTERY_LOG__LEVEL=warn "$LOTTERY" serve --data-dir "$dir" --listen 127.0.0.1:18500 \
    >"$dir/server.log" 2>&1 &
  SERVER=$!
  DATA=$dir
  for _ in $(seq 1 100); do
    curl -fs http://127.0.0.1:18500/readyz >/dev/null && return 0
    sleep 0.1
  done
  echo "embedded server did not start: $(cat "$dir/server.log")" >&2
  exit 1
}

stop_server() {
  kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
  rm -rf "$DATA"
}

embedded() {
  build
  local t=(--data-dir "" --url http://127.0.0.1:18500)
  embedded_server
  t[1]=$DATA
  run embedded draws-returning "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION"
  run embedded draws-new-users "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION" --new-users
  run embedded reads "${t[@]}" -- reads -c "$CONNECTIONS" -d "$DURATION"
  run spike embedded "${t[@]}" -- spike
  # The default set-up is the "on" side of both comparisons.
  for r in $(seq 1 "$RUNS"); do
    cp "$RESULTS/embedded--draws-returning--r$r.json" "$RESULTS/cache--embedded-on--r$r.json"
    cp "$RESULTS/embedded--draws-returning--r$r.json" "$RESULTS/batching--embedded-on--r$r.json"
  done
  stop_server
  embedded_server LOTTERY_CACHE__TTL_MS=0
  t[1]=$DATA
  run cache embedded-off "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION"
  stop_server
  embedded_server LOTTERY_WRITES__BATCHED=false
  t[1]=$DATA
  run batching embedded-off "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION"
  stop_server
}

# cluster SET_UP_SUFFIX: the local cluster must be up (deploy/local-cluster.sh up).
cluster() {
  local suffix=$1
  eval "$(deploy/local-cluster.sh env)"
  local base=${LOTTERY_URL%:*}
  local port=${LOTTERY_URL##*:}
  run instances "one$suffix" --config "$LOTTERY_CONFIG" --url "$base:$((port + 11))" -- \
    sustained -c "$CONNECTIONS" -d "$DURATION"
  run instances "four-haproxy$suffix" --config "$LOTTERY_CONFIG" --url "$LOTTERY_URL" -- \
    sustained -c "$CONNECTIONS" -d "$DURATION"
  run instances "four-haproxy-new-users$suffix" --config "$LOTTERY_CONFIG" --url "$LOTTERY_URL" -- \
    sustained -c "$CONNECTIONS" -d "$DURATION" --new-users
  run spike "cluster$suffix" --config "$LOTTERY_CONFIG" --url "$LOTTERY_URL" -- spike
  run cluster-reads "four-haproxy$suffix" --config "$LOTTERY_CONFIG" --url "$LOTTERY_URL" -- \
    reads -c "$CONNECTIONS" -d "$DURATION"
}

case "${1:-}" in
  embedded) embedded ;;
  cluster) cluster "" ;;
  redis-single) cluster "-redis-single" ;;
  stock-db) cluster "-stock-db" ;;
  charts) python3 scripts/charts.py "$RESULTS" docs/performance ;;
  *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
