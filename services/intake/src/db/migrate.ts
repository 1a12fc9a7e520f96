import { runMigrateCommand } from '@pilot/kit'
import { buildApp, intakeService } from '../app.ts'
import { readIntakeConfig } from '../config.ts'

await runMigrateCommand(intakeService, readIntakeConfig, buildApp)
