import { Counter, Histogram, type Registry } from 'prom-client'

export interface GatewayMetrics {
  messages: Counter<'direction' | 'partner' | 'type' | 'outcome'>
  verificationFailures: Counter<'cause'>
  deliveryLatency: Histogram<'partner' | 'type'>
}

export function gatewayMetrics(registry: Registry): GatewayMetrics {
  return {
    messages: new Counter({
      name: 'federation_messages_total',
      help: 'Federation messages by direction, partner, type and outcome',
      labelNames: ['direction', 'partner', 'type', 'outcome'],
      registers: [registry],
    }),
    verificationFailures: new Counter({
      name: 'federation_verification_failures_total',
      help: 'Inbound messages refused, by cause (the problem type suffix)',
      labelNames: ['cause'],
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'federation_delivery_seconds',
      help: 'From a message being queued to its receipt being verified',
      labelNames: ['partner', 'type'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  }
}
