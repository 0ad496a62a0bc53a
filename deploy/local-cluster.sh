#!/usr/bin/env bash
# A whole cluster-mode deployment of the platform on one machine, with no container engine:
# four API instances and a worker behind HAProxy, shard databases on two MariaDB servers,
# Redis Cluster (or the local Redis), the local RabbitMQ and Prometheus. See
# docs/deployment.md.
#
#   deploy/local-cluster.sh up                 install what is missing, build, start, wait until ready
#   deploy/local-cluster.sh status             every process: name, pid, port, state
#   deploy/local-cluster.sh env                LOTTERY_URL=... and LOTTERY_CONFIG=...
#   deploy/local-cluster.sh restart NAME       stop (if running) and start one process, e.g. api-2
#   deploy/local-cluster.sh stop NAME          stop one process
#   deploy/local-cluster.sh down [--purge]     stop everything it started; --purge also deletes
#                                              the state directory and the deployment's data on
#                                              the shared servers
#
# Settings (read by the first `up`, then recorded in the state directory):
#   LOTTERY_CLUSTER_DIR        state directory (default /tmp/lottery-cluster)
#   LOTTERY_CLUSTER_PORT_BASE  first port (default 18000): balancer +0, its stats page +1,
#                              api-1..4 +11..+14, worker-1 +21, Prometheus +90, the second
#                              MariaDB +307, Redis Cluster nodes +701..+703
#   LOTTERY_CLUSTER_NAME       deployment name: databases, Redis key prefix, broker names
#                              (default lottery_local)
#   LOTTERY_CLUSTER_REDIS      cluster (default): a private three-master Redis Cluster;
#                              single: the local Redis (LOTTERY_CLUSTER_REDIS_URL, default
#                              redis://127.0.0.1:6379), keys under the deployment's name
#   LOTTERY_CLUSTER_DB         two (default): shards 01-02 on the first MariaDB server,
#                              03-04 on a second one the script starts; one: every shard on
#                              the first server (for the one-vs-two comparison)
#   LOTTERY_CLUSTER_MYSQL_URL  the first MariaDB server, holding the global database and
#                              shards 01-02 (default mysql://root@127.0.0.1:3306)
#   LOTTERY_CLUSTER_AMQP_URL   the broker (default amqp://guest:guest@127.0.0.1:5672/%2f)
#   LOTTERY_BIN                use this lottery binary instead of building one
#
# Only processes recorded in the state directory's pid files (pid and start time) are ever
# stopped. The shared MariaDB, Redis and RabbitMQ are used, never started, stopped or flushed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${LOTTERY_CLUSTER_DIR:-/tmp/lottery-cluster}
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
SETTINGS="$DIR/cluster.env"
API_COUNT=4

