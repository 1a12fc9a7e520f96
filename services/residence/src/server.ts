import { runService } from '@pilot/kit'
import { buildApp, residenceService } from './app.ts'
import { readResidenceConfig } from './config.ts'

await runService(residenceService, readResidenceConfig, buildApp)
