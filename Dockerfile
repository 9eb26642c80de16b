# syntax=docker/dockerfile:1
#
# The ft42 binary in a small Debian image, running as an unprivileged user.
#   docker build -t ft42 .
#   docker run --rm ft42 --help
# compose.yaml runs it as a daemon next to PostgreSQL 15. Not exercised by CI (see README).

# --- build ---------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
# SQLite and libpq are compiled from bundled sources (a C compiler is in the image); cmake and
# clang cover aws-lc-rs (rustls' crypto) on architectures without prebuilt bindings.
# pg-tls: libpq with TLS to PostgreSQL, linked to the system OpenSSL (libssl-dev, pkg-config).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ft-cli --features pg-tls --bin ft42 \
 && install -D -m 0755 target/release/ft42 /out/ft42

# --- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: the API is reached over TLS with the OS trust store (and sslrootcert=system
# uses it for PostgreSQL). libssl3: the OpenSSL that pg-tls linked libpq to.
# postgresql-client-15: pg_dump/pg_restore for `ft42 backup` of a PostgreSQL 15 database
# (they must be of the server's major version or newer).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ft42 \
 && useradd --system --uid 10001 --gid ft42 --home-dir /var/lib/ft42 --shell /usr/sbin/nologin ft42 \
 && install -d -o ft42 -g ft42 -m 0750 /var/lib/ft42 \
 && install -d -o ft42 -g ft42 -m 0755 /var/lib/ft42/metrics \
 && install -d -o ft42 -g ft42 -m 0750 /var/lib/ft42/logs /var/lib/ft42/exports /var/lib/ft42/backups
COPY --from=build /out/ft42 /usr/local/bin/ft42

# Relative settings (logs, exports, backups, sqlite://ft42.db) land in the data volume.
WORKDIR /var/lib/ft42
VOLUME ["/var/lib/ft42"]
USER ft42:ft42
# SIGTERM makes ft42 finish the page in flight, commit and exit 0.
STOPSIGNAL SIGTERM
# The status page and /metrics when FT42_LISTEN=0.0.0.0:4242 is set (compose.yaml does).
EXPOSE 4242
ENTRYPOINT ["ft42"]
CMD ["daemon"]
