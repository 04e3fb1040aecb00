package main

import "net"

// listen opens the app's listening socket. It is the one place that does, so that corral's
// worker package (worker.Listen) can take its place in one edit.
func listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
