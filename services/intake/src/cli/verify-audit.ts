/**
 * Verifies this city's audit log: recomputes the hash chain from the first row and names the first row that does not
 * verify. Same environment variables as the service.
 *
 *   pnpm --filter @pilot/intake audit:verify
 *
 * Exit code: 0 when the chain verifies, 1 when it is broken (the row is named), 78 on bad configuration.
 */
import { ConfigError, createDb } from '@pilot/kit'
import { verifyAuditLog } from '../cases/audit.ts'
import { readIntakeConfig } from '../config.ts'
import type { IntakeDatabase } from '../db/schema.ts'

let config: ReturnType<typeof readIntakeConfig>
try {
  config = readIntakeConfig()
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`)
    process.exit(78)
  }
  throw error
}

const db = createDb<IntakeDatabase>({ url: config.databaseUrl, schema: 'intake', poolMax: 1 })
try {
  const result = await verifyAuditLog(db)
  if (result.ok) {
    const pending = result.unchained
      ? `; ${result.unchained} newer rows not linked yet, the oldest written ${result.oldestUnchainedAt?.toISOString()}`
      : ''
    process.stdout.write(`${config.city} audit log verifies: ${result.count} rows${pending}\n`)
  } else {
    process.stdout.write(`${config.city} audit log is BROKEN at row ${result.brokenAt} (${result.reason})\n`)
    process.exitCode = 1
  }
} finally {
  await db.destroy()
}
