// Writes raw lines that are not JSON straight onto the channel fd, then behaves.
const fs = require('fs');
fs.writeSync(3, '{bad json}\n');
fs.writeSync(3, '\n');
process.send('after-bad');
process.on('message', (m) => {
  if (m === 'ping') process.send('pong');
});
