import { HttpProblem, type ServiceIdentity } from '@pilot/kit'
import { PROBLEM_TYPES, type VerificationResult } from '@pilot/schemas'

/** The city's residence service, as the intake service calls it. */
export class ResidenceClient {
  constructor(
    private readonly baseUrl: string,
    private readonly identity: ServiceIdentity,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Asks for a verification on the caseworker's behalf: their own token is passed on, so the residence service
   * authorises (and would audit) the caseworker, not this service.
   */
  async verify(callerToken: string, request: { idNumber: string; hukouCity: string }, requestId: string) {
    return this.post<VerificationResult>('/v1/residence/verifications', callerToken, request, requestId)
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

  private async post<T>(path: string, token: string, body: unknown, requestId: string): Promise<T> {
    let response: Response
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-request-id': requestId },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      })
    } catch (error) {
      throw unavailable(`the residence service did not answer (${(error as Error).message})`)
    }
    if (response.ok) return (await response.json()) as T
    const problem = (await response.json().catch(() => ({}))) as {
      type?: string
      title?: string
      detail?: string
      errors?: unknown
    }
    if (response.status >= 500 || response.status === 429) {
      throw unavailable(`the residence service answered ${response.status}`)
    }
    // The residence service's own refusal (a field it rejects) is the caller's to fix: pass it on as it is.
    throw new HttpProblem(
      response.status,
      problem.type ?? PROBLEM_TYPES.badRequest,
      problem.title ?? 'Refused by the residence service',
      problem.detail ?? `the residence service answered ${response.status}`,
      problem.errors ? { errors: problem.errors } : {},
    )
  }
}

function unavailable(detail: string): HttpProblem {
  return new HttpProblem(
    503,
    PROBLEM_TYPES.unavailable,
    'Residence service unavailable',
    `${detail}; nothing was saved, try again`,
  )
}
