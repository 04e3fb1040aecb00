// Sends the daemon a listening server, then a connected socket (to GO_PORT). Node holds every
// message sent after a handle until the daemon ACKs it (docs/node-cluster-protocol.md §4.3),
// so "after-server" arriving proves the first ACK was received.
const net = require('net');
const server = net.createServer();
server.listen(0, '127.0.0.1', () => {
  process.send({ port: server.address().port }, server);
  process.send('after-server');
  const sock = net.connect(+process.env.GO_PORT, '127.0.0.1', () => {
    process.send('sock', sock);
    process.send('after-sock');
  });
});
