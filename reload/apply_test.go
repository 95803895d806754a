package reload_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/internal/testcert"
	"github.com/awakend/awakend/lastgood"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
	"github.com/awakend/awakend/settings"
)

func newTestCert(t *testing.T, name string) testcert.Cert {
	return testcert.New(t, testcert.Options{Name: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

// pemFiles is where a test applier reads its pair.
type pemFiles struct{ cert, key string }

func newPEMFiles(t *testing.T) pemFiles {
	dir := t.TempDir()
	return pemFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
}

// closer is an executor that records being closed.
type closer struct {
	spec   registry.ProviderSpec
	closed bool
}

func (c *closer) Name() string { return "fake" }
func (c *closer) Close() error { c.closed = true; return nil }

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestApplier(t *testing.T) (*reload.Applier, string, *[]*closer) {
	dir := t.TempDir()
	write(t, dir, "p.yaml", "providers:\n  - {id: p, adapter: mock}\n  - {id: q, adapter: mock}\n")
	write(t, dir, "m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	var built []*closer
	a := reload.NewApplier(reload.Dir(dir), config.Options{}, func(s registry.ProviderSpec) (registry.Executor, error) {
		c := &closer{spec: s}
		built = append(built, c)
		return c, nil
	})
	return a, dir, &built
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	a, dir, built := newTestApplier(t)
	apply := func(trigger reload.Trigger, force bool) reload.Result {
		return a.Apply(ctx, reload.Request{Trigger: trigger, Force: force})
	}

	res := apply(reload.TriggerStartup, false)
	if res.Outcome != reload.OutcomeApplied || res.Version != 1 || res.Fingerprint == "" {
		t.Fatalf("startup = %+v", res)
	}
	if len(*built) != 2 {
		t.Fatalf("built %d executors, want 2", len(*built))
	}

	if res := apply(reload.TriggerRescan, false); res.Outcome != reload.OutcomeUnchanged || res.Version != 1 {
		t.Fatalf("rescan of the same files = %+v, want unchanged v1", res)
	}
	// A forced rebuild with the same specs changes nothing and keeps the executors.
	if res := apply(reload.TriggerSignal, true); res.Outcome != reload.OutcomeUnchanged || res.Version != 1 || len(*built) != 2 {
		t.Fatalf("forced = %+v, built %d", res, len(*built))
	}
	// A comment changes the fingerprint but not the registry.
	write(t, dir, "m.yaml", "# comment\nmodels:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	if res := apply(reload.TriggerWatch, false); res.Outcome != reload.OutcomeUnchanged || res.Version != 1 {
		t.Fatalf("comment edit = %+v, want unchanged", res)
	}

	// Changing q rebuilds q only, keeps p's executor, closes q's old one.
	write(t, dir, "p.yaml", "providers:\n  - {id: p, adapter: mock}\n  - {id: q, adapter: mock, timeout_secs: 5}\n")
	res = apply(reload.TriggerWatch, false)
	if res.Outcome != reload.OutcomeApplied || res.Version != 2 || res.Changes != "~1 provider (timeout_secs)" {
		t.Fatalf("edit = %+v", res)
	}
	if len(*built) != 3 || (*built)[0].closed || !(*built)[1].closed || (*built)[2].closed {
		t.Fatalf("executors: built %d, closed p=%v q=%v q'=%v", len(*built), (*built)[0].closed, (*built)[1].closed, (*built)[2].closed)
	}

	// A broken edit is rejected and the old snapshot keeps serving.
	write(t, dir, "m.yaml", "models:\n  - {id: m, provider_id: ghost, upstream_model: u}\n")
	res = apply(reload.TriggerWatch, false)
	var ce *config.Error
	if res.Outcome != reload.OutcomeRejected || !errors.As(res.Err, &ce) || res.Version != 2 {
		t.Fatalf("broken edit = %+v", res)
	}
	if a.Handle().Version() != 2 {
		t.Fatal("rejected reload changed the served version")
	}
	if res.Repeated {
		t.Fatal("a first rejection is marked repeated")
	}
	// The same broken files again, unforced: rejected, marked repeated so
	// that it is not logged as news.
	res = apply(reload.TriggerRescan, false)
	if res.Outcome != reload.OutcomeRejected || res.Err == nil || !res.Repeated {
		t.Fatalf("rescan of rejected files = %+v, want a repeated rejection", res)
	}
	// Forced: rejected again, and not a mere repeat (the operator asked).
	if res := apply(reload.TriggerSignal, true); res.Outcome != reload.OutcomeRejected || res.Repeated {
		t.Fatalf("forced reload of rejected files = %+v", res)
	}
	// Back to the applied files (A→B→A): unchanged, no error, same version.
	write(t, dir, "m.yaml", "# comment\nmodels:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	if res := apply(reload.TriggerWatch, false); res.Outcome != reload.OutcomeUnchanged || res.Err != nil || res.Version != 2 {
		t.Fatalf("revert = %+v", res)
	}
}

func TestApplyVanishedDirectory(t *testing.T) {
	a, dir, _ := newTestApplier(t)
	ctx := context.Background()
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied {
		t.Fatal(res.Err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch})
	if res.Outcome != reload.OutcomeRejected || res.Err == nil || a.Handle().Version() != 1 {
		t.Fatalf("vanished dir = %+v", res)
	}
	t.Log(res.Err)
}

func TestApplyStartupInvalid(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", "agents:\n  - {id: a, model_id: nope}\n")
	a := reload.NewApplier(reload.Dir(dir), config.Options{}, func(registry.ProviderSpec) (registry.Executor, error) { return &closer{}, nil })
	res := a.Apply(context.Background(), reload.Request{Trigger: reload.TriggerStartup})
	if res.Outcome != reload.OutcomeRejected || a.Handle() != nil {
		t.Fatalf("startup on invalid dir = %+v, handle %v", res, a.Handle())
	}
}

// OnRebuild (RELOADING=1) fires only for reloads that rebuild: not for
// the first load, nor for a reload that finds the same inputs.
func TestOnRebuild(t *testing.T) {
	a, dir, _ := newTestApplier(t)
	var rebuilt []reload.Trigger
	a.OnRebuild = func(req reload.Request) { rebuilt = append(rebuilt, req.Trigger) }
	ctx := context.Background()
	a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup})
	a.Apply(ctx, reload.Request{Trigger: reload.TriggerRescan})
	a.Apply(ctx, reload.Request{Trigger: reload.TriggerSignal, Force: true})
	write(t, dir, "m.yaml", "models:\n  - {id: m2, provider_id: p, upstream_model: u}\n")
	a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch})
	if want := []reload.Trigger{reload.TriggerSignal, reload.TriggerWatch}; !slices.Equal(rebuilt, want) {
		t.Fatalf("OnRebuild for %v, want %v", rebuilt, want)
	}
}

