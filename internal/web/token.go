// Package web is corral's dashboard: the page and its assets (embedded, so the binary serves
// them offline), the token that guards it, the checks every request passes, and the in-memory
// history the charts start from. The daemon mounts it on its opt-in HTTP listener
// (internal/daemon/web.go); docs/web.md is the contract.
package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/corral-pm/corral/internal/safefs"
)

// TokenFile is the token's file name in CORRAL_HOME.
const TokenFile = "web-token"

// tokenLen is the token's length in the file and on the wire: 32 random bytes, hex.
const tokenLen = 64

// LoadToken reads the dashboard's token from home, creating it (32 bytes from crypto/rand,
// mode 0600) when there is none. Like the secrets key, the file is read without following a
// link and only if it is this user's, a regular file, closed to group and others, and exactly
// tokenLen hex bytes: a token someone else wrote or can read would let them drive the apps.
// A damaged file is an error with the fix, never silently replaced.
func LoadToken(home string) (string, error) {
	path := filepath.Join(home, TokenFile)
	tok, err := readToken(path)
	if errors.Is(err, fs.ErrNotExist) {
		tok, err = createToken(path)
	}
	return tok, err
}

func readToken(path string) (string, error) {
	f, err := safefs.Open(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("web token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("web token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("web token %s is not a regular file (%s): remove it to have a new token made", path, fi.Mode().Type())
	}
	if owner := safefs.Owner(fi); int(owner) != os.Geteuid() {
		return "", &safefs.Error{Path: path, Msg: fmt.Sprintf("web token %s is owned by %s, not by %s who runs corral: whoever made it could drive the dashboard; remove it to have a new token made",
			path, safefs.Who(owner), safefs.Me())}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("web token %s has mode %#o: group and others must have no access; remove it to have a new token made (the old one may have been read)", path, perm)
	}
	if fi.Size() != tokenLen {
		return "", tokenDamaged(path, fi.Size())
	}
	buf := make([]byte, tokenLen+1) // one spare byte detects a file that grew meanwhile
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", fmt.Errorf("web token: read %s: %w", path, err)
	}
	if n != tokenLen {
		return "", tokenDamaged(path, int64(n))
	}
	if _, err := hex.DecodeString(string(buf[:n])); err != nil {
		return "", fmt.Errorf("web token %s is not hex: it is damaged; remove it to have a new token made", path)
	}
	return string(buf[:n]), nil
}

func tokenDamaged(path string, size int64) error {
	return fmt.Errorf("web token %s is %d bytes, want %d: it is damaged; remove it to have a new token made", path, size, tokenLen)
}

// createToken writes a new token to a temporary file and links it into place: link(2) never
// replaces a token another process made meanwhile (then that one is read), and the file
// appears whole or not at all.
func createToken(path string) (string, error) {
	b := make([]byte, tokenLen/2)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+TokenFile+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("web token: create: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(tok)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("web token: write: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readToken(path)
		}
		return "", fmt.Errorf("web token: create %s: %w", path, err)
	}
	return tok, nil
}
