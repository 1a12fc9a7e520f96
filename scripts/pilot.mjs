// `pnpm pilot`: installs what the pilot needs when it is missing, then hands over to scripts/pilot.ts.
// Plain JavaScript on purpose: it must run before any dependency (tsx included) is installed.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../', import.meta.url))

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

if (!existsSync(`${root}node_modules/.modules.yaml`) || !existsSync(`${root}node_modules/.bin/tsx`)) {
  console.log('Installing dependencies from the lock file…')
  run('pnpm', ['install', '--frozen-lockfile'])
}

const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/pilot.ts', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
})
// Ctrl-C reaches the whole process group; the pilot stops its services itself and this waits for it to finish.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => {})
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
