package cluster

import (
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkHandoff measures round-robin hand-off throughput through a Group: two fake workers
// that accept at once (ACK, write a byte, close, accepted:true), and clients that each open a
// new connection and read until the worker closes it. The figure to watch is conns/s.
func BenchmarkHandoff(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run("clients="+strconv.Itoa(clients), func(b *testing.B) {
			g := newTestGroup(b, "")
			w1 := newFake(b, g, 1, "a", fakeOpts{})
			w2 := newFake(b, g, 2, "b", fakeOpts{})
			w1.online()
			w2.online()
			port := w1.listen(0)
			w2.listen(0)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Int64
			b.ResetTimer()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						c, err := net.Dial("tcp", addr)
						if err != nil {
							failed.Add(1)
							continue
						}
						if n, err := io.Copy(io.Discard, c); err != nil || n == 0 {
							failed.Add(1)
						}
						c.Close()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
			if n := failed.Load(); n != 0 {
				b.Errorf("%d of %d connections failed", n, b.N)
			}
			if n := w1.served.Load() + w2.served.Load(); n != int64(b.N) {
				b.Errorf("workers served %d connections, want %d", n, b.N)
			}
		})
	}
}
