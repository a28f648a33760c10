#!/usr/bin/env node
// kairo-gw from a checkout: registers tsx so the TypeScript sources run as they are, then hands
// over to the CLI (appliance/cli/main.ts), which sets the exit code.
import { register } from 'tsx/esm/api'

register()
await import(new URL('../cli/main.ts', import.meta.url).href)
