'use strict'
// kairo-hw: the compiled addon (src/kairo_hw.c), built by `node-gyp rebuild` when npm installs
// this package (the root package.json depends on it as file:drivers/native).
// Each export is assigned by name so that ES modules can import them by name.
const binding = require('./build/Release/kairo_hw.node')

exports.gpioChipInfo = binding.gpioChipInfo
exports.gpioLineInfo = binding.gpioLineInfo
exports.gpioRequest = binding.gpioRequest
exports.gpioSetConfig = binding.gpioSetConfig
exports.gpioGet = binding.gpioGet
exports.gpioSet = binding.gpioSet
exports.gpioReadEvents = binding.gpioReadEvents
exports.closeFd = binding.closeFd
exports.rfkillOpen = binding.rfkillOpen
exports.rfkillRead = binding.rfkillRead
exports.rfkillWrite = binding.rfkillWrite
exports.watch = binding.watch
exports.unwatch = binding.unwatch
exports.watchRef = binding.watchRef
exports.linkSetUp = binding.linkSetUp
exports.linkGet = binding.linkGet
