// Grows by about 10 MB every 100 ms, for max_memory_restart.
const hog = [];
console.log('leaking');
setInterval(() => { hog.push(Buffer.alloc(10 * 1024 * 1024, 1)); }, 100);
