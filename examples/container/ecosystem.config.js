// The reference app (examples/refapp) as the container runs it: the prebuilt binary, one
// worker per CPU the container may use (the cgroup's CPU quota: Kubernetes' limits.cpu),
// behind port 5000. See docs/containers.md.
//
// The demo keeps its sessions in an SQLite file of the container; a real deployment shares
// them between pods with DATABASE_URL and SESSION_SECRET (PostgreSQL), given to the container
// as environment variables (examples/kubernetes/deployment.yaml shows where).
module.exports = {
  apps: [{
    name: 'refapp',
    script: '/app/refapp',
    interpreter: 'none',
    exec_mode: 'cluster',
    instances: 'max',
    env: { PORT: 5000, SQLITE_PATH: '/home/nonroot/refapp.db' },
    // /readyz asks this of every worker, on port 5000; the app pings its database there.
    health_url: '/api/health',
    // The app drains in-flight requests for up to 8 s on SIGINT; corral run's --grace (25 s)
    // bounds the whole stop.
    kill_timeout: 10000,
    listen_timeout: 10000,
    // A worker whose process tree passes 40% of the container's memory limit (cgroup
    // memory.max: Kubernetes' limits.memory) is replaced gracefully, before the OOM killer
    // takes the whole container down.
    max_memory_restart: '40%',
  }],
};
