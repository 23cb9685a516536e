# syntax=docker/dockerfile:1
# The gitsync-agent image (with the gitsync CLI beside it):
#   docker build -t ghcr.io/gitsync-dev/gitsync-agent:0.1.0 .

# ---- build ------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
# libgit2's HTTPS and SSH transports (git2's `https` and `ssh` features) link OpenSSL and
# libssh2 from the system.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev libssh2-1-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Registry, git checkouts and target/ live in BuildKit cache mounts, so a rebuild after a
# source change recompiles only the workspace crates. The binaries are copied out of the
# cached target/ (a cache mount is not part of the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gitsync-agent -p gitsync-cli \
 && mkdir -p /out/bin \
 && cp target/release/gitsync-agent target/release/gitsync /out/bin/ \
 && strip --strip-debug /out/bin/gitsync-agent /out/bin/gitsync
# The release profile keeps line tables for the benchmarks' and developers' backtraces
# (68 MB for the agent); the image drops them and keeps the symbols, so a panic still
# names its functions (the agent is then 16.6 MB, the CLI 17.3 MB).
# The runtime image below is distroless cc: glibc, libgcc, libssl3, CA certificates and
# the nonroot user. Of the other shared libraries the binaries link, copy the ones known
# to be safe to take from the same Debian release (zlib; libssh2 when it is not built in)
# to where the dynamic linker looks, and fail the build on any library not accounted for.
RUN set -eu; \
    multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"; \
    mkdir -p "/out/usr/lib/${multiarch}"; \
    for lib in $(ldd /out/bin/gitsync-agent /out/bin/gitsync | awk '/=>/ {print $3}' | sort -u); do \
      case "$(basename "$lib")" in \
        libc.so.*|libm.so.*|libgcc_s.so.*|libdl.so.*|librt.so.*|libpthread.so.*) ;; \
        libssl.so.3|libcrypto.so.3) ;; \
        libssh2.so.*|libz.so.*) cp -L "$lib" "/out/usr/lib/${multiarch}/" ;; \
        *) echo "not in the runtime image: $lib" >&2; exit 1 ;; \
      esac; \
    done

# ---- runtime ----------------------------------------------------------------------
# distroless rather than debian:bookworm-slim: no shell, no package manager, a fraction of
# the size and of the CVE surface, and the nonroot user (65532) built in. The libraries it
# lacks come from the builder, which is the same Debian release (bookworm), so they match
# its glibc and libssl3.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/usr/ /usr/
COPY --from=builder /out/bin/gitsync-agent /out/bin/gitsync /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/gitsync-agent"]
