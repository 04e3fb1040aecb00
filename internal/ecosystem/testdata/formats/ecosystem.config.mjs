// An ES module config: corral rewrites `export default` to module.exports.
const apps = [
  { name: 'web', script: './app.js' },
  { name: 'worker', script: './worker.py' },
];

export default { apps };
