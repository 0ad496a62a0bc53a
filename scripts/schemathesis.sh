#!/usr/bin/env bash
# Property-based API testing: schemathesis (from PyPI) generates requests from the server's
# own /openapi.json and fails on any 5xx or any response that breaks the documented schema.
# Runs against the embedded server, once with an admin token and once with a user token.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi

cargo build --quiet --locked --bin lottery
bin=target/debug/lottery
data=$(mktemp -d)
log="$data/server.log"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" > "$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

url=""
for _ in $(seq 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -n 1 || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { echo "the server did not start:"; cat "$log"; exit 1; }

"$bin" seed-demo --data-dir "$data" > /dev/null 2>&1 || true
admin=$("$bin" token --data-dir "$data" --admin)
user=$("$bin" token --data-dir "$data" --user schemathesis)

for token in "$admin" "$user"; do
  "$venv/bin/st" run "$url/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples 40 --workers 2 --seed 20261123 \
    --warnings off
done
