import type { ColumnType, Generated } from 'kysely'

export type Direction = 'inbound' | 'outbound'
/**
 * inbound: received (stored, receipt issued) → handed_off (on the local queue) → consumed (the local service is done)
 * outbound: pending (queued or retrying) → delivered (partner receipt verified) | dead (given up; an operator may redrive)
 */
export type MessageStatus = 'received' | 'handed_off' | 'consumed' | 'pending' | 'delivered' | 'dead'

export interface GatewayDatabase {
  messages: MessageTable
}

export interface MessageTable {
  id: Generated<string>
  direction: Direction
  partner: string
  message_id: string
  type: string
  ref: string
  usr: string | null
  status: MessageStatus
  /** base64url SHA-256 of the body's RFC 8785 form: what receipts and replays are compared by. */
  digest: string
  /** Outbound: the body we send. Inbound bodies live in `claims`. */
  body: ColumnType<unknown, string | null, string | null>
  /** Inbound: the JWS exactly as received (non-repudiation). Outbound: the last JWS sent. */
  raw_jws: string | null
  claims: ColumnType<Record<string, unknown> | null, string | null, string | null>
  /** Inbound: the receipt we issued. Outbound: the partner's receipt. */
  receipt_jws: string | null
  receipt_status: string | null
  attempts: Generated<number>
  last_error: string | null
  created_at: ColumnType<Date, never, never>
  updated_at: ColumnType<Date, never, Date>
  delivered_at: Date | null
  handed_off_at: Date | null
  consumed_at: Date | null
}
