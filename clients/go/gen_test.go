package leanauth

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates leanauthpb/ into a temp dir with
// gen.sh (protoc from PATH, protoc-gen-go built at go.mod's version) and
// fails on any difference from the committed files. Only the "// protoc vX"
// header line is ignored: it names the local protoc, not the code.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("drift check needs protoc on PATH (Debian: apt-get install protobuf-compiler); " +
			"protoc-gen-go is built from go.mod by gen.sh")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal("drift check needs sh on PATH to run gen.sh")
	}
	out := t.TempDir()
	cmd := exec.Command("sh", "gen.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	committed, _ := filepath.Glob("leanauthpb/*.pb.go")
	fresh, _ := filepath.Glob(filepath.Join(out, "*.pb.go"))
	names := func(paths []string) []string {
		var n []string
		for _, p := range paths {
			n = append(n, filepath.Base(p))
		}
		sort.Strings(n)
		return n
	}
	if a, b := names(committed), names(fresh); !equalStrings(a, b) {
		t.Fatalf("generated files %v, committed %v: run ./gen.sh and commit", b, a)
	}
	protocLine := regexp.MustCompile(`(?m)^// \tprotoc +v.*$`)
	for _, name := range names(fresh) {
		a, err := os.ReadFile(filepath.Join("leanauthpb", name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		a = protocLine.ReplaceAll(a, nil)
		b = protocLine.ReplaceAll(b, nil)
		if !bytes.Equal(a, b) {
			t.Errorf("leanauthpb/%s is stale: run ./gen.sh and commit", name)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
