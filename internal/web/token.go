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
	"io/fs"
	"path/filepath"

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
	b, err := safefs.ReadPrivate(path, tokenLen)
	if err != nil {
		return "", tokenError(path, err)
	}
	if _, err := hex.DecodeString(string(b)); err != nil {
		return "", fmt.Errorf("web token %s is not hex: it is damaged; remove it to have a new token made", path)
	}
	return string(b), nil
}

func createToken(path string) (string, error) {
	b := make([]byte, tokenLen/2)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	err := safefs.CreatePrivate(path, []byte(tok))
	if errors.Is(err, fs.ErrExist) {
		return readToken(path) // another process made one first
	}
	if err != nil {
		return "", tokenError(path, err)
	}
	return tok, nil
}

// tokenError words what ReadPrivate or CreatePrivate found: every refusal ends with the fix,
// which for a token is always to have a new one made.
func tokenError(path string, err error) error {
	var pe *safefs.PrivateError
	if !errors.As(err, &pe) { // from opening it
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("web token: %w", err)
	}
	switch pe.Problem {
	case safefs.NotRegular:
		return fmt.Errorf("web token %s is not a regular file (%s): remove it to have a new token made", path, pe.Info.Mode().Type())
	case safefs.NotMine:
		return &safefs.Error{Path: path, Msg: fmt.Sprintf("web token %s is owned by %s, not by %s who runs corral: whoever made it could drive the dashboard; remove it to have a new token made",
			path, safefs.Who(safefs.Owner(pe.Info)), safefs.Me())}
	case safefs.OpenToOthers:
		return fmt.Errorf("web token %s has mode %#o: group and others must have no access; remove it to have a new token made (the old one may have been read)", path, pe.Info.Mode().Perm())
	case safefs.WrongSize:
		return fmt.Errorf("web token %s is %d bytes, want %d: it is damaged; remove it to have a new token made", path, pe.Size, tokenLen)
	case safefs.ReadFailed:
		return fmt.Errorf("web token: read %s: %w", path, err)
	case safefs.TempFailed:
		return fmt.Errorf("web token: create: %w", err)
	case safefs.WriteFailed:
		return fmt.Errorf("web token: write: %w", err)
	case safefs.LinkFailed:
		return fmt.Errorf("web token: create %s: %w", path, err)
	}
	return fmt.Errorf("web token: %w", err) // StatFailed
}
