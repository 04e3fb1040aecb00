// Receives a connected TCP socket with the user message "conn" and answers the client on it.
process.on('message', (m, sock) => {
  if (m === 'conn' && sock) {
    sock.end('hi from node\n');
    process.send('served');
  } else {
    process.send({ unexpected: m, hasSock: !!sock });
  }
});
