// The same ecosystem file PM2 users write: one worker per usable CPU core, cluster mode.
module.exports = {
  apps: [{
    name: 'hello',
    script: './server.js',
    instances: 'max',
    exec_mode: 'cluster',
    env: { PORT: 5000 },
  }],
};