func TestApplyTLS(t *testing.T) {
	ctx := context.Background()
	a, dir, built := newTestApplier(t)
	files := newPEMFiles(t)
	certA, certB, stranger := newTestCert(t, "cert-a"), newTestCert(t, "cert-b"), newTestCert(t, "stranger")
	certA.Install(t, files.cert, files.key)
	a.TLS = edge.NewCertificate(edge.TLSSettings{Cert: files.cert, Key: files.key})
	var rebuilt []reload.Trigger
	a.OnRebuild = func(req reload.Request) { rebuilt = append(rebuilt, req.Trigger) }
	apply := func(trigger reload.Trigger, force bool) reload.Result {
		return a.Apply(ctx, reload.Request{Trigger: trigger, Force: force})
	}
	served := func() string {
		if leaf := a.TLS.Leaf(); leaf != nil {
			return leaf.Subject.CommonName
		}
		return "<none>"
	}

	res := apply(reload.TriggerStartup, false)
	if res.Outcome != reload.OutcomeApplied || res.Version != 1 || served() != "cert-a" {
		t.Fatalf("startup = %+v, serving %s", res, served())
	}
	// The fingerprint covers the pair: it is not the config's alone.
	cfg, err := config.Load(os.DirFS(dir), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fingerprint == cfg.Fingerprint || res.Fingerprint == "" {
		t.Errorf("fingerprint %s, want one of the config (%s) and the pair", res.Fingerprint, cfg.Fingerprint)
	}
	if res := apply(reload.TriggerRescan, false); res.Outcome != reload.OutcomeUnchanged {
		t.Fatalf("rescan of the same files = %+v, want unchanged", res)
	}

	// A new certificate alone: applied, no new version, no rebuild.
	certB.Install(t, files.cert, files.key)
	res = apply(reload.TriggerWatch, false)
	wantChanges := "~tls certificate (expires " + certB.X509.NotAfter.UTC().Format(time.DateOnly) + ")"
	if res.Outcome != reload.OutcomeApplied || res.Version != 1 || res.Changes != wantChanges || served() != "cert-b" {
		t.Fatalf("new pair = %+v, serving %s; want applied at version 1 with %q", res, served(), wantChanges)
	}
	if len(rebuilt) != 0 || len(*built) != 2 {
		t.Errorf("a new certificate alone rebuilt the registry (%v, %d executors)", rebuilt, len(*built))
	}
	// Forced with nothing new: the registry is rebuilt, nothing changes.
	if res := apply(reload.TriggerSignal, true); res.Outcome != reload.OutcomeUnchanged || res.Changes != "" || !slices.Equal(rebuilt, []reload.Trigger{reload.TriggerSignal}) {
		t.Fatalf("forced = %+v, rebuilt %v", res, rebuilt)
	}

	// A key that is not the certificate's: rejected, the old pair serves.
	testcert.Cert{CertPEM: certA.CertPEM, KeyPEM: stranger.KeyPEM}.Install(t, files.cert, files.key)
	res = apply(reload.TriggerWatch, false)
	var ce *edge.CertError
	if res.Outcome != reload.OutcomeRejected || !errors.As(res.Err, &ce) || ce.File != files.key || res.Repeated || served() != "cert-b" {
		t.Fatalf("mismatched pair = %+v, serving %s", res, served())
	}
	if res := apply(reload.TriggerRescan, false); res.Outcome != reload.OutcomeRejected || !res.Repeated {
		t.Fatalf("rescan of the same bad pair = %+v, want a repeated rejection", res)
	}
	if strings.Contains(res.Err.Error(), strings.Split(string(stranger.KeyPEM), "\n")[1]) {
		t.Errorf("the error shows the key: %v", res.Err)
	}

	// With a config that does not load too: both are reported.
	write(t, dir, "m.yaml", "models:\n  - {id: m, provder_id: p, upstream_model: u}\n")
	res = apply(reload.TriggerWatch, false)
	var cfgErr *config.Error
	if res.Outcome != reload.OutcomeRejected || !errors.As(res.Err, &cfgErr) || !errors.As(res.Err, &ce) || ce.File != files.key {
		t.Fatalf("broken config and pair = %+v, want both errors", res)
	}
	if res.Repeated {
		t.Error("a rejection of new inputs is marked repeated")
	}

	// Back to what was applied (A→B→A): unchanged.
	write(t, dir, "m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	certB.Install(t, files.cert, files.key)
	if res := apply(reload.TriggerWatch, false); res.Outcome != reload.OutcomeUnchanged || res.Err != nil || res.Version != 1 || served() != "cert-b" {
		t.Fatalf("revert = %+v, serving %s", res, served())
	}

	// Without TLS the fingerprint is the config's, as awakend check prints it.
	plain := reload.NewApplier(reload.Dir(dir), config.Options{}, func(registry.ProviderSpec) (registry.Executor, error) { return &closer{}, nil })
	if res := plain.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup}); res.Fingerprint != cfg.Fingerprint {
		t.Errorf("fingerprint without TLS %s, want the config's %s", res.Fingerprint, cfg.Fingerprint)
	}
}

