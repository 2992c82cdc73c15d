# syntax=docker/dockerfile:1
#
# signet container image: a glibc build of the `signet` binary on distroless
# (CA roots, no shell, non-root user 65532).
#
#   docker build -t signet .
#   docker run --rm -p 8080:8080 -p 9090:9090 -e AWS_REGION=us-east-1 \
#     -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_SESSION_TOKEN signet
#
# Without a config file signet runs its embedded default (host-based routing
# to AWS endpoints). Mount a file and point SIGNET_CONFIG (or --config) at it:
#   -v $PWD/signet.toml:/etc/signet/signet.toml:ro -e SIGNET_CONFIG=/etc/signet/signet.toml

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary
# is copied out of the cached target dir, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin signet \
    && install -D -m 0755 target/release/signet /out/signet

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/signet /usr/local/bin/signet
# Inside a container signet must listen on every interface; these override the
# loopback defaults of the config file (environment beats file). A Kubernetes
# sidecar sets SIGNET_LISTEN back to 127.0.0.1:8080 so only its pod reaches it.
ENV SIGNET_LISTEN=0.0.0.0:8080 \
    SIGNET_ADMIN__LISTEN=0.0.0.0:9090
# 8080: the signing proxy. 9090: admin (/healthz, /readyz, /metrics).
EXPOSE 8080 9090
# Numeric, so Kubernetes runAsNonRoot can verify it (distroless "nonroot").
USER 65532:65532
# `signet health` probes /healthz on the admin address from SIGNET_ADMIN__LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/signet", "health"]
# SIGTERM starts the graceful drain (default 20 s); stop with `docker stop -t 30`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/signet"]
CMD ["serve"]
