// Run with NODE_UNIQUE_ID=1: Node's cluster setup sends {"cmd":"NODE_CLUSTER","act":"online",
// "seq":0} before this line runs (docs/node-cluster-protocol.md §2.3).
const cluster = require('cluster');
process.send({ isWorker: cluster.isWorker, id: cluster.worker && cluster.worker.id });
