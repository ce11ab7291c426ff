# mercure-hub: a drop-in for the dunglas/mercure image (same environment variables, port 80,
# history under /data, health check on the admin address 127.0.0.1:2019).
#
#   docker build -t mercure-hub .
#   docker run -e MERCURE_PUBLISHER_JWT_KEY='!ChangeThisMercureHubJWTSecretKey!' \
#              -e MERCURE_SUBSCRIBER_JWT_KEY='!ChangeThisMercureHubJWTSecretKey!' \
#              -p 80:80 mercure-hub
#
# TLS: mount a certificate and key, set MERCURE_TLS_CERT_FILE, MERCURE_TLS_KEY_FILE and
# SERVER_NAME=':443' (TLS applies to every public listener: one hub serves either cleartext or
# TLS). Caddy's automatic certificates are not provided.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Manifests first, so a change to the sources does not refetch every dependency.
COPY Cargo.toml Cargo.lock ./
COPY hub/Cargo.toml hub/Cargo.toml
COPY loadgen/Cargo.toml loadgen/Cargo.toml
COPY benches/Cargo.toml benches/Cargo.toml
RUN cargo fetch --locked
COPY . .
RUN cargo build --release --locked -p mercure-hub \
 && install -D -m 0755 target/release/mercure-hub /out/mercure-hub

FROM debian:bookworm-slim
# A fixed non-root user (uid 1000, as in the Go docs' rootless compose). Docker 20.10+ lets an
# unprivileged process bind ports below 1024 inside a container
# (net.ipv4.ip_unprivileged_port_start=0), so :80 needs no capability.
# ca-certificates: https:// JWK Set URLs (publisher_jwks_url, …) are checked against them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 1000 --user-group --home-dir /data --shell /usr/sbin/nologin mercure \
 && mkdir -p /data /config \
 && chown mercure:mercure /data /config
COPY --from=build /out/mercure-hub /usr/local/bin/mercure-hub

ENV SERVER_NAME=":80" \
    MERCURE_PUBLISHER_JWT_ALG="HS256" \
    MERCURE_SUBSCRIBER_JWT_ALG="HS256" \
    MERCURE_EXTRA_DIRECTIVES="" \
    MERCURE_LOG_FORMAT="json"
# MERCURE_PUBLISHER_JWT_KEY / MERCURE_SUBSCRIBER_JWT_KEY: set at run time (no key: development
# mode, which logs a generated key and token).

USER mercure
# The default history file, mercure.redb, lands here.
WORKDIR /data
VOLUME /data
EXPOSE 80 443

# Readiness on the admin listener (127.0.0.1:2019 inside the container), with bash's /dev/tcp:
# the slim image has neither wget nor curl. The hub answers HTTP/1.0 and closes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=5 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2019 && printf 'GET /mercure/health/ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

STOPSIGNAL SIGTERM
CMD ["mercure-hub"]
