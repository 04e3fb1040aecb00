package worker_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/corral-pm/corral/worker"
)

// A complete server: one worker of a corral cluster, a socket-activated systemd service, or a
// plain program, unchanged. It returns from main once it has drained.
func ExampleServeHTTP() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from pid %d\n", os.Getpid())
	})
	ln, err := worker.Listen("tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	// With wait_ready: true, corral waits for this before it stops the previous worker
	// during a reload. Warm caches, connect to databases, ... first.
	if err := worker.Ready(); err != nil {
		log.Print(err)
	}
	srv := &http.Server{Handler: mux}
	if err := worker.ServeHTTP(srv, ln); err != nil {
		log.Fatal(err)
	}
	// Drained: requests in flight have finished, keep-alive clients have moved on.
}

// Listen outside corral is net.Listen, so the same code runs under `go run`.
func ExampleListen() {
	ln, err := worker.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello
}

// A server that is not HTTP watches Shutdown itself: under corral, its listener is closed when
// the worker is asked to stop, so Accept fails; the work in progress should end within
// kill_timeout.
func ExampleShutdown() {
	ln, err := worker.Listen("tcp", ":7000")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		<-worker.Shutdown() // corral's disconnect, SIGINT or SIGTERM
		ln.Close()          // outside corral, the program closes it itself
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-worker.Shutdown():
				return // stopping
			default:
				log.Fatal(err)
			}
		}
		go func() {
			defer c.Close()
			line, _ := bufio.NewReader(c).ReadString('\n')
			fmt.Fprint(c, line) // echo
		}()
	}
}

// Context is cancelled when the worker should stop; background work can follow it.
func ExampleContext() {
	ctx := worker.Context()
	go func() {
		<-ctx.Done()
		log.Print("stopping background jobs")
	}()
}

func ExampleInCluster() {
	if worker.InCluster() {
		fmt.Println("a corral cluster worker")
	} else {
		fmt.Println("standalone")
	}
	// Output: standalone
}

// Several listeners, one drain: both ServeHTTP calls return once the server has drained.
func ExampleServeHTTP_twoListeners() {
	srv := &http.Server{Handler: http.NotFoundHandler()}
	public, err := worker.Listen("tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	local, err := net.Listen("unix", "/run/app/admin.sock") // not shared with other workers
	if err != nil {
		log.Fatal(err)
	}
	go worker.ServeHTTP(srv, local)
	if err := worker.ServeHTTP(srv, public, worker.DrainGrace(2*time.Second)); err != nil {
		log.Fatal(err)
	}
}
