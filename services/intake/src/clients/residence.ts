import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { urlToHttpOptions } from 'node:url'
import { type Batcher, createBatcher, HttpProblem, type ServiceIdentity } from '@pilot/kit'
import {
  PROBLEM_TYPES,
  VERIFICATION_BATCH_MAX,
  type VerificationBatchItem,
  type VerificationBatchResult,
  type VerificationResult,
} from '@pilot/schemas'

/**
 * Idle connections are closed after this long, well before the residence service would close them (Node servers
 * announce 72 s) so that a request never goes out on a connection the server is closing.
 */
const IDLE_CONNECTION_MS = 4000

interface VerifyItem {
  request: { idNumber: string; hukouCity: string }
  requestId: string
}

/**
 * The city's residence service, as the intake service calls it. Every submission asks it, so it is called through
 * node:http on kept-alive connections: fetch (undici, with its WHATWG streams, Response and AbortSignal per request)
 * cost the intake service about a sixth of its CPU time per submission.
 */
export class ResidenceClient {
  readonly #agent: HttpAgent
  readonly #send: typeof httpRequest
  /** The request options of each path called, worked out once. */
  readonly #targets = new Map<string, RequestOptions>()
  readonly #verifications: Batcher<VerifyItem, VerificationBatchItem>

  constructor(
    private readonly baseUrl: string,
    private readonly identity: ServiceIdentity,
    private readonly options: {
      timeoutMs: number
      /**
       * Verification batches in flight at once. Few, so that under load the submissions waiting for a free slot go
       * together: a batch costs both services about what one verification did (one request, one authorisation, one
       * lookup), plus the signing of each attestation.
       */
      concurrency: number
      onBatch?: (size: number) => void
    },
  ) {
    const secure = new URL(baseUrl).protocol === 'https:'
    this.#agent = secure
      ? new HttpsAgent({ keepAlive: true, timeout: IDLE_CONNECTION_MS })
      : new HttpAgent({ keepAlive: true, timeout: IDLE_CONNECTION_MS })
    this.#send = secure ? httpsRequest : httpRequest
    this.#verifications = createBatcher({
      run: (items) => this.#verifyBatch(items),
      concurrency: options.concurrency,
      maxSize: VERIFICATION_BATCH_MAX,
      // The residence service answers for each request; a whole batch fails only when it cannot be reached.
      retryEach: false,
      onBatch: options.onBatch,
    })
  }

  /**
   * Asks for a caseworker's verification, together with those asked for at the same moment: one call to the residence
   * service's batch route, made as this service (role system). This service has authorised the caseworker (role
   * caseworker, this city) before asking, and its audit log records the submission; the residence service answers each
   * request as its single route would, and a request it refuses fails alone, with the problem it gave.
   */
  async verify(request: { idNumber: string; hukouCity: string }, requestId: string): Promise<VerificationResult> {
    const item = await this.#verifications.add({ request, requestId })
    if (item.verification) return item.verification
    if (!item.problem) throw new Error('the residence service answered a batch item with neither result nor problem')
    throw refusal(item.problem.status, item.problem)
  }

  async #verifyBatch(items: VerifyItem[]): Promise<VerificationBatchItem[]> {
    const { results } = await this.post<VerificationBatchResult>(
      '/v1/residence/verifications:batch',
      await this.identity.token(),
      { requests: items.map((item) => item.request) },
      // The residence service logs the batch under its first submission's request id.
      (items[0] as VerifyItem).requestId,
    )
    return results
  }

  /** Whether a person (by matching hash) is registered in this city: asked by the worker for itself. */
  async confirmRegistration(subject: string, requestId: string) {
    return this.post<{ registered: boolean; registeredSince: string | null; householdRef: string | null }>(
      '/v1/residence/registrations:confirm',
      await this.identity.token(),
      { subject },
      requestId,
    )
  }

  #target(path: string): RequestOptions {
    let target = this.#targets.get(path)
    if (!target) {
      target = urlToHttpOptions(new URL(`${this.baseUrl}${path}`))
      this.#targets.set(path, target)
    }
    return target
  }

  /**
   * One POST with a JSON body. The timeout covers the whole exchange, the answer's body included; a request that runs
   * out of time, or a connection that fails, is a 503 (nothing was saved); any other answer is mapped by `answer`.
   */
  private post<T>(path: string, token: string, body: unknown, requestId: string): Promise<T> {
    const payload = Buffer.from(JSON.stringify(body))
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      let settled = false
      const settle = (outcome: () => T) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        try {
          resolve(outcome())
        } catch (error) {
          reject(error)
        }
      }
      const failed = (error: Error) =>
        settle(() => {
          throw unavailable(`the residence service did not answer (${error.message})`)
        })
      let request: ClientRequest
      try {
        request = this.#send(
          {
            ...this.#target(path),
            method: 'POST',
            agent: this.#agent,
            headers: {
              'content-type': 'application/json',
              'content-length': payload.length,
              authorization: `Bearer ${token}`,
              'x-request-id': requestId,
            },
          },
          (response: IncomingMessage) => {
            const chunks: Buffer[] = []
            response.on('data', (chunk: Buffer) => chunks.push(chunk))
            response.on('end', () =>
              settle(() => answer<T>(response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))),
            )
            response.on('error', failed)
            response.on('close', () => {
              if (!response.complete) failed(new Error('the connection closed before the answer was complete'))
            })
          },
        )
      } catch (error) {
        // Refused before anything went out (a header value Node will not send, say).
        failed(error as Error)
        return
      }
      timer = setTimeout(
        () => request.destroy(new Error('The operation was aborted due to timeout')),
        this.options.timeoutMs,
      )
      request.on('error', failed)
      request.end(payload)
    })
  }
}

/** The answer's body for a 2xx; otherwise the HttpProblem the caller gets. */
function answer<T>(status: number, text: string): T {
  if (status >= 200 && status < 300) return JSON.parse(text) as T
  if (status >= 500 || status === 429) {
    throw unavailable(`the residence service answered ${status}`)
  }
  // Every call is made with this service's own token: the residence service refusing it is a deployment fault (a key
  // not in the IdP's JWKS), not the caseworker's, who is told the service is unavailable rather than unauthorised.
  if (status === 401 || status === 403) {
    throw unavailable(`the residence service refused this service's token (${status})`)
  }
  let problem: ResidenceProblem = {}
  try {
    problem = JSON.parse(text) ?? {}
  } catch {
    // Not JSON: the status alone says what happened.
  }
  throw refusal(status, problem)
}

type ResidenceProblem = { type?: string; title?: string; detail?: string; errors?: unknown }

/** The residence service's own refusal (a field it rejects) is the caller's to fix: passed on as it is. */
function refusal(status: number, problem: ResidenceProblem): HttpProblem {
  return new HttpProblem(
    status,
    problem.type ?? PROBLEM_TYPES.badRequest,
    problem.title ?? 'Refused by the residence service',
    problem.detail ?? `the residence service answered ${status}`,
    problem.errors ? { errors: problem.errors } : {},
  )
}

function unavailable(detail: string): HttpProblem {
  return new HttpProblem(
    503,
    PROBLEM_TYPES.unavailable,
    'Residence service unavailable',
    `${detail}; nothing was saved, try again`,
  )
}
