#!/usr/bin/env bash
# Makes sure the local MariaDB, Redis and RabbitMQ that the adapter and end-to-end tests use
# are installed and running, and that the browser test has Debian's chromium and the npm
# packages of web/. Installs what is absent with apt-get (Debian/Ubuntu, as root or with
# sudo) and `npm ci`. Safe to run again: running services are left alone.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 seconds=${3:-60}
  for _ in $(seq "$seconds"); do
    if port_open "$port"; then return 0; fi
    sleep 1
  done
  log "$name did not open port $port within ${seconds}s"
  return 1
}

apt_updated=""
ensure_package() {
  local binary=$1 package=$2
  if command -v "$binary" >/dev/null 2>&1 || [ -x "$binary" ]; then return 0; fi
  log "installing $package"
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" >/dev/null
}

# MariaDB ------------------------------------------------------------------------------------
if ! port_open 3306; then
  ensure_package /usr/sbin/mariadbd mariadb-server
  log "starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port MariaDB 3306 90
fi
# The tests connect as root over TCP with an empty password (LOTTERY_TEST_MYSQL_URL overrides).
if [ -z "${LOTTERY_TEST_MYSQL_URL:-}" ] && command -v mariadb >/dev/null 2>&1; then
  if ! mariadb -h127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
    log "allowing root@127.0.0.1 without a password for the local test server"
    $SUDO mariadb -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
  fi
  # Tests run side by side, each with instances of their own (each may open 48 connections):
  # more than the 151 a server allows by default. The limit itself is tested on a private
  # server (crates/server/tests/stalls.rs).
  if [ "$(mariadb -h127.0.0.1 -uroot -N -e 'select @@max_connections' 2>/dev/null || echo 0)" -lt 600 ]; then
    log "raising the local test server's max_connections to 600"
    mariadb -h127.0.0.1 -uroot -e 'SET GLOBAL max_connections = 600' || true
  fi
fi

# Redis --------------------------------------------------------------------------------------
# Fault tests also start private redis-server instances of their own, and the cluster tests
# private Redis Clusters (redis-server --cluster-enabled, joined with redis-cli --cluster).
ensure_package redis-server redis-server
ensure_package redis-cli redis-tools
if ! port_open 6379; then
  log "starting Redis"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port Redis 6379 30
fi

# RabbitMQ -----------------------------------------------------------------------------------
if ! port_open 5672; then
  ensure_package rabbitmq-server rabbitmq-server
  log "starting RabbitMQ"
  $SUDO rabbitmq-server -detached
  wait_port RabbitMQ 5672 120
fi

# Browser test -------------------------------------------------------------------------------
# crates/server/tests/browser.rs drives Debian's chromium (never a browser downloaded by a
# test tool) with playwright-core and axe-core from web/node_modules.
ensure_package /usr/bin/chromium chromium
if ! command -v npm >/dev/null 2>&1; then
  ensure_package node nodejs
  ensure_package npm npm
fi
web="$(cd "$(dirname "$0")/.." && pwd)/web"
if [ ! -d "$web/node_modules/playwright-core" ] ||
  [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  log "installing the npm packages of web/ (npm ci)"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi

# Deployment files -----------------------------------------------------------------------------
# crates/server/tests/deploy_files.rs validates deploy/docker-compose.yml with docker-compose
# (no engine needed; without Recommends, so no docker.io daemon comes along).
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  log "installing docker-compose"
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

log "MariaDB, Redis and RabbitMQ are up; chromium and web/node_modules are in place"
