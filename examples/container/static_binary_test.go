package container

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// dynamicNeeds says what of a dynamic loader the ELF file at path needs (a program
// interpreter, a dynamic section), or "" for a static executable; isELF is false for any
// other file. The distroless static image has no libc and no loader: a binary that needs one
// fails there with a bare "no such file or directory".
func dynamicNeeds(path string) (isELF bool, needs string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if n, _ := f.ReadAt(magic, 0); n < 4 || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return false, "", nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return true, "", fmt.Errorf("%s: %w", path, err)
	}
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp := make([]byte, p.Filesz)
			_, _ = p.ReadAt(interp, 0)
			return true, fmt.Sprintf("the program interpreter %s", bytes.TrimRight(interp, "\x00")), nil
		case elf.PT_DYNAMIC:
			return true, "a dynamic segment (PT_DYNAMIC)", nil
		}
	}
	if ef.Section(".dynamic") != nil {
		return true, "a .dynamic section", nil
	}
	return true, "", nil
}

// checkStaticTree checks every ELF file under root with dynamicNeeds, and returns the ELF
// files found (root-relative) and the problems.
func checkStaticTree(root string) (elfs []string, problems []string, err error) {
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		isELF, needs, err := dynamicNeeds(path)
		if err != nil || !isELF {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		elfs = append(elfs, "/"+rel)
		if needs != "" {
			problems = append(problems, fmt.Sprintf("/%s needs %s", rel, needs))
		}
		return nil
	})
	return elfs, problems, err
}
