# The `lottery` binary in a small image: the same `cargo build --release -p lottery-server`
# the README runs, in a Rust builder stage, copied into Debian slim to run as a non-root user.
#
#   docker build -t lottery-server .
#   docker run --rm -p 8080:8080 lottery-server                    # embedded mode
#   docker run --rm -v $PWD/deploy/cluster.toml:/etc/lottery/lottery.toml:ro \
#     -e LOTTERY_CONFIG=/etc/lottery/lottery.toml lottery-server serve --role api
#
# deploy/docker-compose.yml runs a whole cluster from it (see docs/deployment.md).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# The console and play page are committed, built, under crates/server/assets/ and embedded by
# the build: no Node.js is needed here.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY migrations migrations
# Doc comments include some of docs/ (e.g. docs/extending-awards.md).
COPY docs docs
RUN cargo build --release -p lottery-server --locked \
    && install -m 0755 target/release/lottery /usr/local/bin/lottery

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/lottery --create-home \
       --shell /usr/sbin/nologin lottery
COPY --from=builder /usr/local/bin/lottery /usr/local/bin/lottery
USER lottery
WORKDIR /var/lib/lottery
# Embedded mode keeps its SQLite files and token secret under the data directory; cluster
# mode reads LOTTERY_CONFIG (or --config) and every LOTTERY_<KEY> override.
ENV LOTTERY_LISTEN=0.0.0.0:8080 \
    LOTTERY_DATA_DIR=/var/lib/lottery/data
EXPOSE 8080
# Ready means able to do this instance's role now (databases, stock store, worker id lease;
# the broker too for workers): docs/operations.md, Endpoints.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${LOTTERY_LISTEN##*:}/readyz" || exit 1
# SIGTERM stops the process cleanly within 20 s (docs/operations.md, Shutdown).
STOPSIGNAL SIGTERM
ENTRYPOINT ["lottery"]
CMD ["serve"]
