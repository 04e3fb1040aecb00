package container

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ignorePattern is one line of a .dockerignore file.
type ignorePattern struct {
	text      string
	re        *regexp.Regexp
	exception bool // a "!" line: re-includes what earlier lines excluded
}

// dockerignoreFor finds the exclusions BuildKit applies to a build: the file named after the
// Dockerfile plus ".dockerignore" beside it wins over the context's own .dockerignore.
func dockerignoreFor(dockerfile, contextDir string) (path string, patterns []ignorePattern, err error) {
	for _, p := range []string{dockerfile + ".dockerignore", filepath.Join(contextDir, ".dockerignore")} {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("reading %s: %w", p, err)
		}
		patterns, err := parseDockerignore(string(b))
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", p, err)
		}
		return p, patterns, nil
	}
	return "", nil, nil
}

// parseDockerignore reads the lines of a .dockerignore file as Docker does: "#" comments and
// blank lines skipped, each pattern cleaned as a slash path relative to the context root.
func parseDockerignore(text string) ([]ignorePattern, error) {
	var out []ignorePattern
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{text: line}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			p.exception, line = true, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/")
		re, err := globRegexp(line)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p.text, err)
		}
		p.re = re
		out = append(out, p)
	}
	return out, nil
}

// globRegexp translates a .dockerignore pattern: "*" and "?" stay within one path element,
// "[...]" is a character class, and a "**" element matches any number of elements, none
// included.
func globRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	elems := strings.Split(pattern, "/")
	for i, el := range elems {
		last := i == len(elems)-1
		if el == "**" {
			switch {
			case i == 0 && last:
				b.WriteString(".*")
			case i == 0:
				b.WriteString("(.*/)?") // the next element follows without a slash
			default:
				b.WriteString("(/.*)?")
			}
			continue
		}
		if i > 0 && !(i == 1 && elems[0] == "**") {
			b.WriteString("/")
		}
		for j := 0; j < len(el); j++ {
			switch c := el[j]; c {
			case '*':
				b.WriteString("[^/]*")
			case '?':
				b.WriteString("[^/]")
			case '[':
				end := strings.IndexByte(el[j:], ']')
				if end < 0 {
					return nil, fmt.Errorf("unterminated [")
				}
				class := el[j+1 : j+end]
				if rest, ok := strings.CutPrefix(class, "!"); ok {
					class = "^" + rest
				}
				b.WriteString("[" + class + "]")
				j += end
			case '\\':
				if j+1 < len(el) {
					j++
					b.WriteString(regexp.QuoteMeta(el[j : j+1]))
				}
			default:
				b.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// ignored reports whether the context path rel (slash-separated) is left out: the last
// pattern that matches it or one of its parent directories decides.
func ignored(patterns []ignorePattern, rel string) bool {
	out := false
	for _, p := range patterns {
		for path := rel; path != "."; path = filepath.Dir(path) {
			if p.re.MatchString(path) {
				out = !p.exception
				break
			}
		}
	}
	return out
}

// copyBuildContext copies what a build would send of contextDir into dst: everything the
// patterns do not exclude (regular files, directories and symbolic links, modes kept).
func copyBuildContext(contextDir, dst string, patterns []ignorePattern) error {
	hasExceptions := false
	for _, p := range patterns {
		hasExceptions = hasExceptions || p.exception
	}
	return filepath.WalkDir(contextDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(contextDir, path)
		if err != nil {
			return err
		}
		if rel != "." && ignored(patterns, filepath.ToSlash(rel)) {
			if d.IsDir() && !hasExceptions {
				return filepath.SkipDir
			}
			return nil
		}
		return copyEntry(path, filepath.Join(dst, rel), d)
	})
}

// copyEntry copies one file, directory (not its contents) or symbolic link, creating the
// parents of target.
func copyEntry(src, target string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	switch {
	case info.IsDir():
		if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chmod(target, info.Mode().Perm())
	case info.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(link, target)
	case info.Mode().IsRegular():
		return copyFile(src, target, info.Mode().Perm())
	}
	return nil // sockets, fifos: a build context carries none
}

func copyFile(src, target string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(target, mode)
}
