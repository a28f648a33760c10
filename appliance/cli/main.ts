/**
 * Entry point of the kairo-gw CLI (appliance/bin/kairo-gw.mjs imports it; so does
 * `node --import=tsx appliance/cli/main.ts`). Sets process.exitCode:
 * 0 ok, 1 failure, 2 usage, 3 timeout (appliance/cli/errors.ts).
 */
import { CommanderError } from 'commander'
import { buildProgram } from './program.js'
import { EXIT_OK, EXIT_USAGE, errorJson, errorLine, exitCodeFor } from './errors.js'

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    // A command that printed its own result and set an exit code (config check, lora emulate).
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version "fail" with exit code 0; every other commander error is usage.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
    }
    const code = exitCodeFor(err)
    const wantsJson = argv.includes('--json')
    if (wantsJson) process.stdout.write(JSON.stringify(errorJson(err)) + '\n')
    process.stderr.write(errorLine(err) + '\n')
    if (code === EXIT_USAGE) process.stderr.write('(run with --help for usage)\n')
    if (process.env.KAIRO_DEBUG === '1' && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n')
    return code
  }
}

// `kairo-gw ... | head`: a reader that goes away is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
  throw err
})

process.exitCode = await main()
