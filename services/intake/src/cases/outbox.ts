import type { OutboundMessage, PartnerMessageType } from '@pilot/schemas'

/** An outbox row's columns, as read back or as the submission writer has just written them. */
export interface OutboxFields {
  id: string
  to_city: string
  type: string
  ref: string
  usr: string | null
  body: unknown
}

/** The message an outbox row puts on the gateway's outbound queue: its id is the row's (and the federation jti). */
export function outboundMessageOf(row: OutboxFields): OutboundMessage {
  return {
    messageId: row.id,
    to: row.to_city,
    type: row.type as PartnerMessageType,
    ref: row.ref,
    ...(row.usr ? { usr: row.usr } : {}),
    body: row.body,
  }
}
