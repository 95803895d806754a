package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
)

// settingsYAML is a settings file for TestSettingsReload: the listen
// address, the log level, the admin token and the gateway's keys. The
// watcher waits an hour, so that each reload is the one the test asks for.
func settingsYAML(listen, level, admin string, keys ...string) string {
	return fmt.Sprintf("listen: %s\nlog:\n  level: %s\nadmin:\n  token: %s\ngateway:\n  api_keys: [%s]\nreload:\n  debounce: 1h\n  max_wait: 1h\n",
		listen, level, admin, strings.Join(keys, ", "))
}

// TestSettingsReload: a reload reads the settings file again, through the
// real binary. The gateway's keys, the admin token and the log level change
// live; `awakend reload`, which reads the new token, is not refused by the
// old one; a new listen address waits for a restart and every surface says
// so while the daemon keeps serving where it listens; an invalid settings
// file rejects the reload at its line and column and changes nothing.
func TestSettingsReload(t *testing.T) {
	t.Parallel()
	dir := harness.ConfigDir(t, map[string]string{"p.yaml": providersYAML + modelsYAML})
	run := t.TempDir() // the daemon's $RUNTIME_DIRECTORY
	env := []string{"RUNTIME_DIRECTORY=" + run}
	file := filepath.Join(t.TempDir(), "awakend.yaml")
	addr := harness.FreeAddr(t)
	harness.Write(t, filepath.Dir(file), "awakend.yaml", settingsYAML(addr, "info", "admin-one", "k1"))
	d := harness.Start(t, dir, harness.Options{Settings: file, Listen: addr, LogLevel: "-", Env: env})

	models := func(key string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", d.URL+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := d.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	status := func(token string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", d.URL+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := d.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	reload := func() harness.Result {
		t.Helper()
		return harness.Run(t, env, "reload", "--settings", file)
	}
	if models("k1") != 200 || models("k3") != 401 {
		t.Fatal("at start-up k1 is not the only key")
	}
	// Not at debug yet: a refused admin token is logged at Debug only.
	if code, _ := status("wrong"); code != 401 || strings.Contains(d.Logs(), "admin token rejected") {
		t.Fatalf("status with a wrong token: %d; logged at debug before the level changed", code)
	}

	// Keys, token and level, all in one edit; awakend reload reads the new
	// token from the file and is accepted with it.
	harness.Replace(t, filepath.Dir(file), "awakend.yaml", settingsYAML(addr, "debug", "admin-two", "k3"))
	r := reload()
	if r.Code != 0 || r.Stdout != "applied: version 1 (~settings (log.level, admin.token, gateway.api_keys))\n" || r.Stderr != "" {
		t.Fatalf("reload after a token change: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if models("k1") != 401 || models("k3") != 200 {
		t.Error("after the reload k3 is not the only key")
	}
	if code, _ := status("admin-one"); code != 401 {
		t.Errorf("the old admin token still works (%d)", code)
	}
	if code, _ := status("admin-two"); code != 200 {
		t.Errorf("the new admin token is refused (%d)", code)
	}
	d.WaitLog(regexp.MustCompile(`level=DEBUG msg="admin token rejected"`))
	for _, secret := range []string{"admin-one", "admin-two"} {
		if strings.Contains(d.Logs(), secret) {
			t.Errorf("the log shows the admin token %s", secret)
		}
	}

	// A new listen address needs a restart: reported everywhere, the
	// daemon still where it was, and awakend reload still reaches it (at
	// the URL in its runtime directory).
	other := harness.FreeAddr(t)
	harness.Replace(t, filepath.Dir(file), "awakend.yaml", settingsYAML(other, "debug", "admin-two", "k3"))
	r = reload()
	want := "listen: " + addr + " → " + other
	if r.Code != 0 || r.Stdout != "unchanged: version 1\n" || !strings.Contains(r.Stderr, "needs a restart to apply (running with the old value): "+want) {
		t.Fatalf("reload after a listen change: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if _, st := status("admin-two"); fmt.Sprint(st["restart_required"]) != "["+want+"]" {
		t.Errorf("status restart_required = %v, want [%s]", st["restart_required"], want)
	}
	d.WaitLog(regexp.MustCompile(`level=WARN msg="settings changed that apply only after a restart; running with the old values" restart_required="` + regexp.QuoteMeta(want) + `"`))
	d.WaitLog(regexp.MustCompile(`msg="config reload" trigger=api result=unchanged .* restart_required="` + regexp.QuoteMeta(want) + `"`))
	d.WaitNote("restart to apply " + want)
	if models("k3") != 200 {
		t.Error("the daemon stopped serving where it listens")
	}

	// An invalid settings file: rejected at its place, nothing changes.
	harness.Replace(t, filepath.Dir(file), "awakend.yaml", "log:\n  level: loud\ngateway:\n  api_keys: [k4]\n")
	r = reload()
	if r.Code != 1 || !strings.HasSuffix(r.Stderr, "awakend.yaml:2:10: log.level: \"loud\" is not one of debug, info, warn, error\n"+
		"awakend: reload rejected: 1 problem; the settings do not load; the daemon keeps its running settings\n") {
		t.Fatalf("invalid settings: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// The daemon, asked all the same, rejects them with the diagnostic.
	req, _ := http.NewRequest("POST", d.URL+"/api/v1/reload", nil)
	req.Header.Set("Authorization", "Bearer admin-two")
	resp, err := d.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rej harness.Reload
	_ = json.NewDecoder(resp.Body).Decode(&rej)
	resp.Body.Close()
	if resp.StatusCode != 422 || len(rej.Diagnostics) != 1 || rej.Diagnostics[0].Line != 2 || rej.Diagnostics[0].Column != 10 ||
		!strings.HasSuffix(rej.Diagnostics[0].File, "awakend.yaml") || rej.Diagnostics[0].Code != "settings" {
		t.Errorf("the daemon's answer to invalid settings: %d %+v", resp.StatusCode, rej)
	}
	if models("k3") != 200 || models("k4") != 401 {
		t.Error("a rejected settings file changed the keys")
	}

	// Fixed, with the start-up's address: nothing waits for a restart.
	harness.Replace(t, filepath.Dir(file), "awakend.yaml", settingsYAML(addr, "debug", "admin-two", "k3", "k4"))
	if r := reload(); r.Code != 0 || r.Stderr != "" || models("k4") != 200 {
		t.Fatalf("fixed: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if _, st := status("admin-two"); fmt.Sprint(st["restart_required"]) != "[]" {
		t.Errorf("status restart_required = %v after the fix, want []", st["restart_required"])
	}
	d.Stop()
	if _, err := os.Stat(filepath.Join(run, "awakend.url")); !os.IsNotExist(err) {
		t.Errorf("the runtime URL file outlived the daemon: %v", err)
	}
}

// TestSettingsFileWatched: saving the settings file is a reload, as saving
// a config file is.
func TestSettingsFileWatched(t *testing.T) {
	t.Parallel()
	dir := harness.ConfigDir(t, map[string]string{"p.yaml": providersYAML + modelsYAML})
	settingsDir := t.TempDir()
	harness.Write(t, settingsDir, "awakend.yaml", "gateway:\n  api_keys: [k1]\n")
	d := harness.Start(t, dir, harness.Options{Settings: filepath.Join(settingsDir, "awakend.yaml")})
	d.WaitLog(regexp.MustCompile(`msg="file watcher up"`))
	d.WaitLog(regexp.MustCompile(`msg="config reload" trigger=rescan`)) // the start-up rescan
	harness.Replace(t, settingsDir, "awakend.yaml", "gateway:\n  api_keys: [k2]\n")
	d.WaitLog(regexp.MustCompile(`msg="config reload" trigger=watch result=applied .*changes="~settings \(gateway.api_keys\)"`))
	req, _ := http.NewRequest("GET", d.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer k2")
	resp, err := d.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the key of the saved settings file is refused: %d", resp.StatusCode)
	}
}
