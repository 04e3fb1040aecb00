package cluster

import _ "embed"

// WorkerPreload is the script the daemon loads into every Node cluster worker with --require
// (see worker_preload.js): it makes a draining worker close keep-alive connections gracefully,
// so a reload drops no request of keep-alive clients either.
//
//go:embed worker_preload.js
var WorkerPreload []byte
