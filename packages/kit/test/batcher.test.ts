import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createBatcher } from '../src/index.ts'

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('createBatcher', () => {
  it('sends a lone item at once, alone', async () => {
    const batches: number[][] = []
    const batcher = createBatcher<number, number>({
      run: async (items) => {
        batches.push(items)
        return items.map((item) => item * 2)
      },
      concurrency: 2,
      maxSize: 10,
    })
    const answer = batcher.add(21)
    // Sent synchronously: no timer, no waiting for company.
    expect(batches).toEqual([[21]])
    expect(await answer).toBe(42)
  })

  it('gathers what arrives while every slot is busy into the next batch, up to maxSize', async () => {
    const batches: number[][] = []
    const release: (() => void)[] = []
    const batcher = createBatcher<number, string>({
      run: async (items) => {
        batches.push(items)
        await new Promise<void>((resolve) => release.push(resolve))
        return items.map(String)
      },
      concurrency: 1,
      maxSize: 3,
    })
    const answers = Array.from({ length: 6 }, (_, i) => batcher.add(i))
    expect(batches).toEqual([[0]])
    expect(batcher.waiting).toBe(5)
    release.shift()?.()
    await tick()
    expect(batches).toEqual([[0], [1, 2, 3]])
    release.shift()?.()
    await tick()
    release.shift()?.()
    expect(await Promise.all(answers)).toEqual(['0', '1', '2', '3', '4', '5'])
    expect(batches).toEqual([[0], [1, 2, 3], [4, 5]])
    expect(batcher.inFlight).toBe(0)
  })

  it('tries a failed batch again item by item, so only the bad item fails', async () => {
    const batches: string[][] = []
    let block: (() => void) | undefined
    const batcher = createBatcher<string, string>({
      run: async (items) => {
        batches.push(items)
        if (items[0] === 'first') await new Promise<void>((resolve) => (block = resolve))
        if (items.includes('bad')) throw new Error('bad row')
        return items.map((item) => item.toUpperCase())
      },
      concurrency: 1,
      maxSize: 10,
    })
    const first = batcher.add('first')
    const rest = ['a', 'bad', 'b'].map((item) => batcher.add(item).catch((error: Error) => error.message))
    block?.()
    expect(await first).toBe('FIRST')
    expect(await Promise.all(rest)).toEqual(['A', 'bad row', 'B'])
    expect(batches).toEqual([['first'], ['a', 'bad', 'b'], ['a'], ['bad'], ['b']])
  })

  it('fails every item of a failed batch at once with retryEach false', async () => {
    let calls = 0
    let block: (() => void) | undefined
    const batcher = createBatcher<number, number>({
      run: async (items) => {
        calls++
        if (calls === 1) await new Promise<void>((resolve) => (block = resolve))
        else throw new Error(`unreachable (${items.length})`)
        return items
      },
      concurrency: 1,
      maxSize: 10,
      retryEach: false,
    })
    const first = batcher.add(0)
    const rest = [1, 2, 3].map((item) => batcher.add(item).catch((error: Error) => error.message))
    block?.()
    expect(await first).toBe(0)
    expect(await Promise.all(rest)).toEqual(['unreachable (3)', 'unreachable (3)', 'unreachable (3)'])
    expect(calls).toBe(2)
  })

  it('fails the items of a batch that answers the wrong number of results', async () => {
    const batcher = createBatcher<number, number>({ run: async () => [], concurrency: 1, maxSize: 5 })
    await expect(batcher.add(1)).rejects.toThrow(/a batch of 1 answered 0 results/)
  })

  it('refuses a concurrency or largest batch below 1', () => {
    expect(() => createBatcher({ run: async () => [], concurrency: 0, maxSize: 1 })).toThrow(RangeError)
    expect(() => createBatcher({ run: async () => [], concurrency: 1, maxSize: 0 })).toThrow(RangeError)
  })

  it('answers every item exactly once, within its limits, whatever the arrivals, delays and bad items', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ bad: fc.boolean(), arriveAfter: fc.nat(3), delay: fc.nat(3) }), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 8 }),
        async (items, concurrency, maxSize) => {
          let active = 0
          let mostActive = 0
          let largest = 0
          const written = new Map<number, number>()
          const batcher = createBatcher<number, number>({
            run: async (batch) => {
              active++
              mostActive = Math.max(mostActive, active)
              largest = Math.max(largest, batch.length)
              try {
                for (let i = 0; i < Math.max(...batch.map((index) => items[index]?.delay ?? 0)); i++) await tick()
                // All or nothing, like one statement.
                if (batch.some((index) => items[index]?.bad)) throw new Error(`bad ${batch.join(',')}`)
                for (const index of batch) written.set(index, (written.get(index) ?? 0) + 1)
                return batch.map((index) => index * 10)
              } finally {
                active--
              }
            },
            concurrency,
            maxSize,
          })
          const answers: Promise<number | string>[] = []
          for (const [index, item] of items.entries()) {
            for (let i = 0; i < item.arriveAfter; i++) await tick()
            answers.push(batcher.add(index).catch(() => 'failed'))
          }
          const settled = await Promise.all(answers)
          expect(settled).toEqual(items.map((item, index) => (item.bad ? 'failed' : index * 10)))
          // Each good item written exactly once; no bad item written at all.
          expect([...written.entries()].sort((a, b) => a[0] - b[0])).toEqual(
            items.flatMap((item, index) => (item.bad ? [] : [[index, 1]])),
          )
          expect(mostActive).toBeLessThanOrEqual(concurrency)
          expect(largest).toBeLessThanOrEqual(maxSize)
          expect(batcher.waiting + batcher.inFlight).toBe(0)
        },
      ),
      { numRuns: 200 },
    )
  })
})
