// An unmodified Express app (express from npm, installed by the test setup).
const express = require('express');
const app = express();
app.get('/', (req, res) => res.json({ pid: process.pid, instance: process.env.NODE_APP_INSTANCE }));
app.listen(Number(process.env.PORT), () => console.log('express listening'));
