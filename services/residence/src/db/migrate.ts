import { runMigrateCommand } from '@pilot/kit'
import { buildApp, residenceService } from '../app.ts'
import { readResidenceConfig } from '../config.ts'

await runMigrateCommand(residenceService, readResidenceConfig, buildApp)