log() { printf '[local-cluster] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Settings -------------------------------------------------------------------------------------

load_settings() {
  if [ -f "$SETTINGS" ]; then
    # shellcheck source=/dev/null
    . "$SETTINGS"
    if [ -n "${LOTTERY_CLUSTER_REDIS:-}" ] && [ "$LOTTERY_CLUSTER_REDIS" != "$REDIS_MODE" ]; then
      REQUESTED_REDIS_MODE=$LOTTERY_CLUSTER_REDIS
    fi
    DB_LAYOUT=${DB_LAYOUT:-two}
    if [ -n "${LOTTERY_CLUSTER_DB:-}" ] && [ "$LOTTERY_CLUSTER_DB" != "$DB_LAYOUT" ]; then
      die "the cluster in $DIR keeps its shards on $DB_LAYOUT MariaDB server(s): run 'down --purge' before switching to $LOTTERY_CLUSTER_DB"
    fi
    return
  fi
  PORT_BASE=${LOTTERY_CLUSTER_PORT_BASE:-18000}
  NAME=${LOTTERY_CLUSTER_NAME:-lottery_local}
  REDIS_MODE=${LOTTERY_CLUSTER_REDIS:-cluster}
  DB_LAYOUT=${LOTTERY_CLUSTER_DB:-two}
  MYSQL1_URL=${LOTTERY_CLUSTER_MYSQL_URL:-mysql://root@127.0.0.1:3306}
  AMQP_URL=${LOTTERY_CLUSTER_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
  SINGLE_REDIS_URL=${LOTTERY_CLUSTER_REDIS_URL:-redis://127.0.0.1:6379}
}

check_settings() {
  [[ "$NAME" =~ ^[A-Za-z0-9_]+$ ]] || die "LOTTERY_CLUSTER_NAME must be letters, digits and _ (it names databases)"
  if ! [[ "$PORT_BASE" =~ ^[0-9]+$ ]] || [ "$PORT_BASE" -lt 1024 ] || [ "$PORT_BASE" -gt 54000 ]; then
    die "LOTTERY_CLUSTER_PORT_BASE must be a number from 1024 to 54000 (Redis uses base+10701..10703 for its cluster bus)"
  fi
  case "$REDIS_MODE" in cluster | single) ;; *) die "LOTTERY_CLUSTER_REDIS must be cluster or single" ;; esac
  case "$DB_LAYOUT" in one | two) ;; *) die "LOTTERY_CLUSTER_DB must be one or two" ;; esac
  [[ "$MYSQL1_URL" =~ ^mysql://[^/]+$ ]] || die "LOTTERY_CLUSTER_MYSQL_URL must be mysql://user[:password]@host:port (no database)"
}

save_settings() {
  cat >"$SETTINGS" <<EOF
# Recorded by deploy/local-cluster.sh on the first 'up'; later commands read it.
PORT_BASE=$PORT_BASE
NAME=$NAME
REDIS_MODE=$REDIS_MODE
DB_LAYOUT=$DB_LAYOUT
MYSQL1_URL='$MYSQL1_URL'
AMQP_URL='$AMQP_URL'
SINGLE_REDIS_URL='$SINGLE_REDIS_URL'
EOF
}

derive() {
  LB_PORT=$PORT_BASE
  STATS_PORT=$((PORT_BASE + 1))
  PROM_PORT=$((PORT_BASE + 90))
  DB2_PORT=$((PORT_BASE + 307))
  WORKER_PORT=$((PORT_BASE + 21))
  CONFIG="$DIR/lottery.toml"
  BIN="$DIR/bin/lottery"
  DB2_DIR="$DIR/db-2"
  DB2_SOCKET="$DB2_DIR/run/mariadb.sock"
  LB_SOCKET="$DIR/haproxy/admin.sock"
  PROCESSES=()
  if [ "$REDIS_MODE" = cluster ]; then PROCESSES+=(redis-1 redis-2 redis-3); fi
  if [ "$DB_LAYOUT" = two ]; then PROCESSES+=(db-2); fi
  PROCESSES+=(worker-1)
  for i in $(seq "$API_COUNT"); do PROCESSES+=("api-$i"); done
  PROCESSES+=(haproxy prometheus)
}

port_of() {
  case "$1" in
    api-*) echo $((PORT_BASE + 10 + ${1#api-})) ;;
    worker-1) echo "$WORKER_PORT" ;;
    redis-*) echo $((PORT_BASE + 700 + ${1#redis-})) ;;
    db-2) echo "$DB2_PORT" ;;
    haproxy) echo "$LB_PORT" ;;
    prometheus) echo "$PROM_PORT" ;;
    *) return 1 ;;
  esac
}

known_process() {
  local p
  for p in "${PROCESSES[@]}"; do [ "$p" = "$1" ] && return 0; done
  return 1
}

# Processes: started in their own session, recorded as "pid start-time" ---------------------

pid_file() { echo "$DIR/run/$1.pid"; }

# Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. With the pid
# it names one process for good: a pid reused by another process has another start time.
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  [ "$1" != Z ] || return 1
  echo "${20}"
}

# The pid of NAME if the process recorded for it still runs, else nothing (status 1).
running_pid() {
  local file pid started now
  file=$(pid_file "$1")
  [ -f "$file" ] || return 1
  read -r pid started <"$file" || return 1
  [ -n "$pid" ] || return 1
  now=$(start_time "$pid") || return 1
  [ "$now" = "$started" ] || return 1
  echo "$pid"
}

# spawn NAME DIR COMMAND...: runs COMMAND in DIR, in a session of its own (so the terminal or
# whatever ran this script can go away), output to log/NAME.log, and records it.
spawn() {
  local name=$1 cwd=$2 pid started
  shift 2
  mkdir -p "$DIR/run" "$DIR/log"
  printf '\n==== %s: starting %s\n' "$(date -Is)" "$name" >>"$DIR/log/$name.log"
  (cd "$cwd" && exec setsid "$@") >>"$DIR/log/$name.log" 2>&1 </dev/null 9>&- &
  pid=$!
  started=$(start_time "$pid") || die "$name exited at once: see $DIR/log/$name.log"
  echo "$pid $started" >"$(pid_file "$name")"
}

