package sdnotify

import (
	"path/filepath"
	"testing"
	"time"
)

func TestNotifyRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.sock")
	got := make(chan map[string]string, 4)
	r, err := Listen(path, func(s map[string]string) { got <- s })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if ok, err := Notify("READY=1\nSTATUS=serving"); !ok || err != nil {
		t.Fatalf("Notify = %v, %v", ok, err)
	}
	select {
	case s := <-got:
		if s["READY"] != "1" || s["STATUS"] != "serving" {
			t.Fatalf("state %v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}
}

func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if ok, err := Notify("READY=1"); ok || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, %v", ok, err)
	}
}
