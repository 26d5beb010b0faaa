# nodesage node image.
#
#   docker build -t nodesage/nodesage:0.1.0 .                                  # CPU (default)
#   docker build --build-arg VARIANT=cuda   -t nodesage/nodesage:0.1.0-cuda .   # NVIDIA, CUDA 13 (driver >= 580)
#   docker build --build-arg VARIANT=vulkan -t nodesage/nodesage:0.1.0-vulkan .
#   CUDA 12 drivers (>= 525): add --build-arg CUDA_IMAGE=nvidia/cuda:12.9.1-runtime-ubuntu24.04
#                             --build-arg CUDA12_FALLBACK=1 (keeps the 358 MB CUDA 12 library).
#
# No model weights are in the image (see models/ and daemonset/overlays/airgap),
# and nothing is downloaded or compiled at install time: node-llama-cpp's
# postinstall (binary download / source build) never runs, its prebuilt
# binaries come from the @node-llama-cpp/* packages, and better-sqlite3 loads
# its N-API prebuild.

ARG NODE_IMAGE=node:24-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
ARG VARIANT=cpu

# ---------------------------------------------------------------- build stage
FROM ${NODE_IMAGE} AS build
ARG VARIANT
ARG CUDA12_FALLBACK=0
ARG TARGETARCH
ENV CI=true \
    NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
    npm_config_update_notifier=false
WORKDIR /src

COPY package.json package-lock.json ./
# npm ci refuses a lock file that lacks entries for optional platform packages
# the registry it was written against did not serve (mac/win builds of
# node-llama-cpp); npm install then installs the same locked versions.
RUN npm ci --ignore-scripts --no-audit --no-fund \
    || { echo "npm ci refused the lock file; installing its versions with npm install" >&2; \
         npm install --ignore-scripts --no-audit --no-fund --no-save; }

COPY . .
RUN npm run build \
    && test -f dist/daemon/cli.js \
    # Optional folders, so that the runtime stage can copy them unconditionally.
    && mkdir -p daemon/rules models

RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# Keep only the llama.cpp binaries this variant loads (all six are ~670 MB).
# The CPU package stays in the GPU variants: node-llama-cpp falls back to it on
# nodes where the GPU cannot be used.
RUN set -eu; \
    case "${TARGETARCH:-amd64}" in \
      amd64) arch=x64 ;; \
      arm64) arch=arm64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    case "$VARIANT" in \
      cpu) keep="linux-$arch" ;; \
      cuda) keep="linux-$arch linux-$arch-cuda" ;; \
      vulkan) keep="linux-$arch linux-$arch-vulkan" ;; \
      *) echo "VARIANT must be cpu, cuda or vulkan, not '$VARIANT'" >&2; exit 1 ;; \
    esac; \
    if [ "$VARIANT" = cuda ] && [ "$CUDA12_FALLBACK" = 1 ]; then keep="$keep linux-$arch-cuda-ext"; fi; \
    for pkg in $keep; do \
      test -f "node_modules/@node-llama-cpp/$pkg/package.json" \
        || { echo "@node-llama-cpp/$pkg is not installed: VARIANT=$VARIANT has no prebuilt binary for $arch" >&2; exit 1; }; \
    done; \
    for dir in node_modules/@node-llama-cpp/*; do \
      case " $keep " in *" ${dir##*/} "*) ;; *) rm -rf "$dir" ;; esac; \
    done; \
    # llama.cpp sources, only used to compile from source (never in this image).
    rm -f node_modules/node-llama-cpp/llama/gitRelease.bundle; \
    # Optional peer of node-llama-cpp, used by its `inspect gpu` CLI only.
    rm -rf node_modules/typescript node_modules/@types; \
    # better-sqlite3: the one N-API prebuild this platform loads.
    rm -rf node_modules/better-sqlite3/deps node_modules/better-sqlite3/src; \
    find node_modules/better-sqlite3/prebuilds -type f ! -name "linux-$arch.node" -delete; \
    find node_modules -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
      -o -name '*.md' -o -name '*.markdown' \) -delete

# ------------------------------------------------------------ runtime bases
FROM ${DEBIAN_IMAGE} AS base-cpu

