import { runService } from '@pilot/kit'
import { buildApp, gatewayService } from './app.ts'
import { readGatewayConfig } from './config.ts'

await runService(gatewayService, readGatewayConfig, buildApp)
