// Package buildinfo holds the version compiled into the binary.
package buildinfo

// Version is set at build time with -ldflags "-X github.com/corral-pm/corral/internal/buildinfo.Version=...".
// The CLI and the daemon compare it: a CLI talking to a daemon of another version says so.
var Version = "0.1.0-dev"
