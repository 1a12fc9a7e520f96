/**
 * Prints a development token for scripts: `pnpm pilot:token <city> <role>`. Signed with the development identity
 * provider key that `pnpm pilot` generated under .pilot/keys (run the pilot once first).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { mintDevToken, ROLES, type Role } from '@pilot/kit'
import { CITY_IDS, isCityId } from '@pilot/schemas'
import { keysDir } from './pilot-settings.ts'

const [city, role] = process.argv.slice(2)
if (!isCityId(city) || !(ROLES as readonly string[]).includes(role ?? '')) {
  process.stderr.write(`usage: pnpm pilot:token <${CITY_IDS.join('|')}> <${ROLES.join('|')}>\n`)
  process.exit(64)
}
if (!existsSync(join(keysDir, city, 'idp-private.jwk.json'))) {
  process.stderr.write('No development keys yet: run `pnpm pilot` once first.\n')
  process.exit(1)
}
process.stdout.write(`${await mintDevToken(keysDir, city, { roles: [role as Role] })}\n`)