# stop NAMES...: SIGTERM to each recorded process, then waits for them (SIGKILL after the bound).
stop() {
  local name pid bound=30 waited=0 left
  local -a pids=() names=()
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$name")
    fi
  done
  [ ${#pids[@]} -gt 0 ] || {
    for name in "$@"; do rm -f "$(pid_file "$name")"; done
    return 0
  }
  case " $* " in *" db-2 "*) bound=90 ;; esac
  while :; do
    left=0
    for name in "${names[@]}"; do
      if running_pid "$name" >/dev/null; then left=$((left + 1)); fi
    done
    [ "$left" -gt 0 ] || break
    if [ "$waited" -ge $((bound * 10)) ]; then
      for name in "${names[@]}"; do
        if pid=$(running_pid "$name"); then
          log "$name did not stop within ${bound}s: SIGKILL"
          kill -KILL "$pid" 2>/dev/null || true
        fi
      done
      sleep 1
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  # A record goes only with its process: one that survived SIGKILL stays visible to status.
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      log "warning: $name (pid $pid) still runs"
    else
      rm -f "$(pid_file "$name")"
    fi
  done
}

# Probes ---------------------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" 2>/dev/null || true; }

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds; fails naming WHAT.
wait_for() {
  local what=$1 seconds=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what was not ready within ${seconds}s"
    sleep 0.25
  done
}

# wait_started NAME SECONDS COMMAND...: as wait_for, and fails at once when NAME exits.
wait_started() {
  local name=$1 seconds=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    running_pid "$name" >/dev/null || die "$name exited while starting: see $DIR/log/$name.log"
    [ "$SECONDS" -lt "$deadline" ] || die "$name was not ready within ${seconds}s: see $DIR/log/$name.log"
    sleep 0.25
  done
}

