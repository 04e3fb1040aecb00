// Sends a string and an object, then waits for "shutdown" from the daemon, acknowledges it
// and exits 0.
process.send('ready');
process.send({ type: 'stats', n: 1, s: 'h\u00e9llo \u20ac \u{1F600}' });
process.on('message', (m) => {
  if (m === 'shutdown') {
    process.send({ got: m }, () => process.exit(0));
  } else {
    process.send({ unexpected: m });
  }
});
