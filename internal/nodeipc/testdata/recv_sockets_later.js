// Does not read its channel until the file named by GO_FILE exists, so that the handles sent
// meanwhile pile up in the socket; then answers each client on its own socket with the number
// its message carried.
const fs = require('fs');
const pause = new Int32Array(new SharedArrayBuffer(4));
while (!fs.existsSync(process.env.GO_FILE)) Atomics.wait(pause, 0, 0, 10);
process.on('message', (m, sock) => {
  if (m && typeof m.n === 'number' && sock) {
    sock.end(m.n + '\n');
  } else {
    process.send({ unexpected: m, hasSock: !!sock });
  }
});
