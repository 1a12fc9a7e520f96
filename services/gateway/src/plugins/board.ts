import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import { HttpProblem, PROBLEM_CONTENT_TYPE, type QueueRegistry, sendHttpProblem } from '@pilot/kit'
import { type FederationQueues, PROBLEM_TYPES } from '@pilot/schemas'
import type { FastifyInstance } from 'fastify'

const COOKIE = 'pilot_ops_token'
const BASE = '/ops/board'

const LOGIN_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Queue dashboard — sign in</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>Federation queue dashboard</h1>
<p>Paste an operator token of this city's identity provider.</p>
<form method="post" action="${BASE}/login"><textarea name="token" rows="6" cols="70" required></textarea><br>
<button type="submit">Open the dashboard</button></form></body></html>`

/**
 * Bull Board at /ops/board for operators. A browser cannot send a bearer header, so the token is posted once through a
 * small form and kept in an HttpOnly, SameSite=Strict cookie scoped to the dashboard's path; every dashboard request is
 * then checked exactly like an API call (operator role, this city).
 */
export async function boardPlugin(app: FastifyInstance, options: { queues: QueueRegistry<FederationQueues> }) {
  const serverAdapter = new FastifyAdapter()
  serverAdapter.setBasePath(BASE)
  createBullBoard({
    queues: (['federation.outbound', 'federation.inbound', 'federation.delivery'] as const).map(
      (name) => new BullMQAdapter(options.queues.queue(name)),
    ),
    serverAdapter,
    options: { uiConfig: { boardTitle: `Federation queues` } },
  })

  await app.register(async (login) => {
    login.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) =>
      done(null, Object.fromEntries(new URLSearchParams(body as string))),
    )
    login.get(`${BASE}/login`, async (_request, reply) => reply.type('text/html').send(LOGIN_PAGE))
    login.post<{ Body: { token?: string } }>(`${BASE}/login`, async (request, reply) => {
      // A JSON body may carry anything as `token`; only a string can be a token (anything else is a 401 below).
      const posted: unknown = request.body?.token
      const token = typeof posted === 'string' ? posted.trim() : ''
      request.headers.authorization = `Bearer ${token}`
      await app.authorize(['operator']).call(app, request, reply, () => {})
      reply.header(
        'set-cookie',
        `${COOKIE}=${encodeURIComponent(token)}; Path=${BASE}; HttpOnly; SameSite=Strict; Max-Age=28800`,
      )
      return reply.redirect(`${BASE}/`, 303)
    })
  })

  await app.register(async (board) => {
    // Bull Board installs its own error handler in this scope, so a refusal is sent here rather than thrown.
    board.addHook('onRequest', async (request, reply) => {
      try {
        await app.authorize(['operator'], { cookie: COOKIE }).call(app, request, reply, () => {})
      } catch (error) {
        if (error instanceof HttpProblem) return sendHttpProblem(reply, error)
        throw error
      }
    })
    // Bull Board answers its own refusals (an unknown queue or job, a body it cannot parse) in its own JSON shape; they
    // become problems like every other 4xx of the service, its members kept as extensions for the dashboard.
    board.addHook('onSend', async (request, reply, payload) => {
      if (reply.statusCode < 400 || String(reply.getHeader('content-type') ?? '').startsWith(PROBLEM_CONTENT_TYPE)) {
        return payload
      }
      let original: unknown
      try {
        original = typeof payload === 'string' ? JSON.parse(payload) : undefined
      } catch {
        original = undefined
      }
      const members = original !== null && typeof original === 'object' && !Array.isArray(original) ? original : {}
      const key = (members as { error?: { key?: unknown } }).error?.key
      const status = reply.statusCode
      reply.type(PROBLEM_CONTENT_TYPE)
      return JSON.stringify({
        ...members,
        type:
          status === 404 ? PROBLEM_TYPES.notFound : status >= 500 ? PROBLEM_TYPES.internal : PROBLEM_TYPES.badRequest,
        title: status === 404 ? 'Not found' : status >= 500 ? 'Internal error' : 'Bad request',
        status,
        detail: typeof key === 'string' ? key : `The queue dashboard refused the request (${status})`,
        requestId: request.id,
      })
    })
    await board.register(serverAdapter.registerPlugin(), { prefix: BASE })
  })
}
