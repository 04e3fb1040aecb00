package cluster

import (
	"encoding/json"
	"net"
	"os"
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

// keptListener is a listening TCP socket on loopback as the keeper gives it back: an *os.File,
// with the spec it was declared as.
func keptListener(t *testing.T) (spec.Socket, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return spec.Socket{Name: spec.DefaultSocketName, Network: "tcp", Address: ln.Addr().String()}, f
}

func keptMeta(t *testing.T, i int, sp spec.Socket) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(listenMeta{Index: i, Spec: sp.String()})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Restore takes over kept sockets only when they are exactly the declared ones. Refusing them
// must close every file it was given and leave nothing open, wherever in the kept set the
// mismatch is found (map order): a refusal during a daemon's restart must not crash it, which
// it did while some of the declared sockets were not yet taken.
func TestSocketsRestore(t *testing.T) {
	for _, c := range []struct {
		name string
		// mangle spoils the kept set of two declared sockets, or leaves it whole (nil).
		mangle func(t *testing.T, kept map[string]json.RawMessage, files map[string]*os.File)
		ok     bool
	}{
		{name: "exactly the declared ones", ok: true},
		{name: "the second kept as another spec", mangle: func(t *testing.T, kept map[string]json.RawMessage, _ map[string]*os.File) {
			kept[listenKeptName(1)] = keptMeta(t, 1, spec.Socket{Name: "other", Network: "tcp", Address: "127.0.0.1:1"})
		}},
		{name: "the first under another name", mangle: func(t *testing.T, kept map[string]json.RawMessage, _ map[string]*os.File) {
			kept["listen:7"] = kept[listenKeptName(0)]
			delete(kept, listenKeptName(0))
		}},
		{name: "a file missing", mangle: func(t *testing.T, _ map[string]json.RawMessage, files map[string]*os.File) {
			files[listenKeptName(1)].Close()
			delete(files, listenKeptName(1))
		}},
		{name: "one kept socket fewer than declared", mangle: func(t *testing.T, kept map[string]json.RawMessage, files map[string]*os.File) {
			delete(kept, listenKeptName(1))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var specs []spec.Socket
			kept := map[string]json.RawMessage{}
			files := map[string]*os.File{}
			var given []*os.File
			for i := 0; i < 2; i++ {
				sp, f := keptListener(t)
				specs = append(specs, sp)
				kept[listenKeptName(i)] = keptMeta(t, i, sp)
				files[listenKeptName(i)] = f
				given = append(given, f)
			}
			if c.mangle != nil {
				c.mangle(t, kept, files)
			}
			s := NewSockets(specs)
			defer s.Close()
			err := s.Restore(kept, files)
			if c.ok != (err == nil) {
				t.Fatalf("Restore: %v, want success %v", err, c.ok)
			}
			for i, f := range given {
				if _, serr := f.Stat(); serr == nil {
					t.Errorf("kept file %d left open by Restore", i)
				}
			}
			if !c.ok {
				s.mu.Lock()
				taken := s.files
				s.mu.Unlock()
				if taken != nil {
					t.Errorf("a refused restore took %d sockets", len(taken))
				}
				return
			}
			dups, names, err := s.Files()
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, f := range dups {
					f.Close()
				}
			}()
			if len(dups) != 2 || names[0] != spec.DefaultSocketName {
				t.Fatalf("Files after Restore: %d files, names %v", len(dups), names)
			}
			// The restored sockets are the kept ones: the declared port still answers.
			conn, err := net.Dial("tcp", specs[0].Address)
			if err != nil {
				t.Fatalf("the restored socket of %s does not answer: %v", specs[0].Address, err)
			}
			conn.Close()
		})
	}
}
