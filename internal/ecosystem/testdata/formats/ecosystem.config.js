// The usual shape: module.exports = {apps: [...], deploy: {...}}.
const path = require('path');

module.exports = {
  apps: [
    {
      name: 'web',
      script: './app.js',
      instances: 2,
      env: { NODE_ENV: 'development', PORT: 3000 },
      env_production: { NODE_ENV: 'production' },
    },
    {
      name: 'worker',
      script: path.join(__dirname, 'worker.py'),
      args: '--queue "high prio"',
    },
  ],
  deploy: {
    production: { user: 'deploy', host: 'example.com', ref: 'origin/main' },
  },
};
