package main

import (
	"os"
	"testing"
)

// rssKB reads a running process's resident memory through procStatus: this one has some.
func TestRSSKB(t *testing.T) {
	kb, err := rssKB(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if kb <= 0 {
		t.Errorf("VmRSS of a running test process: %d kB", kb)
	}
	if _, err := rssKB(1 << 30); err == nil {
		t.Error("a process that does not exist was read without an error")
	}
}
