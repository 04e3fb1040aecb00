// A Go HTTP server written for corral's cluster mode with the worker package: as users write
// it. Each answer says which process served it. PORT is the port ("0": any, the same for every
// worker); READY_GATE, when set, names a file whose creation makes the server call
// worker.Ready (for wait_ready); ?delay=ms delays an answer; ?status=503 answers with that status.
// The worker whose NODE_APP_INSTANCE is SICK_INSTANCE answers /healthz with 503 until the file
// HEALED_IF names exists (for /readyz's per-worker checks).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/corral-pm/corral/worker"
)

func main() {
	ln, err := worker.Listen("tcp", ":"+os.Getenv("PORT"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s (cluster worker: %v)\n", ln.Addr(), worker.InCluster())

	if gate := os.Getenv("READY_GATE"); gate != "" {
		go func() {
			for {
				if _, err := os.Stat(gate); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			fmt.Println("ready")
			if err := worker.Ready(); err != nil {
				log.Print(err)
			}
		}()
	}

	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if ms, _ := strconv.Atoi(r.URL.Query().Get("delay")); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		if status, _ := strconv.Atoi(r.URL.Query().Get("status")); status > 0 {
			w.WriteHeader(status)
		} else if r.URL.Path == "/healthz" && sick() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{
			"pid":      os.Getpid(),
			"instance": os.Getenv("NODE_APP_INSTANCE"),
			"addr":     ln.Addr().String(),
		})
	})}
	err = worker.ServeHTTP(srv, ln)
	fmt.Printf("drained (%v)\n", err)
	if err != nil {
		os.Exit(1)
	}
}

// sick reports whether this worker answers /healthz with 503: it is the SICK_INSTANCE, and
// the HEALED_IF file does not exist (yet).
func sick() bool {
	if i := os.Getenv("SICK_INSTANCE"); i == "" || i != os.Getenv("NODE_APP_INSTANCE") {
		return false
	}
	if f := os.Getenv("HEALED_IF"); f != "" {
		if _, err := os.Stat(f); err == nil {
			return false
		}
	}
	return true
}
