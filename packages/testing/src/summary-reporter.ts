import type { Reporter, TestModule } from 'vitest/node'

/**
 * Ends the run with one plain line, `Tests: N passed, N failed, N skipped`, that CI and humans can read without
 * knowing vitest's own summary format. A run that executed no test prints `0 passed` and CI treats it as a failure.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === 'passed') passed++
        else if (state === 'failed') failed++
        else skipped++
      }
      // A file whose setup failed reports its tests as skipped; the failure itself must still count.
      const failedTests = [...module.children.allTests()].filter((test) => test.result().state === 'failed').length
      if (module.state() === 'failed' && failedTests === 0) failed++
    }
    process.stdout.write(`\nTests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
  }
}
