/**
 * `kairo-gw lora`: field tools for the LoRa link.
 *   probe <device>   what firmware answers on a serial port (and whether it takes a config)
 *   airtime          time on air, bit rate and duty-cycle budget of a radio setting
 *   emulate          the companion-MCU emulator on PTYs, for the lab and for trying the gateway
 */
import type { Command } from 'commander'
import { probeLoRa, type ProbeResult } from '../../../drivers/lora/probe.js'
import { DEFAULT_RADIO, phyLimitBytesPerSecond, radioConfigProblems, regionProblems, REGIONS, timeOnAirMs, LORA_PHY_MTU, type RadioConfig } from '../../../drivers/lora/radio.js'
import { loraBitrate } from '../../../drivers/lora/link.js'
import { ConfigRejectedError } from '../../core/errors.js'
import { UsageError } from '../errors.js'
import { printJson } from '../output.js'
import { intIn, parseBandwidthKhz, parseCodingRate, parseFrequencyMhz, parsePositiveMs, parseSpreadingFactor } from '../options.js'

interface RadioOpts {
  freq?: number
  bw?: number
  sf?: number
  cr?: number
  power?: number
  sync?: number
  preamble?: number
}

function addRadioOptions(cmd: Command): Command {
  return cmd
    .option('--freq <MHz>', `centre frequency in MHz (default ${DEFAULT_RADIO.frequencyHz / 1e6})`, parseFrequencyMhz)
    .option('--bw <kHz>', `bandwidth in kHz (default ${DEFAULT_RADIO.bandwidthHz / 1000})`, parseBandwidthKhz)
    .option('--sf <n>', `spreading factor 5-12 (default ${DEFAULT_RADIO.spreadingFactor})`, parseSpreadingFactor)
    .option('--cr <4/n>', `coding rate 4/5-4/8 (default 4/${DEFAULT_RADIO.codingRate})`, parseCodingRate)
    .option('--power <dBm>', `TX power in dBm (default ${DEFAULT_RADIO.txPowerDbm})`, intIn(-9, 22, 'a TX power in dBm'))
    .option('--sync <byte>', `sync word 0-255 (default 0x${DEFAULT_RADIO.syncWord.toString(16)})`, intIn(0, 255, 'a sync word'))
    .option('--preamble <symbols>', `preamble length in symbols (default ${DEFAULT_RADIO.preambleSymbols})`, intIn(6, 65_535, 'a preamble length'))
}

function radioFrom(o: RadioOpts): Partial<RadioConfig> {
  const r: Partial<RadioConfig> = {}
  if (o.freq !== undefined) r.frequencyHz = o.freq
  if (o.bw !== undefined) r.bandwidthHz = o.bw
  if (o.sf !== undefined) r.spreadingFactor = o.sf
  if (o.cr !== undefined) r.codingRate = o.cr
  if (o.power !== undefined) r.txPowerDbm = o.power
  if (o.sync !== undefined) r.syncWord = o.sync
  if (o.preamble !== undefined) r.preambleSymbols = o.preamble
  return r
}

function hasRadio(o: RadioOpts): boolean {
  return Object.keys(radioFrom(o)).length > 0
}

function parseBackend(value: string): 'firmware-bridge' | 'rnode' {
  if (value === 'firmware-bridge' || value === 'fb') return 'firmware-bridge'
  if (value === 'rnode') return 'rnode'
  throw new UsageError(`--backend ${JSON.stringify(value)}: use firmware-bridge (our firmware) or rnode (RNode firmware, KISS)`)
}

function describeRadio(c: RadioConfig): string {
  return `${(c.frequencyHz / 1e6).toFixed(3)} MHz, BW ${c.bandwidthHz / 1000} kHz, SF${c.spreadingFactor}, CR 4/${c.codingRate}, ${c.txPowerDbm} dBm, sync 0x${c.syncWord.toString(16)}, preamble ${c.preambleSymbols}`
}

function printProbe(r: ProbeResult): void {
  const d = r.device
  const lines = [
    `device     ${r.path}`,
    `firmware   ${d.firmware} ${d.version} (${r.backend})`,
    `radio MTU  ${d.mtu} bytes per frame, ${d.queueDepth} frame(s) queued on the device`,
    `LBT        ${d.channelActivity ? 'the firmware reports channel activity (listen before talk on)' : 'no channel activity reports (the firmware does its own CSMA, if any)'}`,
  ]
  if (r.configured !== null) lines.push(`config     accepted: ${describeRadio(r.configured)}`)
  const errors = r.stats.errors as Record<string, number> | undefined
  const bad = errors === undefined ? 0 : Object.values(errors).reduce((a, b) => a + b, 0)
  lines.push(`line       ${String(r.stats.framesIn)} frames in, ${String(r.stats.framesOut)} out, ${bad} bad (${r.ms} ms)`)
  process.stdout.write(lines.join('\n') + '\n')
}

