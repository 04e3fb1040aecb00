package docs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The section sign, written as an escape so that this file's own text cites nothing.
const sect = "\u00a7"

// outsidePaths are fragments of paths that lead out of the repository: the notes directory
// the code once cited, and absolute paths of the machine it was written on. (Split so that this
// file does not contain them.)
var outsidePaths = []string{"shared" + "/docs", "/" + "work/", "../" + "shared"}

// outsideNotes are names of notes that were kept outside the repository. A mention of one is a
// reference outside unless the repository has a file of that name.
var outsideNotes = []string{
	"node-cluster-ipc" + ".md", "daemon-survival" + ".md", "reuseport" + ".md",
	"anchors" + ".md", "pm2" + ".md",
}

var (
	// citeRE is a document followed by one or more sections, each a section sign and a number:
	// "docs/sessions.md" and 6.2, "[pm2-compat.md](pm2-compat.md)" and 3, a list ("4.2, 8.1")
	// or a range ("5–7"). Group 1 is the document, group 2 the sections.
	citeRE = regexp.MustCompile(`([\w./-]*[\w-]\.md)` + "[`\\])]*" +
		`((?:[ \t]*(?:,|and|or|to|–|-)?[ \t]*` + sect + `[0-9]+(?:\.[0-9]+)*)+)`)
	sectionRE = regexp.MustCompile(sect + `([0-9]+(?:\.[0-9]+)*)`)
	// headingRE is a numbered markdown heading: "## 4. Passing handles", "### 4.3 Acks".
	headingRE = regexp.MustCompile(`^#{1,6}[ \t]+([0-9]+(?:\.[0-9]+)*)\.?(?:[ \t]|$)`)
	// linkRE is an inline markdown link or image; group 1 is its target.
	linkRE = regexp.MustCompile(`!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:[ \t]+"[^"]*")?\)`)
	// refLinkRE is a reference-style link definition: "[name]: target".
	refLinkRE = regexp.MustCompile(`^[ \t]{0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:[ \t].*)?$`)
	mdNameRE  = regexp.MustCompile(`[\w.-]+\.md\b`)
)

// checker finds references that lead outside the repository rooted at root.
type checker struct {
	root     string
	files    map[string]bool // the repository's files, slash-separated, relative to root
	basename map[string]bool
	sections map[string]map[string]bool // numbered sections of markdown files, by path
}

func newChecker(root string, files []string) *checker {
	c := &checker{root: root, files: map[string]bool{}, basename: map[string]bool{}, sections: map[string]map[string]bool{}}
	for _, f := range files {
		c.files[f] = true
		c.basename[path.Base(f)] = true
	}
	return c
}

// sectionsOf returns the numbered sections of a markdown document, from its text.
func sectionsOf(data []byte) map[string]bool {
	out := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil && !fenced {
			out[m[1]] = true
		}
	}
	return out
}

// sectionsAt returns the numbered sections of the repository's markdown file at rel, or nil if
// there is no such file.
func (c *checker) sectionsAt(rel string) map[string]bool {
	if s, ok := c.sections[rel]; ok {
		return s
	}
	var s map[string]bool
	if data, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel))); err == nil {
		s = sectionsOf(data)
	}
	c.sections[rel] = s
	return s
}

// resolve turns a reference made in file from into a path relative to the root; ok is false
// when it leads outside the repository. Citations of the form "docs/x.md" are taken from the
// root, as code comments write them; other relative paths from the citing file's directory.
func resolve(from, ref string, rootRelative bool) (string, bool) {
	var p string
	switch {
	case strings.HasPrefix(ref, "/"):
		p = path.Clean(strings.TrimPrefix(ref, "/"))
	case rootRelative:
		p = path.Clean(ref)
	default:
		p = path.Join(path.Dir(from), ref)
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}

// check returns the problems in the file at rel (slash-separated, relative to the root), each
// as "rel:line: what".
func (c *checker) check(rel string, data []byte) []string {
	var probs []string
	report := func(n int, format string, args ...any) {
		probs = append(probs, fmt.Sprintf("%s:%d: ", rel, n)+fmt.Sprintf(format, args...))
	}
	isMD := strings.HasSuffix(rel, ".md")
	var own map[string]bool
	if isMD {
		own = sectionsOf(data)
	}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		for _, frag := range outsidePaths {
			if strings.Contains(line, frag) {
				report(n, "refers outside the repository (%q): %s", frag, strings.TrimSpace(line))
			}
		}
		for _, name := range mdNameRE.FindAllString(line, -1) {
			for _, note := range outsideNotes {
				if name == note && !c.basename[note] {
					report(n, "refers to %s, which is not in the repository: %s", note, strings.TrimSpace(line))
				}
			}
		}

		// Citations: a document and its sections. What is left must hold no section sign.
		rest := line
		for _, m := range citeRE.FindAllStringSubmatchIndex(line, -1) {
			doc, secs := line[m[2]:m[3]], line[m[4]:m[5]]
			rest = strings.Replace(rest, line[m[0]:m[1]], "", 1)
			target, ok := resolve(rel, doc, strings.HasPrefix(doc, "docs/"))
			if !ok {
				report(n, "cites %s, outside the repository", doc)
				continue
			}
			var have map[string]bool
			if target == rel {
				have = own
			} else if c.files[target] {
				have = c.sectionsAt(target)
			}
			if have == nil {
				report(n, "cites %s (%s), which is not in the repository; cite docs/<name>.md", doc, target)
				continue
			}
			for _, s := range sectionRE.FindAllStringSubmatch(secs, -1) {
				if !have[s[1]] {
					report(n, "cites %s %s%s, but %s has no section %s", doc, sect, s[1], target, s[1])
				}
			}
		}
		if strings.Contains(rest, sect) {
			if !isMD {
				report(n, "a %s without the document it belongs to; write docs/<name>.md %sN: %s", sect, sect, strings.TrimSpace(line))
			} else {
				// In a markdown document a bare section refers to the document itself.
				for _, s := range sectionRE.FindAllStringSubmatch(rest, -1) {
					if !own[s[1]] {
						report(n, "%s%s: this document has no such section", sect, s[1])
					}
				}
				if len(sectionRE.FindAllString(rest, -1)) != strings.Count(rest, sect) {
					report(n, "a %s without a section number: %s", sect, strings.TrimSpace(line))
				}
			}
		}

		// Links in markdown must stay in the repository and lead to a file that exists.
		if isMD {
			var targets []string
			for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			if m := refLinkRE.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, t := range targets {
				if strings.Contains(t, "://") || strings.HasPrefix(t, "mailto:") || strings.HasPrefix(t, "#") {
					continue
				}
				t, _, _ = strings.Cut(t, "#")
				p, ok := resolve(rel, t, false)
				if !ok {
					report(n, "links to %s, outside the repository", t)
					continue
				}
				if _, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(p))); err != nil {
					report(n, "links to %s, which does not exist", t)
				}
			}
		}
	}
	return probs
}

