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
#   scripts/perf-report.sh one SUFFIX   one instance only (api-1): draws, new users, reads,
#                                       the rate and mixed scenarios; SUFFIX names the set-up
#                                       (-db-one, -redis-single)
#   scripts/perf-report.sh scenarios    embedded: the rate and mixed scenarios only
#   scripts/perf-report.sh flat         embedded: draws on an empty database, then FILL_SECONDS
#                                       (600) of new users' draws, then the same draws again,
#                                       with the scheduled jobs' round times at both ends
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

# CPU seconds used so far by the processes whose command line matches the pattern (pgrep -f).
cpu_ticks() {
  local t=0 pid f
  for pid in $(pgrep -f "$1"); do
    read -r -a f <"/proc/$pid/stat" 2>/dev/null || continue
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}

# run COMPARISON SET_UP TARGET_FLAGS... -- SCENARIO_ARGS...
# With CPU_OF set (pgrep patterns, space-separated, e.g. "mariadbd redis-server"), each
# pattern's CPU seconds during a run go to its .cpu file.
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
    local out="$RESULTS/$comparison--$set_up--r$r" pattern
    local before=()
    for pattern in ${CPU_OF:-}; do before+=("$(cpu_ticks "$pattern")"); done
    "$LOAD" "$@" "${target[@]}" --json "$out.json" >"$out.txt"
    if [ -n "${CPU_OF:-}" ]; then
      local i=0 hz
      hz=$(getconf CLK_TCK)
      : >"$out.cpu"
      for pattern in $CPU_OF; do
        echo "$pattern $(( ($(cpu_ticks "$pattern") - before[i]) * 1000 / hz )) ms" >>"$out.cpu"
        i=$((i + 1))
      done
    fi
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
  scenarios embedded "${t[@]}"
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

# scenarios SET_UP TARGET_FLAGS...: the open model at RATE draws/s and the mixed load, once
# each; the audit follows each run as always.
scenarios() {
  local set_up=$1
  shift
  RUNS=1 run scenarios "$set_up-rate" "$@" -- rate -r "${RATE:-2000}" -d "$DURATION"
  RUNS=1 run scenarios "$set_up-mixed" "$@" -- mixed -c "$CONNECTIONS" -d "$DURATION"
}

# one SUFFIX: one instance of the local cluster (api-1), without the balancer.
one() {
  local suffix=$1
  eval "$(deploy/local-cluster.sh env)"
  local url="${LOTTERY_URL%:*}:$((${LOTTERY_URL##*:} + 11))"
  run instances "one$suffix" --config "$LOTTERY_CONFIG" --url "$url" -- \
    sustained -c "$CONNECTIONS" -d "$DURATION"
  run instances "one-new-users$suffix" --config "$LOTTERY_CONFIG" --url "$url" -- \
    sustained -c "$CONNECTIONS" -d "$DURATION" --new-users
  run cluster-reads "one$suffix" --config "$LOTTERY_CONFIG" --url "$url" -- \
    reads -c "$CONNECTIONS" -d "$DURATION"
  scenarios "cluster$suffix" --config "$LOTTERY_CONFIG" --url "$url"
}

# The scheduled jobs' rounds over an idle WINDOW seconds: job, rounds, mean ms per round.
job_rounds() {
  local window=${WINDOW:-30} before after
  before=$(curl -fs http://127.0.0.1:18500/metrics | grep '^lottery_job_round_duration_seconds_\(sum\|count\)')
  sleep "$window"
  after=$(curl -fs http://127.0.0.1:18500/metrics | grep '^lottery_job_round_duration_seconds_\(sum\|count\)')
  printf '%s\n' "$before" | sed 's/^/before /'
  printf '%s\n' "$after" | sed 's/^/after /'
}

# Whether draws cost more once millions are stored: the same runs on an empty database and
# after FILL_SECONDS of new users' draws, on one embedded server.
flat() {
  build
  local t=(--data-dir "" --url http://127.0.0.1:18500)
  embedded_server
  t[1]=$DATA
  run flat empty "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION"
  run flat empty-new-users "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION" --new-users
  job_rounds >"$RESULTS/flat--jobs-empty.txt"
  "$LOAD" sustained "${t[@]}" -c "$CONNECTIONS" -d "${FILL_SECONDS:-600}" --new-users \
    --json "$RESULTS/flat--fill.json" >"$RESULTS/flat--fill.txt"
  head -3 "$RESULTS/flat--fill.txt"
  stored >"$RESULTS/flat--stored.txt"
  cat "$RESULTS/flat--stored.txt"
  job_rounds >"$RESULTS/flat--jobs-filled.txt"
  run flat filled "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION"
  run flat filled-new-users "${t[@]}" -- sustained -c "$CONNECTIONS" -d "$DURATION" --new-users
  stop_server
}

# Rows stored in the embedded server's shard files, and its resident memory.
stored() {
  local takes=0 users=0 f t
  for f in "$DATA"/shard_*.db; do
    for t in 0 1 2 3; do
      takes=$((takes + $(sqlite3 "$f" "select count(*) from user_take_00$t")))
      users=$((users + $(sqlite3 "$f" "select count(*) from user_take_count_00$t")))
    done
  done
  echo "takes stored: $takes"
  echo "users with a take count: $users"
  echo "stock ledger user entries: $(sqlite3 "$DATA/global.db" "select count(*) from stock_ledger_user")"
  echo "server resident memory: $(ps -o rss= -p "$SERVER") KiB"
  du -sh "$DATA"
}

# The one-instance runs of each set-up, filed again under the comparison they belong to.
assemble() {
  local pair from to r
  for pair in one:redis--cluster one-redis-single:redis--single \
    one-redis-single-pooled:redis--single-pooled-connections \
    one:databases--two-servers one-db-one:databases--one-server; do
    from=${pair%%:*}
    to=${pair#*:}
    for r in $(seq 1 "$RUNS"); do
      if [ -f "$RESULTS/instances--$from--r$r.json" ]; then
        cp "$RESULTS/instances--$from--r$r.json" "$RESULTS/$to--r$r.json"
      fi
    done
  done
}

case "${1:-}" in
  embedded) embedded ;;
  one) one "${2:-}" ;;
  flat) flat ;;
  scenarios)
    build
    embedded_server
    scenarios embedded --data-dir "$DATA" --url http://127.0.0.1:18500
    stop_server
    ;;
  cluster) cluster "" ;;
  redis-single) cluster "-redis-single" ;;
  stock-db) cluster "-stock-db" ;;
  charts)
    assemble
    python3 scripts/charts.py "$RESULTS" docs/performance
    ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
