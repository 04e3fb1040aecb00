// A deliberately broken server for `corral verify`: it listens through corral's worker package
// but serves with plain http.Serve, and exits on SIGINT (corral's kill_signal) without closing
// its server, so the requests it is still answering are cut. Each answer takes 300 ms, so some
// are always in flight. (A Node app written the same way is safe: corral asks a Node worker to
// disconnect and waits for its connections before the signal; the worker package does that
// only for ServeHTTP, which this server does not call.)
package main

import (
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/corral-pm/corral/worker"
)

func main() {
	ln, err := worker.Listen("tcp", ":"+os.Getenv("PORT"))
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("ok\n"))
	}))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
	os.Exit(0)
}
