// Says it is ready after READY_DELAY ms (never, when READY_DELAY is "never").
console.log('booting');
if (process.env.READY_DELAY !== 'never') {
  setTimeout(() => { console.log('sending ready'); process.send('ready'); }, Number(process.env.READY_DELAY || 0));
}
setInterval(() => {}, 1000);
