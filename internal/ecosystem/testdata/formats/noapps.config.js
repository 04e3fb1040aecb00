module.exports = { services: [{ name: 'web', script: 'app.js' }] };
