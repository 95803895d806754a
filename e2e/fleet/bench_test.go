package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/fleet"
	"github.com/awakend/awakend/internal/etcdtest"
	"github.com/awakend/awakend/internal/scaleset"
	"github.com/awakend/awakend/pack"
)

// BenchmarkFleet publishes the scale set (10,000 agents in 500 files) to a
// three-member etcd cluster followed by ten daemons, then changes one file
// at a time. It reports publish-wait-s, `awakend publish DIR --wait` of the
// whole set as a command (validation, packing, the etcd writes, and every
// daemon fetching, loading and applying it), and edit-p50-ms and
// edit-max-ms, from the transaction that moves the pointer to the last of
// the ten acknowledgements of a one-file change, over b.N changes. Run it
// with
//
//	go test -run '^$' -bench Fleet -benchtime 5x ./e2e/fleet/
func BenchmarkFleet(b *testing.B) {
	f := &cluster{etcd: etcdtest.Start(b, 3), prefix: "/awakend-bench/"}
	dir := b.TempDir()
	files := scaleset.Files()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	key := scaleset.KeyVar + "=sk-bench-0123456789"
	start := time.Now()
	r := harness.Run(b, append(f.env("", ""), key), "publish", dir)
	if r.Code != 0 {
		b.Fatalf("publish: %s%s", r.Stdout, r.Stderr)
	}
	publishOnly := time.Since(start)
	var daemons []*harness.Daemon
	for i := range 10 {
		daemons = append(daemons, harness.Start(b, "", harness.Options{
			LogLevel: "warn", Env: append(f.env(fmt.Sprintf("bench-%02d", i), b.TempDir()), key),
		}))
	}
	// The whole set again, changed, so that every daemon loads it anew.
	first := "000-team.yaml"
	if err := os.WriteFile(filepath.Join(dir, first), append(files[first], "# changed\n"...), 0o644); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	r = harness.Run(b, append(f.env("", ""), key), "publish", dir, "--wait")
	if r.Code != 0 || !strings.Contains(r.Stdout, "all 10 hosts serve pack") {
		b.Fatalf("publish --wait: %s%s", r.Stdout, r.Stderr)
	}
	publishWait := time.Since(start)

	st, err := fleet.Dial(fleet.Options{Endpoints: f.etcd.Endpoints(), Prefix: f.prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var edits []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("%03d-team.yaml", 1+i%(scaleset.FileCount-1))
		files[name] = append(files[name], fmt.Sprintf("# edit %d\n", i)...)
		var pf []pack.File
		for n, data := range files {
			pf = append(pf, pack.File{Path: n, Data: data})
		}
		p, err := pack.New(pf)
		if err != nil {
			b.Fatal(err)
		}
		cur, _, err := st.Current(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Publish(b.Context(), p, fleet.PublishOptions{Seen: cur}); err != nil {
			b.Fatal(err)
		}
		moved := time.Now()
		acks, err := st.Await(b.Context(), p.ID)
		if err != nil {
			b.Fatal(err)
		}
		last := time.Since(moved)
		for _, a := range acks {
			if a.Pack != p.ID {
				b.Fatalf("%s did not apply the edit: %+v", a.Host, a.Last)
			}
		}
		edits = append(edits, last)
	}
	b.StopTimer()
	slices.Sort(edits)
	b.ReportMetric(publishOnly.Seconds(), "publish-s")
	b.ReportMetric(publishWait.Seconds(), "publish-wait-s")
	b.ReportMetric(float64(edits[len(edits)/2])/1e6, "edit-p50-ms")
	b.ReportMetric(float64(edits[len(edits)-1])/1e6, "edit-max-ms")
	b.ReportMetric(0, "ns/op")
}
