# syntax=docker/dockerfile:1
# saslgate container image: `docker build -t saslgate:0.1.0 .`
#
#   toolchain  Node 24 slim + compilers + libkrb5-dev, the lockfile
#   build      npm ci + npm run build: the libkrb5 addon (node-gyp) and dist/ (tsc)
#   prod-deps  npm ci --omit=dev: production node_modules (the `kerberos` package compiles here)
#   runtime    Node 24 slim + libkrb5's runtime libraries only, non-root, what bin/saslgate.js needs
#
# Node is PID 1 and handles SIGTERM itself (readiness off, drain, exit); saslgate serve spawns no
# children, so no init (tini) is needed. The health check needs the admin port, which the image
# turns on (SASLGATE_SERVICE_ADMIN_LISTEN); the Helm chart probes the same endpoints.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS toolchain
RUN apt-get update \
  && apt-get install -y --no-install-recommends libkrb5-dev g++ make python3 \
  && rm -rf /var/lib/apt/lists/*
# Build addons against the headers shipped in the image instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json ./

FROM toolchain AS build
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY native native
COPY src src
RUN npm run build

FROM toolchain AS prod-deps
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
  && apt-get install -y --no-install-recommends libkrb5-3 libgssapi-krb5-2 \
  && rm -rf /var/lib/apt/lists/* \
  && groupadd --system --gid 10001 saslgate \
  && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin saslgate
WORKDIR /app
ENV NODE_ENV=production \
  KRB5RCACHEDIR=/tmp \
  SASLGATE_SERVICE_ADMIN_LISTEN=0.0.0.0:9090
COPY --from=prod-deps /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY --from=build /src/native/build/Release/saslgate_krb5.node native/build/Release/saslgate_krb5.node
COPY package.json ./
COPY bin bin
USER 10001:10001
EXPOSE 8443 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/saslgate.js"]
CMD ["--help"]