// TestApplyKeeps: each configuration that goes live from the directory is
// handed to Keep as read, once; rejected, unchanged and forced rebuilds of
// the same files are not.
func TestApplyKeeps(t *testing.T) {
	ctx := context.Background()
	a, dir, _ := newTestApplier(t)
	var kept []lastgood.Saved
	a.Keep = func(s lastgood.Saved) { kept = append(kept, s) }
	apply := func(trigger reload.Trigger, force bool) reload.Result {
		return a.Apply(ctx, reload.Request{Trigger: trigger, Force: force})
	}
	paths := func(s lastgood.Saved) (out []string) {
		for _, f := range s.Files {
			out = append(out, f.Path+"="+string(f.Data))
		}
		return out
	}

	if res := apply(reload.TriggerStartup, false); res.Outcome != reload.OutcomeApplied {
		t.Fatal(res)
	}
	if len(kept) != 1 || !slices.Equal(paths(kept[0]), []string{
		"m.yaml=models:\n  - {id: m, provider_id: p, upstream_model: u}\n",
		"p.yaml=providers:\n  - {id: p, adapter: mock}\n  - {id: q, adapter: mock}\n",
	}) || kept[0].Fingerprint == "" {
		t.Fatalf("kept %+v after the first apply", kept)
	}
	apply(reload.TriggerRescan, false)
	apply(reload.TriggerSignal, true)
	write(t, dir, "m.yaml", "models: [\n")
	apply(reload.TriggerWatch, false)
	if len(kept) != 1 {
		t.Fatalf("kept %d configurations after unchanged, forced and rejected reloads, want 1", len(kept))
	}
	write(t, dir, "m.yaml", "# a comment\nmodels:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	if res := apply(reload.TriggerWatch, false); res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(kept) != 2 || !strings.HasPrefix(paths(kept[1])[0], "m.yaml=# a comment") {
		t.Fatalf("kept %+v after a comment edit, want the new files", kept)
	}
}