FROM ${DEBIAN_IMAGE} AS base-vulkan
# The Vulkan loader and Mesa's drivers (AMD/Intel); NVIDIA's ICD is injected
# by the NVIDIA container toolkit when NVIDIA_DRIVER_CAPABILITIES has graphics.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers \
    && rm -rf /var/lib/apt/lists/*

# libcudart and libcublas come with the CUDA runtime image; libcuda (the
# driver) is injected by the NVIDIA container runtime.
FROM ${CUDA_IMAGE} AS base-cuda

# ------------------------------------------------------------- runtime stage
FROM base-${VARIANT} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="nodesage" \
      org.opencontainers.image.description="On-node AI agent for Kubernetes: deterministic detectors plus a local quantized LLM, nothing leaves the node" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# journalctl reads the host's journal files (--directory under /host); the
# systemd package without its recommends is the only Debian/Ubuntu package that
# ships it, and nothing of it runs as a service here. tini reaps journalctl
# children and forwards SIGTERM as PID 1.
RUN apt-get update \
    && apt-get install -y --no-install-recommends systemd tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && journalctl --version >/dev/null \
    # For `docker run` uses (analyze --bundle, capture): the DaemonSet runs
    # the daemon as uid 0 without capabilities to read root-owned host logs.
    && groupadd --system --gid 10001 nodesage \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/nodesage --no-create-home --shell /usr/sbin/nologin nodesage \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/nodesage \
    && printf '#!/bin/sh\nexec node /app/dist/daemon/cli.js "$@"\n' > /usr/local/bin/nodesage \
    && chmod 0755 /usr/local/bin/nodesage

COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/daemon/rules ./daemon/rules
COPY --from=build /src/models ./models

ENV NODE_ENV=production \
    NODESAGE_DATA_DIR=/var/lib/nodesage \
    NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
    # node-llama-cpp and Node may look for a home folder; the root filesystem
    # is read-only in the DaemonSet and /tmp is its writable emptyDir.
    HOME=/tmp \
    # V8's young generation defaults to 16 MiB semi-spaces; 2 MiB keeps ~14 MiB
    # off an idle agent's RSS for a few more (cheap) scavenges under load.
    NODE_OPTIONS=--max-semi-space-size=2 \
    # glibc gives each thread that mallocs its own arena and keeps freed pages
    # in it: after a log flood the libuv and V8 worker threads held ~100 MiB.
    # Two arenas, and free memory above 128 KiB handed back to the kernel.
    MALLOC_ARENA_MAX=2 \
    MALLOC_TRIM_THRESHOLD_=131072

# Fails the build, not the node, when a native module cannot load here. The
# llama check runs from a file: node-llama-cpp tests its binary in a fork that
# inherits `node -e` arguments.
RUN node -e "const D = require('better-sqlite3'); new D(':memory:').prepare('select 1').get()" \
    && printf '%s\n' \
         "import { getLlama } from 'node-llama-cpp';" \
         "const llama = await getLlama({ gpu: false, build: 'never' });" \
         "await llama.dispose();" > /app/.smoke.mjs \
    && node /app/.smoke.mjs \
    && rm /app/.smoke.mjs \
    && node dist/daemon/cli.js --help >/dev/null

USER 10001:10001
EXPOSE 8877
# V8 flags NODE_OPTIONS does not accept (test/bench/footprint.ts reads them from
# here): --optimize-for-size shrinks the heap's growth steps and caches;
# --max-opt=1 stops at the Sparkplug baseline compiler, leaving the optimising
# compilers' code and their pages of the node binary out of the agent's RSS;
# --bytecode-old-age=1 drops the bytecode of functions that did not run since
# the last full GC (start-up, CLI and rarely used paths: ~1 MiB), recompiled
# if they run again. Measured (test/bench/RESULTS.md): idle host mode ~15 MiB
# less than without them; --max-opt=2 (Maglev) would keep ~4 MiB of that back
# for ~25% less CPU under a steady 2,000 log lines/s (79 instead of 102
# millicores in one run).
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--optimize-for-size", "--max-opt=1", "--bytecode-old-age=1", "/app/dist/daemon/cli.js"]
CMD ["daemon"]
