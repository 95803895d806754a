package lastgood

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/pack"
)

// files are sorted by path, as Read returns them.
var files = []File{
	{Path: "agents/a.yaml", Data: []byte("models:\n  - {id: m, provider_id: p, upstream_model: x}\nagents:\n  - {id: a, model_id: m}\n")},
	{Path: "providers.yaml", Data: []byte("providers:\n  - {id: p, adapter: mock, api_key: \"${file:keys/p}\"}\n")},
}

func TestSaveRead(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := Save(dir, Saved{Origin: OriginDirectory, Fingerprint: "fp1", SavedAt: at, Files: files}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := &Saved{Origin: OriginDirectory, Fingerprint: "fp1", SavedAt: at, Files: files}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}

	// A second save replaces the first and leaves no temporary file.
	if err := Save(dir, Saved{Fingerprint: "fp2", SavedAt: at, Files: files[:1]}); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(dir); err != nil || got.Fingerprint != "fp2" || len(got.Files) != 1 {
		t.Errorf("after the second save: %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state directory holds %v, want only %s", entries, FileName)
	}
}

func TestSaveRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, Saved{Fingerprint: "good", Files: files}); err != nil {
		t.Fatal(err)
	}
	for name, fs := range map[string][]File{
		"escaping path": {{Path: "../etc/passwd"}},
		"absolute path": {{Path: "/etc/passwd"}},
		"duplicate":     {{Path: "a.yaml"}, {Path: "a.yaml"}},
		"no files":      nil,
	} {
		if err := Save(dir, Saved{Files: fs}); err == nil {
			t.Errorf("%s: saved", name)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Save(filepath.Join(dir, "file"), Saved{Files: files}); err == nil {
		t.Error("saved into a state directory that is a file")
	}
	// The good state survives the failed saves.
	if got, err := Read(dir); err != nil || got.Fingerprint != "good" {
		t.Errorf("after failed saves: %+v, %v", got, err)
	}
}

// A state directory that does not exist yet is made, private.
func TestSaveMakesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "awakend")
	if err := Save(dir, Saved{Fingerprint: "fp", Files: files}); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(dir); err != nil || got.Fingerprint != "fp" {
		t.Errorf("read back %+v, %v", got, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v, want fs.ErrNotExist", err)
	}
}

func TestReadDamaged(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, Saved{Fingerprint: "fp", Files: files}); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a state file"},
		{"truncated", good[:len(good)/2], "not a state file"},
		{"not json", []byte("providers: []\n"), "not a state file"},
		{"another pack", otherPack(t, good), "not the"},
		{"other format", bytes.Replace(good, []byte(`"format":2`), []byte(`"format":9`), 1), "format 9, want 2"},
		{"unknown field", bytes.Replace(good, []byte(`{"format":2`), []byte(`{"extra":1,"format":2`), 1), "unknown field"},
		{"no pack id", []byte(`{"format":2,"fingerprint":"x","pack":""}`), "no pack ID"},
		{"not a pack", []byte(`{"format":2,"pack_id":"ab","pack":"bm90IGEgcGFjaw=="}`), "not gzip"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, FileName), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Read(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
				t.Errorf("error %v, want it to name the file and say %q", err, c.want)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Error("a damaged state file reads as a missing one")
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		d := t.TempDir()
		if err := os.Mkdir(filepath.Join(d, FileName), 0o700); err != nil { // a directory where the file should be
			t.Fatal(err)
		}
		if _, err := Read(d); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v, want a read error", err)
		}
	})
}

// otherPack is the state file b with its pack swapped for another pack's,
// its ID left as it was.
func otherPack(t *testing.T, b []byte) []byte {
	t.Helper()
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	p, err := pack.New([]File{{Path: "other.yaml", Data: []byte("models: []\n")}})
	if err != nil {
		t.Fatal(err)
	}
	st.Pack = p.Compressed()
	out, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFS loads a saved configuration through config.Load: the saved files
// are the whole tree, a relative ${file:…} is read from the live directory.
func TestFS(t *testing.T) {
	live := fstest.MapFS{
		"keys/p":         {Data: []byte("sk-live\n")},
		"providers.yaml": {Data: []byte("broken: [\n")}, // the live directory no longer validates
		"extra.yaml":     {Data: []byte("agents:\n  - {id: extra, model_id: m}\n")},
	}
	saved := &Saved{Files: files}
	cfg, err := config.Load(saved.FS(live), config.Options{})
	if err != nil {
		t.Fatalf("loading the saved configuration: %v", err)
	}
	if !reflect.DeepEqual(cfg.Files, []string{"agents/a.yaml", "providers.yaml"}) {
		t.Errorf("files %v, want only the saved ones", cfg.Files)
	}
	if len(cfg.Providers()) != 1 || cfg.Providers()[0].APIKey != "sk-live" {
		t.Errorf("providers %+v, want p with the key read from the live directory", cfg.Providers())
	}
	if _, err := config.Load(saved.FS(nil), config.Options{}); err == nil {
		t.Error("loaded without the referenced file")
	}
}

// TestTree checks the saved tree against the fs.FS contract.
func TestTree(t *testing.T) {
	saved := &Saved{Files: []File{
		{Path: "b.yaml", Data: []byte("b")},
		{Path: "agents/x/deep.yaml", Data: []byte("deep")},
		{Path: "agents/a.yaml", Data: []byte("a")},
		{Path: "agents/x/also.yaml", Data: []byte("")},
	}}
	if err := fstest.TestFS(saved.FS(nil), "b.yaml", "agents/a.yaml", "agents/x/deep.yaml", "agents/x/also.yaml"); err != nil {
		t.Fatal(err)
	}
	cfgFS := saved.FS(fstest.MapFS{"agents/b.yaml": {Data: []byte("live")}})
	if entries, _ := fs.ReadDir(cfgFS, "agents"); len(entries) != 2 || entries[0].Name() != "a.yaml" || entries[1].Name() != "x" {
		t.Errorf("agents lists %v, want the saved a.yaml and x only", entries)
	}
	if b, err := fs.ReadFile(cfgFS, "agents/b.yaml"); err != nil || string(b) != "live" {
		t.Errorf("a file not saved: %q, %v; want it from the live directory", b, err)
	}
}
