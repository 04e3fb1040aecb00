// Stops on the 'shutdown' IPC message; ignores SIGINT so only the message can stop it nicely.
process.on('message', (m) => {
  console.log(`message: ${JSON.stringify(m)}`);
  if (m === 'shutdown') {
    console.log('got shutdown message');
    process.exit(0);
  }
});
process.on('SIGINT', () => console.log('got SIGINT'));
setInterval(() => {}, 1000);
