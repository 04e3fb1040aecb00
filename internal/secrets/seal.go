package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

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

// readKey reads an existing key with safefs.ReadPrivate: a key someone else wrote (or could
// read) would let them open every sealed value, and a link could make corral use any file as
// its key.
func readKey(keyPath string) ([]byte, error) {
	key, err := safefs.ReadPrivate(keyPath, KeySize)
	if err != nil {
		return nil, keyError(keyPath, err)
	}
	return key, nil
}

// createKey makes a new random key with safefs.CreatePrivate, which never replaces a key
// another process has just created.
func createKey(keyPath string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return nil, fmt.Errorf("secrets: create key directory: %w", err)
	}
	key := make([]byte, KeySize)
	rand.Read(key) // never fails (crypto/rand crashes the program instead)
	err := safefs.CreatePrivate(keyPath, key)
	if errors.Is(err, fs.ErrExist) {
		return readKey(keyPath) // another process created it first
	}
	if err != nil {
		return nil, keyError(keyPath, err)
	}
	return key, nil
}

// keyError words what ReadPrivate or CreatePrivate found. A damaged key is never replaced for
// the user: values sealed with it could then never be opened.
func keyError(keyPath string, err error) error {
	var pe *safefs.PrivateError
	if !errors.As(err, &pe) { // from opening it
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("secrets: open key file: %w", err)
	}
	switch pe.Problem {
	case safefs.NotRegular:
		return fmt.Errorf("secrets: key file %s is not a regular file (%s)", keyPath, pe.Info.Mode().Type())
	case safefs.NotMine:
		return &safefs.Error{Path: keyPath, Msg: fmt.Sprintf("secrets: key file %s is owned by %s, not by %s who runs corral: whoever made it can open every sealed value; move it away to have a new key created (values sealed with it must then be set again)",
			keyPath, safefs.Who(safefs.Owner(pe.Info)), safefs.Me())}
	case safefs.OpenToOthers:
		return fmt.Errorf("secrets: key file %s has mode %#o: group and others must have no access; fix it with: chmod 600 %s", keyPath, pe.Info.Mode().Perm(), keyPath)
	case safefs.WrongSize:
		return fmt.Errorf("secrets: key file %s is %d bytes, want %d: it is damaged or not a corral key; "+
			"restore it from a backup, or move it away to have a new key created "+
			"(values sealed with the old key can then not be opened and must be set again)",
			keyPath, pe.Size, KeySize)
	case safefs.ReadFailed:
		return fmt.Errorf("secrets: read key file: %w", err)
	case safefs.TempFailed, safefs.LinkFailed:
		return fmt.Errorf("secrets: create key file: %w", err)
	case safefs.WriteFailed:
		return fmt.Errorf("secrets: write key file: %w", err)
	}
	return fmt.Errorf("secrets: key file: %w", err) // StatFailed
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
