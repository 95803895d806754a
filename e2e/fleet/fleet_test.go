package fleet

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/internal/etcdtest"
)

// cluster is an etcd cluster and the settings that point at it.
type cluster struct {
	etcd   *etcdtest.Cluster
	prefix string
}

func newFleet(t *testing.T, members int) *cluster {
	return &cluster{etcd: etcdtest.Start(t, members), prefix: "/awakend-test/" + t.Name() + "/"}
}

// env is the environment of a daemon or command of the fleet.
func (f *cluster) env(host, stateDir string) []string {
	env := []string{
		"AWAKEND_SOURCE__ETCD__ENDPOINTS=" + strings.Join(f.etcd.Endpoints(), ","),
		"AWAKEND_SOURCE__ETCD__PREFIX=" + f.prefix,
	}
	if host != "" {
		env = append(env, "AWAKEND_SOURCE__ETCD__HOST="+host)
	}
	if stateDir != "" {
		env = append(env, "AWAKEND_STATE_DIR="+stateDir)
	}
	return env
}

// run runs an awakend command against the fleet.
func (f *cluster) run(t *testing.T, env []string, args ...string) harness.Result {
	t.Helper()
	return harness.Run(t, append(f.env("", ""), env...), args...)
}

var publishedRe = regexp.MustCompile(`(?:published|rolled back:) pack ([0-9a-f]{12})`)

// publish publishes dir and returns the pack's short ID.
func (f *cluster) publish(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := f.run(t, nil, append([]string{"publish", dir}, args...)...)
	m := publishedRe.FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil {
		t.Fatalf("awakend publish %s: exit %d\n%s%s", dir, r.Code, r.Stdout, r.Stderr)
	}
	return m[1]
}

// start runs a daemon of the fleet as host, keeping its state in
// stateDir ("" for a new one).
func (f *cluster) start(t *testing.T, host, stateDir string, env ...string) *harness.Daemon {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	return harness.Start(t, "", harness.Options{Env: append(f.env(host, stateDir), env...)})
}

// serving waits until d serves the pack whose ID starts with id.
func serving(t *testing.T, d *harness.Daemon, id string) harness.Status {
	t.Helper()
	return d.WaitStatus("serving pack "+id, func(s harness.Status) bool {
		return s.Source != nil && strings.HasPrefix(s.Source.Pack, id)
	})
}

