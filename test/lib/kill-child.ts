/**
 * Crash tests: runs a child script (through tsx) that prints "ready" and then one line per step
 * ("TAG ARG"), and kills it with SIGKILL `killAfterMs` after "ready". Each line is handed to
 * `onLine` as it arrives, so the caller knows what the child had reported done when it died.
 * Rejects when the child does not get ready within 60 s or exits by itself.
 */
import { spawn } from 'node:child_process'

export function runUntilKilled(script: string, args: string[], opts: { cwd: string; killAfterMs: number }, onLine: (tag: string, arg: string, line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', script, ...args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let buf = ''
    let stderr = ''
    let killed = false
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the child did not start within 60 s: ${stderr}`))
    }, 60_000)
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()))
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        const [tag = '', arg = ''] = line.split(' ')
        if (tag === 'ready' && !killed) {
          killed = true
          clearTimeout(timer)
          setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs)
        }
        onLine(tag, arg, line)
      }
    })
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL' && killed) resolve()
      else reject(new Error(`the child exited with ${code ?? signal} before it was killed: ${stderr}`))
    })
  })
}
