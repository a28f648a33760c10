/**
 * `kairo-gw lab ...` for the tests: the real CLI when program.ts registers `lab`, otherwise a
 * program with only the lab command (same error handling as appliance/cli/main.ts).
 *
 *   node --import=tsx test/lab/cli.ts lab run --topology pair-udp --json
 */
import { Command, CommanderError } from 'commander'
import { registerLab } from '../../appliance/cli/commands/lab.js'
import { errorJson, errorLine, exitCodeFor, EXIT_OK, EXIT_USAGE } from '../../appliance/cli/errors.js'

const program = new Command('kairo-gw').exitOverride().configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'kairo-gw: ')) })
registerLab(program)
try {
  await program.parseAsync(process.argv)
  process.exitCode = EXIT_OK
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
  else {
    if (process.argv.includes('--json')) process.stdout.write(JSON.stringify(errorJson(err)) + '\n')
    process.stderr.write(errorLine(err) + '\n')
    if (process.env.KAIRO_DEBUG === '1' && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n')
    process.exitCode = exitCodeFor(err)
  }
}
