# syntax=docker/dockerfile:1
# One image for the three services (residence, intake, gateway) of every city. The container's command names the
# service: `node --import tsx services/<service>/src/server.ts` (docker-compose.yml and infra/k8s do so); with no
# command, SERVICE=residence|intake|gateway picks one. SERVICE_MODE=api|worker|all (default all) picks what it runs.
#
#   docker build -t gba-social-assistance-pilot:local .
#
# Stages: `deps` installs the services' production dependencies exactly as pnpm-lock.yaml pins them; `tsx` adds the
# TypeScript loader the services run with (a root development dependency, so the production install leaves it out);
# the runtime stage is a slim Node image with only those, the sources and the profile, running as the unprivileged
# `node` user. No key is ever copied in (.dockerignore keeps .pilot/ out): keys are mounted at run time.

ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
RUN npm install --global pnpm@12.4.2
WORKDIR /app
# Manifests first, so a code change does not invalidate the install layer. Every workspace package is listed:
# --frozen-lockfile refuses to install when a workspace package of the lock file is missing.
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY packages/kit/package.json packages/kit/
COPY packages/schemas/package.json packages/schemas/
COPY packages/signing/package.json packages/signing/
COPY packages/testing/package.json packages/testing/
COPY services/residence/package.json services/residence/
COPY services/intake/package.json services/intake/
COPY services/gateway/package.json services/gateway/
COPY test/package.json test/
# Only the three services and the workspace packages they need at run time, production dependencies only: --filter-prod
# follows dependencies but not devDependencies, so the test harness (testcontainers, Vitest) stays out. About a third
# of the full install.
RUN --mount=type=cache,id=pnpm-store,target=/root/.local/share/pnpm/store \
    pnpm install --frozen-lockfile --prod \
      --filter-prod "@pilot/residence..." --filter-prod "@pilot/intake..." --filter-prod "@pilot/gateway..."

FROM ${NODE_IMAGE} AS tsx
# The same tsx version as pnpm-lock.yaml (test/deploy.test.ts checks they agree).
ARG TSX_VERSION=4.23.15
RUN npm install --prefix /opt/tsx --omit=dev --no-audit --no-fund "tsx@${TSX_VERSION}"

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PILOT_CONFIG=/app/infra/pilot.yaml
WORKDIR /app
COPY --from=deps /app ./
COPY --from=tsx /opt/tsx /opt/tsx
# `node --import tsx` resolves tsx from /app/node_modules; its own dependencies resolve from /opt/tsx.
RUN ln -s /opt/tsx/node_modules/tsx node_modules/tsx
COPY tsconfig.base.json tsconfig.json ./
COPY packages packages
COPY services services
# Directory sources copy their contents, so each directory is named in its destination.
COPY infra/pilot.yaml infra/pilot.yaml
COPY infra/data infra/data
USER node
CMD ["sh", "-c", "exec node --import tsx \"services/${SERVICE:?set SERVICE to residence, intake or gateway}/src/server.ts\""]
