// The deployment's ecosystem file, as PM2 users have it: one worker per core, cluster mode.
// DATABASE_URL and SESSION_SECRET come from the environment corral is started in.
module.exports = {
  apps: [{
    name: 'refapp-node',
    script: './server.js',
    instances: 'max',
    exec_mode: 'cluster',
    env: { PORT: 5000 },
  }],
};
