var EventEmitter = require('events').EventEmitter;

var addon = require('../build/Release/cap.node');

addon.Cap.prototype.__proto__ = EventEmitter.prototype;
addon.Cap.findDevice = addon.findDevice;
addon.Cap.deviceList = addon.deviceList;

// kairo: upstream also exported `decoders` (lib/Decoders.js, protocol decoders); kairo-gw
// parses its own frames, so they are not vendored.

module.exports = addon;