// repoFiles lists the repository's files: git's tracked and not-ignored ones, or, without git,
// every file under root but .git and node_modules.
func repoFiles(t *testing.T, root string) []string {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		var files []string
		for _, f := range strings.Split(string(out), "\x00") {
			if f != "" && !strings.Contains("/"+f+"/", "/node_modules/") {
				files = append(files, f)
			}
		}
		slices.Sort(files)
		return slices.Compact(files)
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" || d.Name() == "node_modules" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// TestSelfContained: nothing in the repository refers to notes outside it, and every citation
// of a design document names a document and a section that exist.
func TestSelfContained(t *testing.T) {
	root := repoRoot(t)
	files := repoFiles(t, root)
	c := newChecker(root, files)
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet in the index
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
			continue // binary
		}
		checked++
		for _, p := range c.check(f, data) {
			t.Error(p)
		}
	}
	if checked < 50 {
		t.Fatalf("only %d files checked under %s: the file list looks wrong", checked, root)
	}
}

// TestDocumentsAreNumbered: every document in docs/ has numbered sections to cite.
func TestDocumentsAreNumbered(t *testing.T) {
	mds, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range mds {
		if md == "README.md" {
			continue
		}
		data, err := os.ReadFile(md)
		if err != nil {
			t.Fatal(err)
		}
		if len(sectionsOf(data)) < 3 {
			t.Errorf("docs/%s has no numbered sections (## 1. …, ### 1.1 …)", md)
		}
	}
}

// TestCheckerCatches: the kinds of references the repository once had are each reported, and
// good citations are not.
func TestCheckerCatches(t *testing.T) {
	root := repoRoot(t)
	c := newChecker(root, repoFiles(t, root))
	bad := map[string]string{
		"internal/x/a.go":            "// Node's rule (spec " + sect + "1): internal messages",
		"internal/x/b.go":            "// (" + outsidePaths[0] + "/" + outsideNotes[0] + " " + sect + "5–" + sect + "7)",
		"internal/x/c.go":            "// spec: " + outsidePaths[1] + outsidePaths[0] + "/x, " + sect + "1–4",
		"examples/refapp/README.md":  "Stricter (sessions.md " + sect + "6.3): a new session",
		"examples/refapp/store/x.go": "// The vectors of sessions.md " + sect + "2.2.",
		"internal/x/d.go":            "// see docs/node-cluster-protocol.md " + sect + "99",
		"internal/x/e.go":            "// see docs/no-such-document.md " + sect + "1",
		"internal/x/f.go":            "// see docs/node-cluster-protocol.md " + sect + "4.2, " + sect + "42.1",
		"README.md":                  "See [the notes](../" + "shared/notes.md).",
		"docs/y.md":                  "As said in " + sect + "7.",
		"internal/x/g.go":            "// notes in " + outsideNotes[4] + " on restarts",
	}
	for file, text := range bad {
		if p := c.check(file, []byte(text+"\n")); len(p) == 0 {
			t.Errorf("%s: %q: not reported", file, text)
		}
	}
	good := map[string]string{
		"internal/x/a.go":           "// Node's rule (docs/node-cluster-protocol.md " + sect + "1.2): internal",
		"internal/x/b.go":           "// (docs/node-cluster-protocol.md " + sect + "4.2, " + sect + "8.1)",
		"internal/x/c.go":           "// docs/node-cluster-protocol.md " + sect + "5–" + sect + "7",
		"examples/refapp/README.md": "Stricter ([docs/sessions.md](../../docs/sessions.md) " + sect + "6.2): a new",
		"docs/z.md":                 "[pm2-compat.md](pm2-compat.md) " + sect + "3 and docs/sessions.md " + sect + "2.2",
		"internal/x/d.go":           "// no citation here",
	}
	for file, text := range good {
		if p := c.check(file, []byte(text+"\n")); len(p) != 0 {
			t.Errorf("%s: %q: reported %v", file, text, p)
		}
	}
}