// models lists the ids /v1/models serves.
func models(t *testing.T, d *harness.Daemon) []string {
	t.Helper()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code := d.GetJSON("/v1/models", &list); code != 200 {
		t.Fatalf("GET /v1/models: %d", code)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

const providers = "providers:\n  - {id: mock, adapter: mock}\n"

func TestPublishAppliesOnEveryHostInOneSwap(t *testing.T) {
	f := newFleet(t, 3)
	dirA := harness.ConfigDir(t, map[string]string{
		"providers.yaml": providers,
		"models.yaml":    "models:\n  - {id: m1, provider_id: mock, upstream_model: m1}\n",
	})
	a := f.publish(t, dirA)
	var hosts []*harness.Daemon
	for _, h := range []string{"host-1", "host-2", "host-3"} {
		hosts = append(hosts, f.start(t, h, ""))
	}
	for _, d := range hosts {
		serving(t, d, a)
	}

	// Two files change together: the new agent needs the new model. A
	// host that applied half of the pack would reject it.
	dirB := harness.ConfigDir(t, map[string]string{
		"providers.yaml":    providers,
		"models.yaml":       "models:\n  - {id: m1, provider_id: mock, upstream_model: m1}\n  - {id: m2, provider_id: mock, upstream_model: m2}\n",
		"agents/agent.yaml": "agents:\n  - {id: helper, model_id: m2, system_prompt: Be brief.}\n",
	})
	r := f.run(t, nil, "publish", dirB, "--wait", "--timeout", "60s")
	if r.Code != 0 || !strings.Contains(r.Stdout, "all 3 hosts serve pack") {
		t.Fatalf("publish --wait: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	b := publishedRe.FindStringSubmatch(r.Stdout)[1]
	for _, host := range []string{"host-1", "host-2", "host-3"} {
		if !regexp.MustCompile(`(?m)^` + host + `\s+` + b + `\s+version 2\s+fingerprint [0-9a-f]{12}\s+applied at `).MatchString(r.Stdout) {
			t.Errorf("publish --wait does not show %s applying %s as version 2:\n%s", host, b, r.Stdout)
		}
	}
	for _, d := range hosts {
		st := serving(t, d, b)
		if st.Version != 2 || st.LastReload.Trigger != "etcd" {
			t.Errorf("after one publish: version %d by %q, want version 2 by the etcd trigger", st.Version, st.LastReload.Trigger)
		}
		if got := models(t, d); !slices.Equal(got, []string{"helper", "m1", "m2"}) {
			t.Errorf("serves %q", got)
		}
		if v := d.Metric("awakend_config_info", "source", "etcd", "pack", st.Source.Pack); v != 1 {
			t.Errorf("awakend_config_info for pack %s = %v", b, v)
		}
	}
	status := f.run(t, nil, "fleet", "status")
	if status.Code != 0 || !strings.Contains(status.Stdout, "current pack "+b) || strings.Count(status.Stdout, " applied") != 3 {
		t.Fatalf("fleet status: exit %d\n%s%s", status.Code, status.Stdout, status.Stderr)
	}

	// Back to the first pack, by a prefix of its ID.
	r = f.run(t, nil, "publish", "--rollback", a[:8], "--wait")
	if r.Code != 0 || !strings.Contains(r.Stdout, "rolled back: pack "+a) {
		t.Fatalf("publish --rollback: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, d := range hosts {
		serving(t, d, a)
		if got := models(t, d); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("after rollback serves %q", got)
		}
	}
	packs := f.run(t, nil, "fleet", "packs")
	if packs.Code != 0 || !strings.Contains(packs.Stdout, "* "+a) || !strings.Contains(packs.Stdout, "  "+b) {
		t.Errorf("fleet packs: exit %d\n%s%s", packs.Code, packs.Stdout, packs.Stderr)
	}
}

// Two publishers that both reviewed pack a: the first publishes, the
// second is refused rather than overwriting what it never saw.
func TestRacingPublishers(t *testing.T) {
	f := newFleet(t, 1)
	dir := func(n string) string {
		return harness.ConfigDir(t, map[string]string{"p.yaml": providers + "models:\n  - {id: m" + n + ", provider_id: mock, upstream_model: m}\n"})
	}
	a := f.publish(t, dir("1"))
	first, second := dir("2"), dir("3")
	results := make(chan harness.Result, 2)
	for _, d := range []string{first, second} {
		go func() { results <- f.run(t, nil, "publish", d, "--expect", a) }()
	}
	r1, r2 := <-results, <-results
	if r1.Code != 0 {
		r1, r2 = r2, r1
	}
	if r1.Code != 0 || r2.Code != 1 {
		t.Fatalf("two publishers on top of %s: exit %d and %d, want one 0 and one 1\n%s%s\n%s%s", a, r1.Code, r2.Code, r1.Stdout, r1.Stderr, r2.Stdout, r2.Stderr)
	}
	if !strings.Contains(r2.Stderr, "changed while publishing") && !strings.Contains(r2.Stderr, "(--expect): nothing published") {
		t.Errorf("the losing publisher does not say why: %s", r2.Stderr)
	}
	winner := publishedRe.FindStringSubmatch(r1.Stdout)[1]
	status := f.run(t, nil, "fleet", "packs")
	if !strings.Contains(status.Stdout, "* "+winner) {
		t.Errorf("the winner %s is not current:\n%s", winner, status.Stdout)
	}
}

func TestAnInvalidDirectoryIsNotPublished(t *testing.T) {
	f := newFleet(t, 1)
	dir := harness.ConfigDir(t, map[string]string{
		"models.yaml": "models:\n  - {id: m1, provider_id: nowhere, upstream_model: m1}\n",
	})
	r := f.run(t, nil, "publish", dir)
	if r.Code != 1 || !strings.Contains(r.Stdout, "models.yaml:2:") || !strings.Contains(r.Stdout, "nothing published") {
		t.Fatalf("publish of an invalid directory: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	status := f.run(t, nil, "fleet", "status")
	if status.Code == 0 || !strings.Contains(status.Stderr, "nothing published") {
		t.Fatalf("fleet status after a refused publish: exit %d\n%s%s", status.Code, status.Stdout, status.Stderr)
	}
}

// A pack whose secret only some hosts have: the others reject it, keep
// serving the previous pack, and fleet status says who and why. The
// secret itself never reaches etcd.
func TestAPackRejectedOnOneHost(t *testing.T) {
	f := newFleet(t, 1)
	a := f.publish(t, harness.ConfigDir(t, map[string]string{"p.yaml": providers + "models:\n  - {id: m1, provider_id: mock, upstream_model: m1}\n"}))
	const secret = "team-secret-0123456789abcdef"
	good1 := f.start(t, "host-1", "", "TEAM_KEY="+secret)
	good2 := f.start(t, "host-2", "", "TEAM_KEY="+secret)
	bad := f.start(t, "host-3", "")
	for _, d := range []*harness.Daemon{good1, good2, bad} {
		serving(t, d, a)
	}
	dir := harness.ConfigDir(t, map[string]string{
		"p.yaml": "providers:\n  - {id: team, adapter: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: \"${TEAM_KEY}\"}\n" +
			"models:\n  - {id: m1, provider_id: team, upstream_model: m1}\n",
	})
	// The publisher has no TEAM_KEY either: without --assume-secrets the
	// directory does not validate here.
	if r := f.run(t, nil, "publish", dir); r.Code != 1 || !strings.Contains(r.Stdout, "TEAM_KEY") {
		t.Fatalf("publish without the secret: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := f.run(t, nil, "publish", dir, "--assume-secrets", "--wait", "--timeout", "60s")
	if r.Code != 1 {
		t.Fatalf("publish --wait with one host rejecting: exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	b := publishedRe.FindStringSubmatch(r.Stdout)[1]
	if !regexp.MustCompile(`(?m)^host-3\s+`+a+`\s+version 1\s+fingerprint [0-9a-f]{12}\s+rejected \(serving `+a+`\) at [0-9: -]+\n\s+p\.yaml:\d+:\d+: error: .*TEAM_KEY`).MatchString(r.Stdout) ||
		!strings.Contains(r.Stdout, "1 of 3 hosts do not serve pack "+b) {
		t.Errorf("publish --wait does not show host-3's rejection and its diagnostic:\n%s", r.Stdout)
	}
	serving(t, good1, b)
	serving(t, good2, b)
	st := bad.Status()
	if !strings.HasPrefix(st.Source.Pack, a) || st.LastReload.Result != "rejected" || !strings.HasPrefix(st.LastReload.Pack, b) {
		t.Errorf("host-3: serving %s, last reload %s of %s", st.Source.Pack, st.LastReload.Result, st.LastReload.Pack)
	}
	status := f.run(t, nil, "fleet", "status")
	if status.Code != 1 || !strings.Contains(status.Stdout, "host-3") || !strings.Contains(status.Stdout, "TEAM_KEY") {
		t.Errorf("fleet status with a rejecting host: exit %d\n%s", status.Code, status.Stdout)
	}
	// Nothing under the prefix holds the secret: not the pack, not an
	// acknowledgement.
	for k, v := range dump(t, f) {
		if strings.Contains(v, secret) {
			t.Errorf("etcd key %s holds the secret", k)
		}
	}
}

// dump reads every key under the fleet's prefix, packs decompressed.
func dump(t *testing.T, f *cluster) map[string]string {
	t.Helper()
	out := f.etcd.Dump(f.prefix)
	if len(out) == 0 {
		t.Fatal("nothing under the prefix")
	}
	return out
}

// Publishes still arrive when etcd's leader is killed just before one, a
// member is down, and the daemons' revision has been compacted away.
func TestPublishesArriveThroughEtcdFaults(t *testing.T) {
	f := newFleet(t, 3)
	dir := func(n string) string {
		return harness.ConfigDir(t, map[string]string{"p.yaml": providers + "models:\n  - {id: m" + n + ", provider_id: mock, upstream_model: m}\n"})
	}
	a := f.publish(t, dir("1"))
	hosts := []*harness.Daemon{f.start(t, "host-1", ""), f.start(t, "host-2", "")}
	for _, d := range hosts {
		serving(t, d, a)
	}
	// The leader dies while a publish runs.
	l := f.etcd.Leader()
	published := make(chan string)
	dirB := dir("2")
	go func() { published <- f.publish(t, dirB) }()
	f.etcd.Kill(l)
	b := <-published
	for _, d := range hosts {
		serving(t, d, b)
	}
	f.etcd.Restart(l)

	other := (f.etcd.Leader() + 1) % 3
	f.etcd.Kill(other)
	c := f.publish(t, dir("3"))
	for _, d := range hosts {
		serving(t, d, c)
	}
	f.etcd.Restart(other)

	f.etcd.Compact()
	d := f.publish(t, dir("4"))
	for _, h := range hosts {
		serving(t, h, d)
		if got := models(t, h); !slices.Equal(got, []string{"m4"}) {
			t.Errorf("serves %q", got)
		}
	}
}

// A daemon that starts while etcd is away serves the local copy of the
// last pack it applied, says it is stale, and catches up once etcd is
// back. Without a local copy, or with a corrupt one, it does not start.
func TestStartWhileEtcdIsDown(t *testing.T) {
	f := newFleet(t, 1)
	a := f.publish(t, harness.ConfigDir(t, map[string]string{"p.yaml": providers + "models:\n  - {id: m1, provider_id: mock, upstream_model: m}\n"}))
	state := t.TempDir()
	first := f.start(t, "host-1", state)
	serving(t, first, a)
	first.Stop()
	if _, err := os.Stat(filepath.Join(state, "last-known-good.json")); err != nil {
		t.Fatalf("no local copy: %v", err)
	}

	f.etcd.Kill(0)
	d := f.start(t, "host-1", state)
	st := serving(t, d, a)
	if !st.Source.Stale || st.Source.Reason == "" {
		t.Errorf("serving the local copy while etcd is down: stale %v (%q)", st.Source.Stale, st.Source.Reason)
	}
	if !d.SawNote("stale: etcd unreachable") {
		t.Error("STATUS= does not say the daemon is stale")
	}
	if v := d.Metric("awakend_config_stale"); v != 1 {
		t.Errorf("awakend_config_stale = %v while etcd is down", v)
	}
	if got := models(t, d); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("serves %q", got)
	}

	// No local copy: the daemon exits 1 and says why.
	empty := t.TempDir()
	r := harness.Run(t, f.env("host-2", empty), "serve", "--listen", "127.0.0.1:0", "--settings", os.DevNull)
	if r.Code != 1 || !strings.Contains(r.Stderr, "no local copy") {
		t.Errorf("start without etcd or a local copy: exit %d\n%s", r.Code, r.Stderr)
	}
	// A corrupt one is no better than none.
	if err := os.WriteFile(filepath.Join(empty, "last-known-good.json"), []byte("not a state file"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = harness.Run(t, f.env("host-2", empty), "serve", "--listen", "127.0.0.1:0", "--settings", os.DevNull)
	if r.Code != 1 || !strings.Contains(r.Stderr, "last-known-good.json: not a state file") {
		t.Errorf("start with a corrupt local copy: exit %d\n%s", r.Code, r.Stderr)
	}

	f.etcd.Restart(0)
	d.WaitStatus("not stale", func(s harness.Status) bool { return s.Source != nil && !s.Source.Stale })
	b := f.publish(t, harness.ConfigDir(t, map[string]string{"p.yaml": providers + "models:\n  - {id: m2, provider_id: mock, upstream_model: m}\n"}))
	serving(t, d, b)
	if v := d.Metric("awakend_config_stale"); v != 0 {
		t.Errorf("awakend_config_stale = %v once etcd is back", v)
	}
}