// TestApplySaved: a start-up on a rejected directory serves the saved
// configuration; rescans of the same broken inputs are repeats; a fixed
// directory goes live.
func TestApplySaved(t *testing.T) {
	ctx := context.Background()
	a, dir, _ := newTestApplier(t)
	saved := &lastgood.Saved{Files: []lastgood.File{
		{Path: "all.yaml", Data: []byte("providers:\n  - {id: p, adapter: mock}\nmodels:\n  - {id: saved, provider_id: p, upstream_model: u}\n")},
	}}
	var kept int
	a.Keep = func(lastgood.Saved) { kept++ }
	write(t, dir, "m.yaml", "models:\n  - {id: m, provider_id: nope, upstream_model: u}\n")
	rejected := a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup})
	if rejected.Outcome != reload.OutcomeRejected || a.Handle() != nil {
		t.Fatalf("broken directory at start-up: %+v", rejected)
	}
	res := a.ApplySaved(ctx, reload.Request{Trigger: reload.TriggerStartup}, saved, rejected)
	if res.Outcome != reload.OutcomeApplied || res.Version != 1 {
		t.Fatalf("saved configuration: %+v", res)
	}
	if _, ok := a.Handle().Current().Set.Model("saved"); !ok {
		t.Error("the saved configuration's model is not served")
	}
	if kept != 0 {
		t.Error("the saved configuration was kept again")
	}
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerRescan}); res.Outcome != reload.OutcomeRejected || !res.Repeated {
		t.Errorf("rescan of the broken directory: %+v, want a repeated rejection", res)
	}
	write(t, dir, "m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch}); res.Outcome != reload.OutcomeApplied || res.Version != 2 {
		t.Fatalf("fixed directory: %+v", res)
	}
	if _, ok := a.Handle().Current().Set.Model("m"); !ok || kept != 1 {
		t.Errorf("fixed directory not served (or not kept: %d)", kept)
	}
}

// settingsFile is a settings file a test rewrites, read as the daemon
// reads it at every reload.
type settingsFile struct {
	t    *testing.T
	path string
}

func newSettingsFile(t *testing.T, content string) *settingsFile {
	f := &settingsFile{t: t, path: filepath.Join(t.TempDir(), "awakend.yaml")}
	f.write(content)
	return f
}

