# One image for every service; SERVICE (residence | intake | gateway) picks which one a container runs.
FROM node:20.20-bookworm-slim AS build
RUN npm i -g pnpm@12.4.2
WORKDIR /app
# Dependencies first, so code changes do not invalidate the install layer.
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY packages/kit/package.json packages/kit/
COPY packages/schemas/package.json packages/schemas/
COPY packages/testing/package.json packages/testing/
COPY services/residence/package.json services/residence/
COPY services/intake/package.json services/intake/
COPY services/gateway/package.json services/gateway/
COPY test/package.json test/
RUN pnpm install --frozen-lockfile
COPY tsconfig.base.json tsconfig.json ./
COPY packages packages
COPY services services
COPY infra/pilot.yaml infra/data infra/

FROM node:20.20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PILOT_CONFIG=/app/infra/pilot.yaml
WORKDIR /app
COPY --from=build /app /app
USER node
CMD ["sh", "-c", "exec node --import tsx services/${SERVICE}/src/server.ts"]
