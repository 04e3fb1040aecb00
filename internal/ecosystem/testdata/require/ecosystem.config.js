// Exercises the Node subset corral provides: path, os, fs, and relative modules.
const path = require('node:path');
const os = require('os');
const fs = require('fs');
const settings = require('./settings.json');
const { portFor } = require('./lib/ports');

const version = fs.readFileSync(path.join(__dirname, 'VERSION'), 'utf8').trim();

module.exports = {
  apps: [
    {
      name: settings.name,
      script: path.resolve(__dirname, 'app.js'),
      instances: os.cpus().length,
      exec_mode: 'fork',
      env: {
        PORT: portFor(settings.name),
        VERSION: version,
        HAS_NOPE: fs.existsSync(path.join(__dirname, 'nope.md')),
        BASENAME: path.basename(__filename, '.js'),
        EXT: path.extname('a/b.tar.gz'),
        DIR: path.dirname('/a/b/c/'),
        REL: path.relative('/a/b', '/a/c/d'),
        JOINED: path.join('a', '../b', 'c/'),
        ABS: path.isAbsolute('/x'),
        PLATFORM: process.platform,
        CWD: process.cwd(),
        HOME_SET: os.homedir() !== '',
        FEATURES: settings.features,
      },
    },
  ],
};
