// Opens an EmulatedLoRaLink in `dir`, prints "up", then waits to be killed (test/lora/emulated.test.ts).
import { EmulatedLoRaLink } from '../../drivers/lora/emulated.js'

const link = new EmulatedLoRaLink({ name: 'lora0', dir: process.argv[2]! })
await link.open()
process.stdout.write('up\n')
setInterval(() => {}, 1000)
