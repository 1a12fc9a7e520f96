import { runService } from '@pilot/kit'
import { buildApp, intakeService } from './app.ts'
import { readIntakeConfig } from './config.ts'

await runService(intakeService, readIntakeConfig, buildApp)
