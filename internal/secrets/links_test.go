package secrets

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"
)

// TestKeyFileNotThroughLink: secret.key is never read through a symbolic link (a link could
// make any 32-byte file the key, one its maker knows), nor used when another user owns it.
func TestKeyFileNotThroughLink(t *testing.T) {
	known := filepath.Join(t.TempDir(), "known.key")
	key := make([]byte, KeySize)
	rand.Read(key)
	if err := os.WriteFile(known, key, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.Symlink(known, path); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSealer(path); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("OpenSealer through a link: %v, want a refusal", err)
	}
	if got, _ := os.ReadFile(known); !bytes.Equal(got, key) {
		t.Error("the link's target was changed")
	}

	testutil.RequireRoot(t)
	os.Remove(path)
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, testutil.Nobody, testutil.Nobody); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSealer(path)
	if err == nil || !strings.Contains(err.Error(), "owned by nobody (uid 65534)") || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenSealer with a key owned by nobody: %v, want a refusal naming the owner", err)
	}
}
