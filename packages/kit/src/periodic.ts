/** A background pass a worker runs every so often, never two at once. */
export interface PeriodicPass {
  /** Starts a pass unless one is running; resolves when that pass (new or running) ends. */
  now(): Promise<void>
  /** Starts a pass once the running one (if any) has ended — for work that may have come after it read — unless stopped. */
  next(): Promise<void>
  /** No more passes on the timer or from next(); resolves once the running pass ends. now() still runs one. */
  stop(): Promise<void>
}

/**
 * Runs `pass` every `intervalMs` (the timer does not keep the process alive), skipping a tick while a pass runs. A
 * pass that fails is reported to `onError` and the next tick tries again: what it did not do waits in the database.
 */
export function startPeriodicPass(
  pass: () => Promise<unknown>,
  intervalMs: number,
  onError: (error: Error) => void,
): PeriodicPass {
  let running: Promise<void> | undefined
  let stopped = false
  const now = () => {
    running ??= pass()
      .then(
        () => undefined,
        (error: Error) => {
          onError(error)
        },
      )
      .finally(() => {
        running = undefined
      })
    return running
  }
  const timer = setInterval(() => void now(), intervalMs)
  timer.unref()
  return {
    now,
    next: () => (running ?? Promise.resolve()).then(() => (stopped ? undefined : now())),
    stop: async () => {
      stopped = true
      clearInterval(timer)
      await running
    },
  }
}
