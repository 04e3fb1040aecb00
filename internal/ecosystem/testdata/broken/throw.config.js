const port = process.env.PORT;
if (!port) {
  throw new Error('PORT must be set');
}
module.exports = { apps: [{ script: 'app.js' }] };
