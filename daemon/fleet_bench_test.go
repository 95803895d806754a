package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/fleet"
	"github.com/awakend/awakend/internal/etcdtest"
	"github.com/awakend/awakend/internal/scaleset"
	"github.com/awakend/awakend/pack"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/reload"
)

// BenchmarkFleetOneFileEdit measures one daemon's reload of a one-file
// edit of the scale set published to etcd: read the pointer, fetch and
// check the pack, load, validate, diff and swap, and keep the local copy.
func BenchmarkFleetOneFileEdit(b *testing.B) {
	c := etcdtest.Start(b, 1)
	st, err := fleet.Dial(fleet.Options{Endpoints: c.Endpoints(), Prefix: "/bench/"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	files := scaleset.Files()
	ctx := context.Background()
	publish := func() {
		var pf []pack.File
		for n, d := range files {
			pf = append(pf, pack.File{Path: n, Data: d})
		}
		p, err := pack.New(pf)
		if err != nil {
			b.Fatal(err)
		}
		cur, _, err := st.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Publish(ctx, p, fleet.PublishOptions{Seen: cur}); err != nil {
			b.Fatal(err)
		}
	}
	publish()
	src := newFleetSource(st, b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	a := reload.NewApplier(src, config.Options{Cache: config.NewCache(), LookupEnv: scaleEnv}, provider.New)
	if res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup}); res.Outcome != reload.OutcomeApplied {
		b.Fatal(res.Err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		name := fmt.Sprintf("%03d-team.yaml", 1+i%(scaleset.FileCount-1))
		files[name] = append(files[name], fmt.Sprintf("  - {id: extra-%d, model_id: model-1}\n", i)...)
		publish()
		b.StartTimer()
		res := a.Apply(ctx, reload.Request{Trigger: reload.TriggerEtcd})
		if res.Outcome != reload.OutcomeApplied {
			b.Fatal(res.Outcome, res.Err)
		}
	}
}
