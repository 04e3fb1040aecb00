// Package watch restarts apps when their files change (PM2's watch / ignore_watch /
// watch_delay): a recursive fsnotify watcher that skips ignored paths and coalesces bursts of
// events (an editor saving, a build writing many files) into one change.
package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// MinDelay coalesces the events of one save even when watch_delay is 0.
const MinDelay = 100 * time.Millisecond

// Options say what to watch.
type Options struct {
	Paths  []string // absolute files or directories; directories are watched recursively
	Ignore []string // glob patterns matched against each path component and against the path relative to its watched root
	Delay  time.Duration
}

// Watcher calls onChange after files under its paths change.
type Watcher struct {
	fs       *fsnotify.Watcher
	opt      Options
	onChange func(path string)
	done     chan struct{}
	wg       sync.WaitGroup
}

// New starts watching. onChange runs on the watcher's goroutine, once per burst of changes.
func New(opt Options, onChange func(path string)) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if opt.Delay < MinDelay {
		opt.Delay = MinDelay
	}
	w := &Watcher{fs: fw, opt: opt, onChange: onChange, done: make(chan struct{})}
	for _, root := range opt.Paths {
		if err := w.addTree(root); err != nil {
			fw.Close()
			return nil, err
		}
	}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// Close stops watching.
func (w *Watcher) Close() error {
	select {
	case <-w.done:
		return nil
	default:
	}
	close(w.done)
	err := w.fs.Close()
	w.wg.Wait()
	return err
}

func (w *Watcher) addTree(root string) error {
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	if !st.IsDir() {
		return w.fs.Add(root)
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil // vanished or unreadable: nothing to watch there
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && w.ignored(path) {
			return filepath.SkipDir
		}
		if err := w.fs.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}

// ignored reports whether path matches an ignore pattern.
func (w *Watcher) ignored(path string) bool {
	for _, root := range w.opt.Paths {
		rel, err := filepath.Rel(root, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, pat := range w.opt.Ignore {
			if ok, _ := filepath.Match(pat, rel); ok {
				return true
			}
			for _, part := range strings.Split(rel, string(filepath.Separator)) {
				if ok, _ := filepath.Match(pat, part); ok {
					return true
				}
			}
		}
	}
	return false
}

func (w *Watcher) loop() {
	defer w.wg.Done()
	var timer *time.Timer
	var fire <-chan time.Time
	last := ""
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if w.ignored(ev.Name) || ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Op.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = w.addTree(ev.Name)
				}
			}
			last = ev.Name
			if timer == nil {
				timer = time.NewTimer(w.opt.Delay)
			} else {
				timer.Reset(w.opt.Delay)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			w.onChange(last)
		case _, ok := <-w.fs.Errors:
			if !ok {
				return
			}
		}
	}
}