ready() { [ "$(http_code "http://127.0.0.1:$1/readyz")" = 200 ]; }

# mysql_args URL: client options for a mysql://user[:password]@host:port URL.
mysql_args() {
  local rest=${1#mysql://} creds hostport user pass host port
  creds=${rest%@*}
  hostport=${rest##*@}
  user=${creds%%:*}
  pass=""
  [ "$creds" = "$user" ] || pass=${creds#*:}
  host=${hostport%:*}
  port=${hostport##*:}
  [ "$port" != "$hostport" ] || port=3306
  printf '%s\n' "-h$host" "-P$port" "-u$user"
  [ -z "$pass" ] || printf '%s\n' "-p$pass"
}

mysql1() {
  local -a args
  mapfile -t args < <(mysql_args "$MYSQL1_URL")
  mariadb --connect-timeout=3 "${args[@]}" "$@"
}

db2_root() { mariadb --connect-timeout=3 --socket="$DB2_SOCKET" -uroot "$@"; }

# Installation and build -----------------------------------------------------------------------

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_updated=""
created_policy=""

cleanup_policy() { if [ -n "$created_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi; }

# ensure_package BINARY PACKAGE: installs PACKAGE with apt-get when BINARY is absent. Packages
# are installed without starting their system services (this script runs its own copies).
ensure_package() {
  local binary=$1 package=$2
  if command -v "$binary" >/dev/null 2>&1 || [ -x "$binary" ]; then return 0; fi
  command -v apt-get >/dev/null 2>&1 || die "$binary is missing and there is no apt-get to install $package"
  log "installing $package"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# Written by deploy/local-cluster.sh while installing packages: start no services.\nexit 101\n' |
      $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
    trap cleanup_policy EXIT
  fi
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  cleanup_policy
  created_policy=""
}

ensure_tools() {
  ensure_package curl curl
  ensure_package setsid util-linux
  ensure_package mariadb mariadb-client
  ensure_package /usr/sbin/mariadbd mariadb-server
  ensure_package mariadb-install-db mariadb-server
  ensure_package redis-cli redis-tools
  if [ "$REDIS_MODE" = cluster ]; then ensure_package redis-server redis-server; fi
  ensure_package haproxy haproxy
  ensure_package prometheus prometheus
}

# The binary every instance runs: a copy taken when no instance runs, so a rebuild of the
# workspace does not change what a restarted instance runs beside the others.
ensure_binary() {
  local source
  mkdir -p "$DIR/bin"
  local any_running="" name
  for name in worker-1 $(seq -f 'api-%g' "$API_COUNT"); do
    if running_pid "$name" >/dev/null; then any_running=1; fi
  done
  if [ -n "$any_running" ] && [ -x "$BIN" ]; then return 0; fi
  if [ -n "${LOTTERY_BIN:-}" ]; then
    source=$LOTTERY_BIN
  else
    command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (see README.md) or set LOTTERY_BIN"
    log "building the release binary (cargo build --release -p lottery-server --locked)"
    (cd "$ROOT" && cargo build --release -p lottery-server --locked)
    source="${CARGO_TARGET_DIR:-$ROOT/target}/release/lottery"
    case "$source" in /*) ;; *) source="$ROOT/$source" ;; esac
  fi
  [ -x "$source" ] || die "no lottery binary at $source"
  cp -f "$source" "$BIN.new" && mv -f "$BIN.new" "$BIN"
}

# `env` options that remove the caller's LOTTERY_* variables: the binary reads them as
# configuration (they would override the generated file, and LOTTERY_CLUSTER_* or LOTTERY_URL
# are no configuration keys at all, so it would refuse to start).
clean_env() {
  local v
  for v in $(compgen -e); do
    case "$v" in LOTTERY_*) printf '%s\n' -u "$v" ;; esac
  done
}

# The lottery binary with none of the caller's LOTTERY_* variables.
lottery() {
  local -a clean
  mapfile -t clean < <(clean_env)
  env "${clean[@]}" "$BIN" "$@"
}

# Secrets and configuration --------------------------------------------------------------------

random_string() { tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1" || true; }

secret() {
  local file="$DIR/secrets/$1"
  if [ ! -s "$file" ]; then
    mkdir -p "$DIR/secrets"
    chmod 700 "$DIR/secrets"
    (umask 077 && random_string "$2" >"$file")
  fi
  cat "$file"
}

shard_layout() {
  if [ "$DB_LAYOUT" = one ]; then
    echo "Every shard on the first MariaDB server (LOTTERY_CLUSTER_DB=one)."
  else
    echo "Shards 01-02 on the first MariaDB server, 03-04 on the second (started by the script)."
  fi
}

shard_url() {
  local n=$1
  if [ "$n" -le 2 ] || [ "$DB_LAYOUT" = one ]; then
    printf '%s/%s_%02d' "$MYSQL1_URL" "$NAME" "$n"
  else
    printf 'mysql://lottery:%s@127.0.0.1:%s/%s_%02d' "$(secret db-2-password 24)" "$DB2_PORT" "$NAME" "$n"
  fi
}

write_config() {
  local redis
  if [ "$REDIS_MODE" = cluster ]; then
    redis="url = \"redis://127.0.0.1:$(port_of redis-1)\"
# A Redis Cluster: the url and the seeds are masters; the client follows the cluster's slots.
cluster = true
cluster_seeds = [\"redis://127.0.0.1:$(port_of redis-2)\", \"redis://127.0.0.1:$(port_of redis-3)\"]"
  else
    redis="url = \"$SINGLE_REDIS_URL\""
  fi
  (
    umask 077
    cat >"$CONFIG.new" <<EOF
# Generated by deploy/local-cluster.sh (regenerated by every 'up'); see docs/deployment.md.
# Every instance starts from this file with its own --listen, --role and --data-dir.
listen = "127.0.0.1:0"
data_dir = "$DIR/instances/default"
# Names the broker's exchange and queues and prefixes the Redis keys.
deployment = "$NAME"
worker_lease_ttl_ms = 10000

[database]
global_url = "$MYSQL1_URL/$NAME"
# $(shard_layout)
shard_urls = [
  "$(shard_url 1)",
  "$(shard_url 2)",
  "$(shard_url 3)",
  "$(shard_url 4)",
]
tables = 4
# Per instance, split over its five pools (global + 4 shards, 4 connections each): five
# instances open at most 60 connections on the first server and 40 on the second (100 on the
# first when every shard is there).
max_connections = 20

[redis]
$redis
pool_size = 32

[amqp]
url = "$AMQP_URL"
prefetch = 64

[auth]
jwt_secret = "$(secret jwt 48)"

[http]
request_timeout_ms = 10000

[log]
json = false
level = "info"

[workers]
relay_interval_ms = 200
reconcile_interval_ms = 1000
reconcile_grace_ms = 10000
EOF
  )
  mv -f "$CONFIG.new" "$CONFIG"
}

check_config() {
  local out
  if out=$(lottery route --config "$CONFIG" check-user 2>&1); then return 0; fi
  if [ "$REDIS_MODE" = cluster ] && printf '%s' "$out" | grep -q 'cluster'; then
    die "this lottery binary does not accept the Redis Cluster settings ([redis] cluster, cluster_seeds):
  $out
  Use the local Redis instead: LOTTERY_CLUSTER_REDIS=single deploy/local-cluster.sh up"
  fi
  die "the generated configuration $CONFIG is refused: $out"
}

# The second MariaDB server ----------------------------------------------------------------------

db2_user() {
  # As root, run as the mysql user when it can reach the state directory.
  if [ "$(id -u)" -ne 0 ]; then return 0; fi
  if id mysql >/dev/null 2>&1 && runuser -u mysql -- test -x "$DIR" 2>/dev/null; then
    echo mysql
  else
    echo root
  fi
}

write_db2_config() {
  local user
  user=$(db2_user)
  mkdir -p "$DB2_DIR/data" "$DB2_DIR/run" "$DB2_DIR/tmp"
  cat >"$DB2_DIR/my.cnf" <<EOF
# The second MariaDB server of the local cluster (shards 03 and 04).
[mariadbd]
${user:+user = $user}
datadir = $DB2_DIR/data
socket = $DB2_SOCKET
pid-file = $DB2_DIR/run/mariadbd.pid
tmpdir = $DB2_DIR/tmp
bind-address = 127.0.0.1
port = $DB2_PORT
skip-name-resolve
log-error = $DIR/log/db-2.err
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
# Durable: every commit is on disk before it is acknowledged.
innodb_flush_log_at_trx_commit = 1
innodb_doublewrite = 1
sync_binlog = 1
innodb_buffer_pool_size = 256M
innodb_log_file_size = 128M
# Five instances open at most 40 connections here (see lottery.toml); room for more and for
# an operator.
max_connections = 200
EOF
  if [ -n "$user" ] && [ "$user" != root ]; then chown -R "$user" "$DB2_DIR/data" "$DB2_DIR/run" "$DB2_DIR/tmp"; fi
}

start_db2() {
  if running_pid db-2 >/dev/null; then return 0; fi
  port_open "$DB2_PORT" && die "port $DB2_PORT (db-2) is taken by a process this script did not start"
  write_db2_config
  local first=""
  if [ ! -d "$DB2_DIR/data/mysql" ]; then
    first=1
    log "initialising the second MariaDB server's data directory"
    mariadb-install-db --defaults-file="$DB2_DIR/my.cnf" --auth-root-authentication-method=normal \
      --skip-test-db >>"$DIR/log/db-2.log" 2>&1 || die "mariadb-install-db failed: see $DIR/log/db-2.log"
  fi
  log "starting db-2 (MariaDB on 127.0.0.1:$DB2_PORT)"
  spawn db-2 "$DB2_DIR" /usr/sbin/mariadbd --defaults-file="$DB2_DIR/my.cnf"
  wait_started db-2 120 db2_root -e 'select 1'
  if [ -n "$first" ] || ! db2_root -N -e "select 1 from mysql.user where user = 'lottery'" | grep -q 1; then
    local pw
    pw=$(secret db-2-password 24)
    db2_root -e "CREATE USER IF NOT EXISTS 'lottery'@'127.0.0.1' IDENTIFIED BY '$pw';
      GRANT ALL PRIVILEGES ON *.* TO 'lottery'@'127.0.0.1'; FLUSH PRIVILEGES;"
  fi
}

# Redis Cluster --------------------------------------------------------------------------------

start_redis() {
  local name=$1 port dir
  if running_pid "$name" >/dev/null; then return 0; fi
  port=$(port_of "$name")
  port_open "$port" && die "port $port ($name) is taken by a process this script did not start"
  dir="$DIR/redis/$name"
  mkdir -p "$dir"
  cat >"$dir/redis.conf" <<EOF
# $name of the local cluster's Redis Cluster (three masters, no replicas).
bind 127.0.0.1
port $port
dir $dir
daemonize no
logfile ""
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 3000
# The stock store needs every key kept until the platform settles it.
maxmemory-policy noeviction
appendonly yes
appendfsync everysec
save ""
EOF
  log "starting $name (Redis Cluster node on 127.0.0.1:$port)"
  spawn "$name" "$dir" redis-server "$dir/redis.conf"
  wait_started "$name" 30 redis-cli -p "$port" ping
}

cluster_ok() { redis-cli -p "$(port_of redis-1)" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

form_redis_cluster() {
  local known
  known=$(redis-cli -p "$(port_of redis-1)" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
  if [ "$known" = 1 ] && ! cluster_ok; then
    log "forming the Redis Cluster (3 masters)"
    redis-cli --cluster create "127.0.0.1:$(port_of redis-1)" "127.0.0.1:$(port_of redis-2)" \
      "127.0.0.1:$(port_of redis-3)" --cluster-replicas 0 --cluster-yes >>"$DIR/log/redis-cluster.log" 2>&1 ||
      die "redis-cli --cluster create failed: see $DIR/log/redis-cluster.log"
  fi
  wait_for "the Redis Cluster (cluster_state:ok)" 60 cluster_ok
}

# Lottery instances ------------------------------------------------------------------------------

start_lottery() {
  local name=$1 role port
  if running_pid "$name" >/dev/null; then return 0; fi
  port=$(port_of "$name")
  case "$name" in worker-*) role=worker ;; *) role=api ;; esac
  port_open "$port" && die "port $port ($name) is taken by a process this script did not start"
  mkdir -p "$DIR/instances/$name"
  log "starting $name (lottery serve --role $role on 127.0.0.1:$port)"
  local -a clean
  mapfile -t clean < <(clean_env)
  spawn "$name" "$DIR/instances/$name" env "${clean[@]}" "$BIN" serve --config "$CONFIG" --role "$role" --listen "127.0.0.1:$port" \
    --data-dir "$DIR/instances/$name"
}

wait_lottery() {
  local name=$1
  wait_started "$name" 120 ready "$(port_of "$name")"
}

# Balancer and Prometheus ------------------------------------------------------------------------

haproxy_env() {
  local i
  printf '%s\n' "LOTTERY_LB_BIND=127.0.0.1:$LB_PORT" "LOTTERY_LB_STATS_BIND=127.0.0.1:$STATS_PORT" \
    "LOTTERY_LB_SOCKET=$LB_SOCKET"
  for i in $(seq "$API_COUNT"); do printf '%s\n' "LOTTERY_API_$i=127.0.0.1:$(port_of "api-$i")"; done
}

start_haproxy() {
  if running_pid haproxy >/dev/null; then return 0; fi
  port_open "$LB_PORT" && die "port $LB_PORT (haproxy) is taken by a process this script did not start"
  port_open "$STATS_PORT" && die "port $STATS_PORT (haproxy stats) is taken by a process this script did not start"
  mkdir -p "$DIR/haproxy"
  cp -f "$ROOT/deploy/haproxy/haproxy.cfg" "$DIR/haproxy/haproxy.cfg"
  local -a vars
  mapfile -t vars < <(haproxy_env)
  env "${vars[@]}" haproxy -c -q -f "$DIR/haproxy/haproxy.cfg" || die "haproxy refuses $DIR/haproxy/haproxy.cfg"
  log "starting haproxy (balancer on 127.0.0.1:$LB_PORT, stats on http://127.0.0.1:$STATS_PORT/stats)"
  spawn haproxy "$DIR/haproxy" env "${vars[@]}" haproxy -db -f "$DIR/haproxy/haproxy.cfg"
}

# How many API instances HAProxy has UP, from its stats (CSV: proxy, server, ..., status).
servers_up() {
  curl -s --max-time 3 "http://127.0.0.1:$STATS_PORT/stats;csv" 2>/dev/null |
    awk -F, '$1 == "api" && $2 ~ /^api-/ && $18 == "UP" { n++ } END { print n + 0 }'
}

all_servers_up() { [ "$(servers_up)" = "$API_COUNT" ]; }

write_targets() {
  local i
  mkdir -p "$DIR/prometheus/targets"
  {
    echo '['
    for i in $(seq "$API_COUNT"); do
      printf '  {"targets": ["127.0.0.1:%s"], "labels": {"instance": "api-%s", "role": "api"}},\n' "$(port_of "api-$i")" "$i"
    done
    printf '  {"targets": ["127.0.0.1:%s"], "labels": {"instance": "worker-1", "role": "worker"}}\n' "$WORKER_PORT"
    echo ']'
  } >"$DIR/prometheus/targets/lottery-local.json"
  printf '[{"targets": ["127.0.0.1:%s"], "labels": {"instance": "haproxy"}}]\n' "$STATS_PORT" \
    >"$DIR/prometheus/targets/haproxy-local.json"
}

start_prometheus() {
  if running_pid prometheus >/dev/null; then return 0; fi
  port_open "$PROM_PORT" && die "port $PROM_PORT (prometheus) is taken by a process this script did not start"
  mkdir -p "$DIR/prometheus/data"
  cp -f "$ROOT/deploy/prometheus/prometheus.yml" "$DIR/prometheus/prometheus.yml"
  write_targets
  log "starting prometheus (http://127.0.0.1:$PROM_PORT)"
  spawn prometheus "$DIR/prometheus" prometheus --config.file="$DIR/prometheus/prometheus.yml" \
    --storage.tsdb.path="$DIR/prometheus/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --storage.tsdb.retention.time=7d
}

targets_up() {
  local body
  body=$(curl -s --max-time 3 "http://127.0.0.1:$PROM_PORT/api/v1/targets?state=active") || return 1
  [ "$(printf '%s' "$body" | grep -o '"health":"up"' | wc -l)" -ge $((API_COUNT + 2)) ]
}

# Shared services ------------------------------------------------------------------------------

check_shared() {
  mysql1 -e 'select 1' >/dev/null 2>&1 ||
    die "cannot reach the first MariaDB server at $MYSQL1_URL (scripts/services.sh starts the local one)"
  local amqp_hostport=${AMQP_URL#*://}
  amqp_hostport=${amqp_hostport#*@}
  amqp_hostport=${amqp_hostport%%/*}
  port_open "${amqp_hostport##*:}" ||
    die "cannot reach RabbitMQ at $amqp_hostport (scripts/services.sh starts the local one)"
  if [ "$REDIS_MODE" = single ]; then
    redis-cli -u "$SINGLE_REDIS_URL" ping >/dev/null 2>&1 ||
      die "cannot reach the local Redis at $SINGLE_REDIS_URL (scripts/services.sh starts it)"
  fi
}

# Commands -------------------------------------------------------------------------------------

start_one() {
  case "$1" in
    db-2) start_db2 ;;
    redis-*)
      start_redis "$1"
      ;;
    api-* | worker-1)
      start_lottery "$1"
      wait_lottery "$1"
      if [ "${1%-*}" = api ] && running_pid haproxy >/dev/null; then
        wait_for "haproxy (all $API_COUNT API instances UP in its stats)" 30 all_servers_up
      fi
      ;;
    haproxy)
      start_haproxy
      wait_started haproxy 30 port_open "$LB_PORT"
      ;;
    prometheus)
      start_prometheus
      wait_started prometheus 60 curl -sf --max-time 3 "http://127.0.0.1:$PROM_PORT/-/ready"
      ;;
  esac
}

cmd_up() {
  if [ -n "${REQUESTED_REDIS_MODE:-}" ]; then
    any_running && die "the cluster runs with REDIS_MODE=$REDIS_MODE: run 'down' before switching to $REQUESTED_REDIS_MODE"
    REDIS_MODE=$REQUESTED_REDIS_MODE
    derive
  fi
  check_settings
  ensure_tools
  save_settings
  ensure_binary
  write_config
  check_config
  check_shared

  if [ "$REDIS_MODE" = cluster ]; then
    for name in redis-1 redis-2 redis-3; do start_redis "$name"; done
    form_redis_cluster
  fi
  if [ "$DB_LAYOUT" = two ]; then start_db2; fi

  log "creating the databases and applying the schema (lottery migrate --create-databases)"
  lottery migrate --config "$CONFIG" --create-databases >>"$DIR/log/migrate.log" 2>&1 ||
    die "lottery migrate failed: see $DIR/log/migrate.log"

  local i
  start_lottery worker-1
  for i in $(seq "$API_COUNT"); do start_lottery "api-$i"; done
  wait_lottery worker-1
  for i in $(seq "$API_COUNT"); do wait_lottery "api-$i"; done

  start_haproxy
  start_prometheus
  wait_for "haproxy (all $API_COUNT API instances UP in its stats)" 60 all_servers_up
  wait_for "the balancer (/readyz through haproxy)" 30 ready "$LB_PORT"
  wait_started prometheus 60 curl -sf --max-time 3 "http://127.0.0.1:$PROM_PORT/-/ready"
  wait_for "prometheus (every target scraped)" 60 targets_up

  log "ready: balancer http://127.0.0.1:$LB_PORT, stats http://127.0.0.1:$STATS_PORT/stats, prometheus http://127.0.0.1:$PROM_PORT"
  cmd_env
}

any_running() {
  local name
  for name in "${PROCESSES[@]}"; do
    if running_pid "$name" >/dev/null; then return 0; fi
  done
  return 1
}

cmd_env() {
  echo "LOTTERY_URL=http://127.0.0.1:$LB_PORT"
  echo "LOTTERY_CONFIG=$CONFIG"
}

describe() {
  local name=$1 port=$2 pid state
  if pid=$(running_pid "$name"); then
    case "$name" in
      api-* | worker-*)
        if ready "$port"; then state=ready; else state="running, not ready (/readyz $(http_code "http://127.0.0.1:$port/readyz"))"; fi
        ;;
      haproxy)
        if port_open "$port"; then state="up ($(servers_up)/$API_COUNT API instances UP)"; else state="running, port closed"; fi
        ;;
      *)
        if port_open "$port"; then state=up; else state="running, port closed"; fi
        ;;
    esac
  else
    pid=-
    state=down
  fi
  printf '%-12s %-8s %-6s %s\n' "$name" "$pid" "$port" "$state"
  [ "$state" = ready ] || [ "${state%% *}" = up ]
}

cmd_status() {
  [ -f "$SETTINGS" ] || {
    echo "no local cluster in $DIR"
    return 3
  }
  local name all=0
  printf '%-12s %-8s %-6s %s\n' NAME PID PORT STATE
  for name in "${PROCESSES[@]}"; do describe "$name" "$(port_of "$name")" || all=3; done
  echo "shared services used (not started by this script):"
  if mysql1 -e 'select 1' >/dev/null 2>&1; then echo "  db-1      $MYSQL1_URL: up"; else echo "  db-1      $MYSQL1_URL: unreachable" && all=3; fi
  local amqp=${AMQP_URL#*@}
  amqp=${amqp%%/*}
  if port_open "${amqp##*:}"; then echo "  rabbitmq  $amqp: up"; else echo "  rabbitmq  $amqp: unreachable" && all=3; fi
  if [ "$REDIS_MODE" = single ]; then
    if redis-cli -u "$SINGLE_REDIS_URL" ping >/dev/null 2>&1; then echo "  redis     $SINGLE_REDIS_URL: up"; else echo "  redis     $SINGLE_REDIS_URL: unreachable" && all=3; fi
  elif running_pid redis-1 >/dev/null; then
    redis-cli -p "$(port_of redis-1)" cluster info 2>/dev/null | grep '^cluster_state' | sed 's/^/redis cluster: /'
  fi
  return "$all"
}

cmd_down() {
  local purge=""
  [ "${1:-}" = --purge ] && purge=1
  [ -f "$SETTINGS" ] || {
    log "no local cluster in $DIR"
    return 0
  }
  stop haproxy prometheus
  stop $(seq -f 'api-%g' "$API_COUNT")
  stop worker-1
  stop redis-1 redis-2 redis-3
  if [ "$DB_LAYOUT" = two ]; then stop db-2; fi
  if any_running; then die "some processes are still running: see 'status'"; fi
  log "stopped; data kept in $DIR"
  [ -n "$purge" ] || return 0
  purge_shared
  rm -rf -- "${DIR:?}"
  log "purged $DIR"
}

# What the deployment left on the shared servers: its databases on the first MariaDB server,
# its keys in the local Redis (single mode; only keys under its prefix) and its queues.
purge_shared() {
  local db
  if mysql1 -e 'select 1' >/dev/null 2>&1; then
    local dbs=("$NAME" "${NAME}_01" "${NAME}_02")
    if [ "$DB_LAYOUT" = one ]; then dbs+=("${NAME}_03" "${NAME}_04"); fi
    for db in "${dbs[@]}"; do
      mysql1 -e "DROP DATABASE IF EXISTS \`$db\`" && log "dropped database $db on $MYSQL1_URL"
    done
  else
    log "warning: $MYSQL1_URL unreachable: the databases $NAME and ${NAME}_0N stay"
  fi
  if [ "$REDIS_MODE" = single ] && redis-cli -u "$SINGLE_REDIS_URL" ping >/dev/null 2>&1; then
    redis-cli -u "$SINGLE_REDIS_URL" --scan --pattern "$NAME:*" |
      xargs -r -n 500 redis-cli -u "$SINGLE_REDIS_URL" del >/dev/null
    log "deleted the keys under $NAME: in $SINGLE_REDIS_URL"
  fi
  if command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl -q list_queues name >/dev/null 2>&1; then
    local q
    for q in $(rabbitmqctl -q list_queues name | grep "^$NAME\." || true); do
      rabbitmqctl -q delete_queue "$q" >/dev/null && log "deleted queue $q"
    done
    log "the exchanges $NAME.events and $NAME.events.dlx stay on the broker (empty; rabbitmqctl cannot delete exchanges)"
  else
    log "rabbitmqctl unavailable: the queues $NAME.* stay on the broker"
  fi
}

cmd_restart() {
  local name=${1:-}
  known_process "$name" || die "restart what? one of: ${PROCESSES[*]}"
  [ -f "$SETTINGS" ] || die "no local cluster in $DIR: run 'up' first"
  check_settings
  stop "$name"
  start_one "$name"
  log "$name is up"
  describe "$name" "$(port_of "$name")" || true
}

cmd_stop() {
  local name=${1:-}
  known_process "$name" || die "stop what? one of: ${PROCESSES[*]}"
  stop "$name"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  [ $# -eq 0 ] || shift
  case "$cmd" in
    up | down | status | env | restart | stop) ;;
    -h | --help | help)
      usage
      return 0
      ;;
    *)
      usage >&2
      return 2
      ;;
  esac
  if [ "$cmd" != up ] && [ ! -f "$SETTINGS" ]; then
    case "$cmd" in
      status)
        echo "no local cluster in $DIR"
        return 3
        ;;
      down)
        log "no local cluster in $DIR"
        return 0
        ;;
      *) die "no local cluster in $DIR: run 'up' first" ;;
    esac
  fi
  mkdir -p "$DIR/log" "$DIR/run"
  load_settings
  derive
  # One command at a time per state directory; the lock's descriptor is closed for every
  # process started (see spawn), so none of them holds it.
  exec 9>"$DIR/.lock"
  if ! flock -w 600 9; then die "another local-cluster.sh holds $DIR/.lock"; fi
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    env)
      [ -f "$SETTINGS" ] || die "no local cluster in $DIR: run 'up' first"
      cmd_env
      ;;
    restart) cmd_restart "$@" ;;
    stop) cmd_stop "$@" ;;
  esac
}

main "$@"
