import { describe, expect, it } from 'vitest'
import { startPeriodicPass } from '../src/index.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('startPeriodicPass', () => {
  it('never runs two passes at once, runs next() after the running one, and stops', async () => {
    let active = 0
    let most = 0
    let runs = 0
    const pass = startPeriodicPass(
      async () => {
        active++
        most = Math.max(most, active)
        runs++
        await sleep(30)
        active--
      },
      5,
      () => {},
    )
    await sleep(100)
    // A pass takes 30 ms and the timer ticks every 5 ms: ticks during a pass are skipped.
    expect(most).toBe(1)
    expect(runs).toBeGreaterThanOrEqual(2)
    await pass.stop()
    const afterStop = runs
    await sleep(50)
    expect(runs).toBe(afterStop)
    await pass.next()
    expect(runs).toBe(afterStop)
    // now() still runs one (a last pass on shutdown).
    await pass.now()
    expect(runs).toBe(afterStop + 1)
  })

  it('joins now() to the running pass, and next() waits for it before starting another', async () => {
    const order: string[] = []
    let n = 0
    const pass = startPeriodicPass(
      async () => {
        const id = ++n
        order.push(`start ${id}`)
        await sleep(20)
        order.push(`end ${id}`)
      },
      60_000,
      () => {},
    )
    const first = pass.now()
    expect(pass.now()).toBe(first)
    await pass.next()
    expect(order).toEqual(['start 1', 'end 1', 'start 2', 'end 2'])
    await pass.stop()
  })

  it('reports a failed pass and carries on at the next tick', async () => {
    const errors: string[] = []
    let runs = 0
    const pass = startPeriodicPass(
      async () => {
        runs++
        if (runs === 1) throw new Error('database down')
      },
      10,
      (error) => errors.push(error.message),
    )
    await expect(pass.now()).resolves.toBeUndefined()
    await sleep(50)
    await pass.stop()
    expect(errors).toEqual(['database down'])
    expect(runs).toBeGreaterThan(1)
  })
})
