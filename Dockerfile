# syntax=docker/dockerfile:1
# swiftdup as a container: one static binary in an otherwise empty image.
#
#   docker build -t swiftdup .       (podman build works the same)
#
# `make image` builds the same runtime stage offline, from a binary built here
# (tests/image/Containerfile), and `make test` runs it with podman (tests/image/run.sh).
#
# The image holds nothing but /swiftdup: no shell, no libc, no /tmp, no /etc. Whoever runs it
# provides a writable /tmp (volumes are spooled there before upload) and /cache (the archive
# dir): an emptyDir each in Kubernetes (k8s/), `--tmpfs` with `docker run`
# (docs/kubernetes-and-docker.md).

# The build stage's base: Debian bookworm with Rust (rustup, cargo) preinstalled, at the
# release swiftdup's tests run with. A tag can be moved; for a build that cannot change under
# you, pin it by digest as well (`docker buildx imagetools inspect rust:1.95.0-bookworm`
# prints it):  --build-arg RUST_IMAGE=rust:1.95.0-bookworm@sha256:<digest>
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-bookworm
# The image's version label (`make image` passes Cargo.toml's).
ARG VERSION=0.1.0

# ---- stage 1: build a static musl binary ----------------------------------------------
FROM ${RUST_IMAGE} AS build

# musl-gcc: `ring` (rustls' crypto) compiles C and assembly, and for a musl target the cc
# crate looks for musl-gcc. Lists removed so the layer stays small.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*

# The musl standard library: a musl binary links statically and runs on `scratch`.
RUN rustup target add x86_64-unknown-linux-musl

WORKDIR /src

# The whole source tree (.dockerignore keeps target/ and .git/ out of the context).
COPY . .

# --locked: build exactly what Cargo.lock says, fail instead of resolving anew.
# The cache mounts keep the crates.io downloads and the target dir between builds (BuildKit);
# the binary is copied out in the same step because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl \
    && mkdir -p /out \
    && cp target/x86_64-unknown-linux-musl/release/swiftdup /out/swiftdup

# ---- stage 2: the runtime image -------------------------------------------------------
# Empty base: nothing to patch, nothing to exploit but swiftdup itself. No CA bundle is
# needed: the binary carries Mozilla's roots (webpki-root-certs); a private CA is added
# with SWIFTDUP_CA_FILE. No /etc/passwd either: owners are recorded by number only.
FROM scratch
ARG VERSION
LABEL org.opencontainers.image.title="swiftdup" \
      org.opencontainers.image.description="Duplicity-compatible backups to OpenStack Swift with container keys, as a batch job" \
      org.opencontainers.image.licenses="GPL-2.0-or-later" \
      org.opencontainers.image.version="${VERSION}"

# The only file in the image.
COPY --from=build /out/swiftdup /swiftdup

# A numeric non-root user (the "nonroot" id of distroless images): numeric so that
# Kubernetes' runAsNonRoot can check it without an /etc/passwd to look a name up in.
USER 65532:65532

# Where volumes are spooled before upload (up to SWIFTDUP_CONCURRENCY + 2 of them: 4 x 200 MiB
# by default) and where
# the cache of manifests and signatures lives. Neither directory exists in the image:
# mount an emptyDir (Kubernetes) or a tmpfs (docker run) on each.
ENV TMPDIR=/tmp SWIFTDUP_ARCHIVE_DIR=/cache

# Exec form: swiftdup is PID 1 and gets SIGTERM directly (it then stops, writes its
# summary and exits 143). With no arguments it runs the job SWIFTDUP_COMMAND describes.
ENTRYPOINT ["/swiftdup"]
