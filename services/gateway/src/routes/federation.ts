import { problemResponses, type QueueRegistry } from '@pilot/kit'
import { FEDERATION_MAX_BYTES, type FederationQueues } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { HandOffMarks, handOff } from '../federation/handoff.ts'
import { type InboundContext, receiveMessage } from '../federation/inbound.ts'
import { FEDERATION_FAILURES, FederationProblem, federationProblemType } from '../federation/problems.ts'
import type { GatewayMetrics } from '../metrics.ts'

const JOSE = 'application/jose'

export async function federationRoutes(
  app: FastifyInstance,
  options: { context: InboundContext; metrics: GatewayMetrics },
) {
  const { context, metrics } = options
  const queues = app.queues as unknown as QueueRegistry<FederationQueues>
  const marks = new HandOffMarks(context.store.pool, (error, rows) =>
    app.log.warn({ err: error.message, rows }, 'handed_off marks not written; the relay will find the rows'),
  )
  // Child plugins close before the root's, so the marks still made are written before the pool closes.
  app.addHook('onClose', async () => {
    await marks.flush()
  })
  // The body is the compact JWS itself; JSON bodies are not accepted here.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(JOSE, { parseAs: 'string', bodyLimit: FEDERATION_MAX_BYTES }, (_request, body, done) =>
    done(null, body),
  )
  app.addContentTypeParser('*', (request, _payload, done) =>
    done(
      new FederationProblem(
        'unsupported-media-type',
        `Content-Type ${request.headers['content-type'] ?? '(none)'} is not ${JOSE}`,
      ),
    ),
  )

  app.setErrorHandler((error, request, reply) => {
    const problem =
      error instanceof FederationProblem
        ? error
        : (error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? new FederationProblem('too-large', `the message is over ${FEDERATION_MAX_BYTES} bytes`)
          : undefined
    if (!problem) throw error
    metrics.verificationFailures.inc({ cause: problem.cause })
    // Tell a well-behaved sender when to come back: the rate window is a minute; keys may be reachable again soon.
    if (problem.status === 429) {
      reply.header('retry-after', String(60 - (context.clock?.() ?? new Date()).getUTCSeconds()))
    }
    if (problem.status === 503) reply.header('retry-after', '30')
    request.log.info({ cause: problem.cause }, 'federation message refused')
    return reply
      .status(problem.status)
      .type('application/problem+json')
      .send({
        type: problem.type,
        title: problem.title,
        status: problem.status,
        detail: problem.message,
        requestId: request.id,
        ...problem.extensions,
      })
  })

  // One documented response per status, listing every problem type that status carries.
  const failuresByStatus: Record<number, string> = {}
  for (const [cause, { status, title }] of Object.entries(FEDERATION_FAILURES)) {
    const line = `${federationProblemType(cause as keyof typeof FEDERATION_FAILURES)}: ${title}`
    failuresByStatus[status] = failuresByStatus[status] ? `${failuresByStatus[status]}; ${line}` : line
  }
  app.post(
    '/federation/v1/messages',
    {
      schema: {
        tags: ['federation'],
        summary: 'Receive a signed federation message (protocol v1)',
        description:
          'Body: a compact JWS (`Content-Type: application/jose`, at most 1 MiB) with protected header `alg` ES256 or ' +
          'EdDSA, `kid` and `typ` `pilot-msg+jwt`. Verified in the protocol order; on success the answer is a signed ' +
          'receipt (also a compact JWS) whose body is `{ status: accepted | duplicate, digest }`. See ' +
          'openapi/federation.md for the whole protocol.',
        consumes: [JOSE],
        body: Type.String({ description: 'Compact JWS' }),
        security: [],
        response: {
          202: {
            description: 'Accepted (or a duplicate of an accepted message): a signed receipt',
            content: { [JOSE]: { schema: Type.String() } },
          },
          ...problemResponses(failuresByStatus),
        },
      },
    },
    async (request, reply) => {
      const accepted = await receiveMessage(context, request.body as string)
      metrics.messages.inc({
        direction: 'inbound',
        partner: accepted.partner,
        type: accepted.claims.type,
        outcome: accepted.status,
      })
      const { stored, claims } = accepted
      if (stored) {
        // The row just stored holds exactly these claims: the hand-off is built from them, not read back.
        const row = {
          id: stored.id,
          partner: accepted.partner,
          message_id: claims.jti,
          type: claims.type,
          ref: claims.ref,
          usr: claims.usr ?? null,
          claims,
          created_at: stored.at,
        }
        await handOff(queues, marks, row).catch((error: Error) =>
          request.log.warn({ err: error.message }, 'hand-off deferred to the relay'),
        )
      }
      return reply.status(202).type(JOSE).send(accepted.receipt)
    },
  )
}