func (f *settingsFile) write(content string) {
	f.t.Helper()
	if err := os.WriteFile(f.path, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *settingsFile) read() (settings.Settings, string, error) {
	return settings.Load(f.path, nil, nil)
}

// TestApplySettings: the settings file is one more input of the
// all-or-nothing rule. What can change live is handed over with the
// reload that changed it; what cannot keeps its running value and is
// listed as waiting for a restart; an invalid or vanished file rejects the
// reload and changes nothing.
func TestApplySettings(t *testing.T) {
	ctx := context.Background()
	a, dir, _ := newTestApplier(t)
	f := newSettingsFile(t, "log:\n  level: info\n")
	started, _, err := f.read()
	if err != nil {
		t.Fatal(err)
	}
	var applied []settings.Settings
	a.ReadSettings(started, f.path, f.read, func(s settings.Settings) { applied = append(applied, s) })
	apply := func(trigger reload.Trigger) reload.Result { return a.Apply(ctx, reload.Request{Trigger: trigger}) }

	first := apply(reload.TriggerStartup)
	if first.Outcome != reload.OutcomeApplied || len(applied) != 0 || len(first.Restart) != 0 {
		t.Fatalf("start-up = %+v, applied %d settings", first, len(applied))
	}
	if res := apply(reload.TriggerRescan); res.Outcome != reload.OutcomeUnchanged || res.Fingerprint != first.Fingerprint {
		t.Fatalf("rescan = %+v", res)
	}

	// Live settings: applied, no new registry version.
	f.write("log:\n  level: debug\nadmin:\n  token: s3cret-admin\nreload:\n  debounce: 1s\n")
	res := apply(reload.TriggerWatch)
	if res.Outcome != reload.OutcomeApplied || res.Version != 1 || res.Changes != "~settings (log.level, reload.debounce, admin.token)" {
		t.Fatalf("live settings = %+v", res)
	}
	if len(applied) != 1 || applied[0].Log.Level != "debug" || applied[0].Admin.Token != "s3cret-admin" || applied[0].Reload.Debounce != time.Second {
		t.Fatalf("applied %+v", applied)
	}
	if res.Fingerprint == first.Fingerprint {
		t.Error("the fingerprint does not cover the settings")
	}

	// A setting that needs a restart: kept, listed, nothing handed over.
	f.write("listen: 0.0.0.0:9000\nlog:\n  level: debug\nadmin:\n  token: s3cret-admin\nreload:\n  debounce: 1s\n")
	res = apply(reload.TriggerWatch)
	if res.Outcome != reload.OutcomeUnchanged || !slices.Equal(res.Restart, []string{"listen: 127.0.0.1:8700 → 0.0.0.0:9000"}) || len(applied) != 1 {
		t.Fatalf("listen changed = %+v, applied %d", res, len(applied))
	}
	if a.Settings().Listen != "127.0.0.1:8700" {
		t.Errorf("running listen %q, want the start-up's", a.Settings().Listen)
	}
	if res := apply(reload.TriggerRescan); res.Outcome != reload.OutcomeUnchanged || len(res.Restart) != 1 {
		t.Errorf("rescan = %+v, want the restart still listed", res)
	}

	// An invalid file: rejected at its place, nothing changes; the same
	// file again is a repeat.
	f.write("log:\n  level: loud\nadmin:\n  token: s3cret-other\n")
	res = apply(reload.TriggerWatch)
	var se *settings.Error
	if res.Outcome != reload.OutcomeRejected || !errors.As(res.Err, &se) || se.Problems[0].Line != 2 || len(applied) != 1 || len(res.Restart) != 0 {
		t.Fatalf("invalid settings = %+v, applied %d", res, len(applied))
	}
	if strings.Contains(res.Err.Error(), "s3cret") {
		t.Errorf("the error shows a secret: %v", res.Err)
	}
	if res := apply(reload.TriggerRescan); res.Outcome != reload.OutcomeRejected || !res.Repeated {
		t.Errorf("rescan of the same invalid settings = %+v, want a repeated rejection", res)
	}
	// A config edit with it is rejected too: all or nothing.
	write(t, dir, "m.yaml", "models:\n  - {id: m2, provider_id: p, upstream_model: u}\n")
	if res := apply(reload.TriggerWatch); res.Outcome != reload.OutcomeRejected || res.Version != 1 {
		t.Fatalf("config edit with invalid settings = %+v", res)
	}
	if _, ok := a.Handle().Current().Set.Model("m2"); ok {
		t.Fatal("a config edit went live with invalid settings")
	}

	// A vanished file is rejected, not read as the defaults.
	os.Remove(f.path)
	if res := apply(reload.TriggerWatch); res.Outcome != reload.OutcomeRejected || !strings.Contains(res.Err.Error(), "awakend.yaml: no such file") {
		t.Fatalf("vanished settings file = %+v", res)
	}

	// Back to the start-up's settings, with the config edit: both apply.
	f.write("log:\n  level: info\n")
	res = apply(reload.TriggerWatch)
	if res.Outcome != reload.OutcomeApplied || res.Version != 2 || !strings.Contains(res.Changes, "~settings (log.level, reload.debounce, admin.token)") || len(res.Restart) != 0 {
		t.Fatalf("fixed = %+v", res)
	}
	if last := applied[len(applied)-1]; last.Log.Level != "info" || last.Admin.Token != "" {
		t.Errorf("applied %+v, want the start-up's values back", last)
	}
}

// TestApplySettingsDefaultFileVanished: the default settings file, read at
// start-up, gone at a reload, rejects it (rather than the reload applying
// the defaults without one).
func TestApplySettingsDefaultFileVanished(t *testing.T) {
	a, _, _ := newTestApplier(t)
	gone := false
	a.ReadSettings(settings.Default(), "/etc/awakend/awakend.yaml", func() (settings.Settings, string, error) {
		if gone {
			return settings.Default(), "", nil // as Load finds no default file
		}
		return settings.Default(), "/etc/awakend/awakend.yaml", nil
	}, nil)
	if res := a.Apply(context.Background(), reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied {
		t.Fatal(res)
	}
	gone = true
	res := a.Apply(context.Background(), reload.Request{Trigger: reload.TriggerWatch})
	if res.Outcome != reload.OutcomeRejected || !strings.Contains(res.Err.Error(), "settings file /etc/awakend/awakend.yaml: no longer there") {
		t.Fatalf("vanished default file = %+v", res)
	}
}

// TestApplySettingsTLSFiles: new certificate files named by the settings
// apply live, read as part of the same reload; a bad pair rejects it.
func TestApplySettingsTLSFiles(t *testing.T) {
	ctx := context.Background()
	a, _, _ := newTestApplier(t)
	one, two := newPEMFiles(t), newPEMFiles(t)
	newTestCert(t, "one").Install(t, one.cert, one.key)
	newTestCert(t, "two").Install(t, two.cert, two.key)
	tlsSettings := func(f pemFiles) string { return "tls:\n  cert_file: " + f.cert + "\n  key_file: " + f.key + "\n" }
	f := newSettingsFile(t, tlsSettings(one))
	started, _, err := f.read()
	if err != nil {
		t.Fatal(err)
	}
	a.TLS = edge.NewCertificate(edge.TLSSettings{Cert: started.TLS.CertFile, Key: started.TLS.KeyFile})
	a.ReadSettings(started, f.path, f.read, nil)
	served := func() string { return a.TLS.Leaf().Subject.CommonName }
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied || served() != "one" {
		t.Fatalf("start-up = %+v", res)
	}
	f.write(tlsSettings(two))
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch}); res.Outcome != reload.OutcomeApplied || served() != "two" ||
		!strings.Contains(res.Changes, "~settings (tls.cert_file, tls.key_file)") {
		t.Fatalf("new files = %+v, serving %s", res, served())
	}
	if c := a.TLS.Settings().Cert; c != two.cert {
		t.Errorf("certificate file %s, want %s", c, two.cert)
	}
	f.write("tls:\n  cert_file: " + one.cert + "\n  key_file: " + two.key + "\n")
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch}); res.Outcome != reload.OutcomeRejected || served() != "two" {
		t.Fatalf("mismatched pair = %+v, serving %s", res, served())
	}
	if c := a.TLS.Settings().Cert; c != two.cert {
		t.Errorf("a rejected reload renamed the files: %s", c)
	}
	f.write("")
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch}); !slices.Equal(res.Restart, []string{"tls: on → off"}) || served() != "two" {
		t.Errorf("TLS turned off = %+v, want it kept until a restart", res)
	}
}

