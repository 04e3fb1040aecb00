// An HTTPS server: its queryServer carries TLS ticket keys that the primary must echo.
const https = require('https');
const fs = require('fs');
const opts = { key: fs.readFileSync(process.env.TLS_KEY), cert: fs.readFileSync(process.env.TLS_CERT) };
https.createServer(opts, (req, res) => res.end(`tls ${process.pid}\n`)).listen(Number(process.env.PORT), () => console.log('tls listening'));
