import { runMigrateCommand } from '@pilot/kit'
import { buildApp, gatewayService } from '../app.ts'
import { readGatewayConfig } from '../config.ts'

await runMigrateCommand(gatewayService, readGatewayConfig, buildApp)
