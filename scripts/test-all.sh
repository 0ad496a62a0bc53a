#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test including those that need the local
# MariaDB, Redis and RabbitMQ (started, or installed, by scripts/services.sh), and the
# documentation examples.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests (including those that need services)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --run-ignored all --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast -- --include-ignored
fi

echo "== documentation examples"
cargo test --workspace --locked --doc

echo "== API fuzzing against /openapi.json (schemathesis)"
./scripts/schemathesis.sh
