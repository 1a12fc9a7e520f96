import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['services/*/test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['packages/testing/src/global-setup.ts'],
    setupFiles: ['packages/testing/src/per-file-setup.ts'],
    reporters: ['default', './packages/testing/src/summary-reporter.ts'],
    pool: 'forks',
    // The machine has 2 cores; more workers only add contention with PostgreSQL and Redis.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
