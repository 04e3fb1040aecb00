// Required by ../ecosystem.config.js with a relative path and no extension.
const base = require('./base.json').port;

exports.portFor = (name) => base + name.length;
