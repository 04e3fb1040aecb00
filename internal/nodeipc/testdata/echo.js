// Echoes every message back with its length, so that large messages cross the channel in
// both directions.
process.on('message', (m) => {
  process.send({ len: typeof m === 'string' ? m.length : -1, echo: m });
});