// With a Cache, a reload reads only the edited file; what goes live is
// still kept whole, the files it did not read again included.
func TestApplyKeepsWithCache(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "p.yaml", "providers:\n  - {id: p, adapter: mock}\n")
	write(t, dir, "m.yaml", "models:\n  - {id: m, provider_id: p, upstream_model: u}\n")
	past := time.Now().Add(-time.Hour)
	for _, name := range []string{"p.yaml", "m.yaml"} {
		if err := os.Chtimes(filepath.Join(dir, name), past, past); err != nil {
			t.Fatal(err)
		}
	}
	a := reload.NewApplier(reload.Dir(dir), config.Options{Cache: config.NewCache()}, nil)
	var kept []lastgood.Saved
	a.Keep = func(s lastgood.Saved) { kept = append(kept, s) }
	ctx := context.Background()
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied {
		t.Fatal(res)
	}
	write(t, dir, "m.yaml", "models:\n  - {id: m2, provider_id: p, upstream_model: u}\n")
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerWatch}); res.Outcome != reload.OutcomeApplied {
		t.Fatal(res)
	}
	if len(kept) != 2 {
		t.Fatalf("kept %d configurations after an applied edit, want 2", len(kept))
	}
	var got []string
	for _, f := range kept[1].Files {
		got = append(got, f.Path+"="+string(f.Data))
	}
	if want := []string{
		"m.yaml=models:\n  - {id: m2, provider_id: p, upstream_model: u}\n",
		"p.yaml=providers:\n  - {id: p, adapter: mock}\n",
	}; !slices.Equal(got, want) {
		t.Fatalf("kept %q, want %q", got, want)
	}
}
