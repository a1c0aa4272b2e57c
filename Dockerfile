# syntax=docker/dockerfile:1
# The gateway as two bundled JavaScript files on Deno's official image (see README, "Shipping").
#   docker build -t star-cloud-gateway .        (or: docker compose up --build)
# Nothing here was built on the machine it was written on (no Docker engine there); the same
# bundles are built and started from an empty folder by tests/bundle_test.ts.

# --- stage 1: resolve the npm packages and bundle main.ts + launch.ts ---------------------------
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
# The dependency layer is rebuilt only when deno.json or deno.lock change.
COPY deno.json deno.lock ./
RUN deno install
COPY . .
RUN deno task bundle

# --- stage 2: deno + two files, run by an unprivileged user --------------------------------------
FROM denoland/deno:2.9.6
WORKDIR /app
COPY --from=build /src/dist/gateway.js /src/dist/launch.js ./
# DATA_DIR: the only place the gateway may write (embedded queue / SQLite when no Redis / MySQL).
RUN mkdir -p /app/data && chown deno:deno /app/data
USER deno
# The launcher sets V8's heap limits from GATEWAY_HEAP_MB (default 128): RSS stays well inside
# compose.yaml's mem_limit (512m).
ENV DATA_DIR=/app/data \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=5200
EXPOSE 5200
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:' + (Deno.env.get('HTTP_PORT') ?? '5200') + '/healthz'); Deno.exit(r.ok ? 0 : 1)"]
# The launcher reads the environment, computes the narrow permission set (network only to the
# configured hosts and listen ports, read/write only DATA_DIR, only the config variables) and
# runs `deno run <those flags> gateway.js`; it passes SIGTERM on, so `docker stop` is graceful.
ENTRYPOINT ["deno", "run", "--allow-env", "--allow-read", "--allow-run", "launch.js", "gateway.js"]
CMD []
