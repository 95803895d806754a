package harness

import (
	"os"
	"path/filepath"
	"testing"
)

// Write writes a file of the config directory dir, creating directories.
// It truncates and writes in place, as `echo > f` and most programs do: a
// watching daemon may read it half-written.
func Write(tb testing.TB, dir, name, content string) {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Replace writes a file of the config directory dir atomically, as careful
// tools do: a temporary file with an ignored name in the same directory,
// renamed over the file. A reload never reads it half-written.
func Replace(tb testing.TB, dir, name, content string) {
	tb.Helper()
	p := filepath.Join(dir, name)
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		tb.Fatal(err)
	}
}

// Remove removes a file or directory tree of the config directory dir.
func Remove(tb testing.TB, dir, name string) {
	tb.Helper()
	if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
		tb.Fatal(err)
	}
}

// ConfigDir writes files (name → content) into a new config directory and
// returns it.
func ConfigDir(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		Write(tb, dir, name, content)
	}
	return dir
}
