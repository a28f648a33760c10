'use strict'
// kairo-native: the compiled addon (src/kairo_native.c), built by `node-gyp rebuild` when npm
// installs this package (the root package.json depends on it as file:appliance/native).
// Each export is assigned by name so that ES modules can import them by name.
const binding = require('./build/Release/kairo_native.node')

exports.peerCred = binding.peerCred
exports.notify = binding.notify
