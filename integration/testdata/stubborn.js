// Ignores SIGINT (logging it) and starts a child, to check SIGKILL after kill_timeout and that
// the whole process group goes.
const { spawn } = require('child_process');
const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
console.log(`child ${child.pid}`);
process.on('SIGINT', () => console.log('got SIGINT, ignoring it'));
setInterval(() => {}, 1000);
