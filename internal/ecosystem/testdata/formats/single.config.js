module.exports = { name: 'web', script: 'app.js' };
