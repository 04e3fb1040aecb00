const result = require('dotenv').config({ path: 'config.env' });

// The file may change process.env itself too; the final process.env is what apps inherit.
process.env.COMPUTED = 'parsed ' + Object.keys(result.parsed).length;
delete process.env.REMOVE_ME;

module.exports = {
  apps: [{ name: 'api', script: 'app.js', env: { DB_HOST: process.env.DB_HOST } }],
};
