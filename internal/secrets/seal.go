package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/corral-pm/corral/internal/safefs"
)

// SealedPrefix starts every sealed value; "v1" names the format (AES-256-GCM, random
// 96-bit nonce, variable name as additional data) so that it can change later.
const SealedPrefix = "corral-sealed:v1:"

// KeySize is the size of a key file: an AES-256 key.
const KeySize = 32

// IsSealed reports whether v is a sealed value.
func IsSealed(v string) bool { return strings.HasPrefix(v, SealedPrefix) }

// Sealer encrypts the secret values of an environment so that the saved process list can
// hold the env needed to resurrect apps (DATABASE_URL, SESSION_SECRET...) without ever holding
// a secret in clear: the list is safe to cat, paste into an issue or back up without the key
// file. A Sealer is safe for concurrent use.
type Sealer struct {
	aead    cipher.AEAD
	keyPath string
}

// OpenSealer loads the key at keyPath, creating it if absent: KeySize bytes from
// crypto/rand, mode 0600, published atomically so that two processes starting at once agree
// on a single key (the loser of the race reads the winner's key). Its directory is created
// (0700) if needed.
//
// A key file that group or others can access, or whose size is not KeySize, is an error that
// says how to fix it: a readable key would defeat sealing, and a damaged key must not be
// silently replaced, since values sealed with the old key could then never be opened.
func OpenSealer(keyPath string) (*Sealer, error) {
	key, err := readKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(keyPath)
	}
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: key file %s: %w", keyPath, err)
	}
	// NewGCMWithRandomNonce prepends a fresh random nonce to each ciphertext: the sealed
	// form is nonce||ciphertext||tag, and nonce reuse is impossible by construction.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: key file %s: %w", keyPath, err)
	}
	return &Sealer{aead: aead, keyPath: keyPath}, nil
}

// readKey reads and checks an existing key file. Checks are made on the open file, so that
// what is checked is what is read. The file is opened without following a symbolic link, and
// must belong to this user: a key someone else wrote (or could read) would let them open
// every sealed value, and a link could make corral use any file as its key.
func readKey(keyPath string) ([]byte, error) {
	f, err := safefs.Open(keyPath, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("secrets: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets: key file %s is not a regular file (%s)", keyPath, fi.Mode().Type())
	}
	if owner := safefs.Owner(fi); int(owner) != os.Geteuid() {
		return nil, &safefs.Error{Path: keyPath, Msg: fmt.Sprintf("secrets: key file %s is owned by %s, not by %s who runs corral: whoever made it can open every sealed value; move it away to have a new key created (values sealed with it must then be set again)",
			keyPath, safefs.Who(owner), safefs.Me())}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets: key file %s has mode %#o: group and others must have no access; fix it with: chmod 600 %s", keyPath, perm, keyPath)
	}
	if fi.Size() != KeySize {
		return nil, keySizeError(keyPath, fi.Size())
	}
	key := make([]byte, KeySize+1) // one spare byte detects a file that grew meanwhile
	n, err := io.ReadFull(f, key)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("secrets: read key file: %w", err)
	}
	if n != KeySize {
		return nil, keySizeError(keyPath, int64(n))
	}
	return key[:KeySize], nil
}

func keySizeError(keyPath string, size int64) error {
	return fmt.Errorf("secrets: key file %s is %d bytes, want %d: it is damaged or not a corral key; "+
		"restore it from a backup, or move it away to have a new key created "+
		"(values sealed with the old key can then not be opened and must be set again)",
		keyPath, size, KeySize)
}

// createKey writes a new random key to a temporary file and links it to keyPath. link(2)
// fails if keyPath exists, so unlike rename it never replaces a key another process has just
// created; the file appears complete or not at all.
func createKey(keyPath string) ([]byte, error) {
	dir := filepath.Dir(keyPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: create key directory: %w", err)
	}
	key := make([]byte, KeySize)
	rand.Read(key) // never fails (crypto/rand crashes the program instead)

	f, err := os.CreateTemp(dir, "."+filepath.Base(keyPath)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("secrets: create key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful link, keyPath keeps the file
	err = f.Chmod(0o600) // CreateTemp uses 0600 already; make it independent of that
	if err == nil {
		_, err = f.Write(key)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: write key file: %w", err)
	}
	if err := os.Link(tmp, keyPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(keyPath) // another process created it first
		}
		return nil, fmt.Errorf("secrets: create key file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("secrets: create key file: %w", err)
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// KeyPath returns the path of the key file the Sealer was opened with.
func (s *Sealer) KeyPath() string { return s.keyPath }

// SealEnv returns a copy of env where every value that MaskValue would change is replaced by
// SealedPrefix + base64(nonce||AES-256-GCM ciphertext), with the variable name as additional
// data, so that a sealed value moved to another variable fails to open. A value that already
// starts with SealedPrefix is sealed again, so that OpenEnv gives it back exactly instead of
// trying to open it. A nil env gives nil.
func (s *Sealer) SealEnv(env map[string]string) map[string]string {
	if env == nil {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		if MaskValue(k, v) != v || IsSealed(v) {
			v = SealedPrefix + base64.StdEncoding.EncodeToString(s.aead.Seal(nil, nil, []byte(v), []byte(k)))
		}
		out[k] = v
	}
	return out
}

// OpenEnv reverses SealEnv: it returns a copy of env with sealed values opened; other values
// pass through. If any value fails to open, the error names every such variable (sorted) and
// no map is returned: resurrecting an app with a sealed blob in place of its password would
// fail later and further from the cause.
func (s *Sealer) OpenEnv(env map[string]string) (map[string]string, error) {
	if env == nil {
		return nil, nil
	}
	out := make(map[string]string, len(env))
	var bad []string
	for k, v := range env {
		if !IsSealed(v) {
			out[k] = v
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(v[len(SealedPrefix):])
		if err == nil {
			raw, err = s.aead.Open(nil, nil, raw, []byte(k))
		}
		if err != nil {
			bad = append(bad, k)
			continue
		}
		out[k] = string(raw)
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("secrets: cannot open the sealed value of %s: the key file %s may have changed since the values were sealed (or the values were altered)",
			strings.Join(bad, ", "), s.keyPath)
	}
	return out, nil
}
