module.exports = [
  { name: 'web', script: 'app.js' },
  { name: 'worker', script: 'worker.py' },
];