export function registerLora(program: Command): void {
  const lora = program.command('lora').description('LoRa tools: probe a companion MCU, compute airtime, run the emulator')

  addRadioOptions(
    lora
      .command('probe')
      .description('ask the companion MCU on a serial port what it is; with radio options, also whether it accepts that configuration')
      .argument('<device>', 'serial device, e.g. /dev/ttyACM0 or /dev/serial/by-id/...')
      .option('--backend <name>', 'firmware-bridge (kairo firmware) or rnode (RNode firmware)', 'firmware-bridge')
      .option('--baud <rate>', 'serial speed', intIn(1200, 4_000_000, 'a baud rate'), 115_200)
      .option('--timeout <ms>', 'give up after this long', parsePositiveMs, 5000)
      .option('--json', 'print one JSON object', false),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw lora probe /dev/ttyACM0
  $ kairo-gw lora probe /dev/ttyUSB0 --backend rnode --json
  $ kairo-gw lora probe /dev/ttyACM0 --freq 868.1 --sf 12 --bw 125   # does the firmware take it?

The radio is not switched on. Exit 3 when nothing answers, 1 when the firmware refuses the
configuration (the error names the field).`,
    )
    .action(async (device: string, opts: RadioOpts & { backend: string; baud: number; timeout: number; json: boolean }) => {
      const backend = parseBackend(opts.backend)
      const result = await probeLoRa({ path: device, backend, baudRate: opts.baud, timeoutMs: opts.timeout, ...(hasRadio(opts) && { radio: radioFrom(opts) }) })
      if (opts.json) printJson({ ok: true, ...result })
      else printProbe(result)
    })

  addRadioOptions(
    lora
      .command('airtime')
      .description('time on air of one LoRa frame (Semtech formula), the bit rate, and what a duty cycle allows')
      .option('--bytes <n>', `payload bytes of the frame (default ${LORA_PHY_MTU})`, intIn(1, 255, 'a payload size in bytes'), LORA_PHY_MTU)
      .option('--region <name>', `regulatory region: ${Object.keys(REGIONS).join(', ')}`, 'EU868')
      .option('--json', 'print one JSON object', false),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw lora airtime --sf 7                 # a full 255-byte frame at SF7/BW125
  $ kairo-gw lora airtime --sf 12 --bytes 51 --region EU868 --json`,
    )
    .action((opts: RadioOpts & { bytes: number; region: string; json: boolean }) => {
      const region = REGIONS[opts.region]
      if (region === undefined) throw new UsageError(`--region ${JSON.stringify(opts.region)}: known regions are ${Object.keys(REGIONS).join(', ')}`)
      const cfg: RadioConfig = { ...DEFAULT_RADIO, ...radioFrom(opts) }
      const problems = radioConfigProblems(cfg)
      if (problems.length > 0) throw new ConfigRejectedError(problems.map((p) => p.message).join('; '), { field: `radio.${problems[0]!.field}` })
      const ms = timeOnAirMs(cfg, opts.bytes)
      const budgetMs = region.dutyCycle === null ? null : region.dutyCycle * 3_600_000
      const out = {
        radio: cfg,
        bytes: opts.bytes,
        airtime_ms: Number(ms.toFixed(3)),
        bitrate_bps: loraBitrate(cfg),
        phy_limit_bytes_per_s: Number(phyLimitBytesPerSecond(cfg).toFixed(1)),
        region: region.name,
        duty_cycle: region.dutyCycle,
        frames_per_hour: budgetMs === null ? null : Math.floor(budgetMs / ms),
        dwell_ok: region.maxDwellMs === null || ms <= region.maxDwellMs,
        region_problems: regionProblems(cfg, region).map((p) => p.message),
      }
      if (opts.json) return printJson(out)
      const lines = [
        `radio        ${describeRadio(cfg)}`,
        `airtime      ${ms.toFixed(1)} ms for ${opts.bytes} bytes`,
        `bit rate     ${out.bitrate_bps} bit/s nominal; ${out.phy_limit_bytes_per_s} B/s with back-to-back full frames`,
        `${region.name.padEnd(12)} ${region.dutyCycle === null ? 'no duty cycle' : `${region.dutyCycle * 100} % duty cycle: ${out.frames_per_hour} such frames per hour`}${region.maxDwellMs === null ? '' : `; dwell time ${region.maxDwellMs} ms: ${out.dwell_ok ? 'ok' : 'TOO LONG, use a lower SF or fewer bytes'}`}`,
        ...out.region_problems.map((p) => `warning      ${p}`),
      ]
      process.stdout.write(lines.join('\n') + '\n')
    })

  lora
    .command('emulate')
    .description('run the companion-MCU emulator: emulated LoRa MCUs on PTYs, one shared seeded radio medium')
    .requiredOption('--config <file>', 'emulator config (JSON): radios, their PTYs and protocols, the topology')
    .option('--log <format>', 'event log on stdout: text, json or none', 'text')
    .addHelpText(
      'after',
      `
A config for two gateways on socat PTY pairs (see docs/firmware-bridge.md, "The emulator"):
  $ socat pty,raw,echo=0,link=/tmp/a-host pty,raw,echo=0,link=/tmp/a-mcu &
  $ socat pty,raw,echo=0,link=/tmp/b-host pty,raw,echo=0,link=/tmp/b-mcu &
  $ cat lab.json
  { "seed": 1, "timeScale": 1, "region": "EU868",
    "radios": [ { "name": "a", "tty": "/tmp/a-mcu", "protocol": "firmware-bridge" },
                { "name": "b", "tty": "/tmp/b-mcu", "protocol": "rnode" } ] }
  $ kairo-gw lora emulate --config lab.json
  $ kairo-gw lora probe /tmp/a-host                    # in another shell
Stops on SIGTERM or Ctrl-C.`,
    )
    .action(async (opts: { config: string; log: string }) => {
      const { main } = await import('../../../firmware-bridge/emulator/main.js')
      const code = await main(['--config', opts.config, '--log', opts.log])
      if (code !== 0) process.exitCode = code
    })
}
