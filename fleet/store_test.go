package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/etcdhttp"
	"github.com/awakend/awakend/internal/etcdtest"
	"github.com/awakend/awakend/pack"
)

func dial(t *testing.T, endpoints []string) *Store {
	t.Helper()
	s, err := Dial(Options{Endpoints: endpoints, Prefix: "/test/" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mkpack(t *testing.T, files ...string) *pack.Pack {
	t.Helper()
	var fs []pack.File
	for i := 0; i < len(files); i += 2 {
		fs = append(fs, pack.File{Path: files[i], Data: []byte(files[i+1])})
	}
	p, err := pack.New(fs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// publish publishes p on top of whatever is current.
func publish(t *testing.T, s *Store, p *pack.Pack) Published {
	t.Helper()
	cur, _, err := s.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.Publish(t.Context(), p, PublishOptions{Seen: cur, Publisher: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestPublishFetch(t *testing.T) {
	s := dial(t, etcdtest.Start(t, 1).Endpoints())
	cur, _, err := s.Current(t.Context())
	if err != nil || cur != (Pointer{}) {
		t.Fatalf("Current of an empty store: %+v, %v", cur, err)
	}
	p := mkpack(t, "models.yaml", "models: []\n", "agents/a.yaml", "agents: []\n")
	pub := publish(t, s, p)
	if pub.Revision == 0 || pub.Previous != "" || pub.Meta.Files != 2 || pub.Meta.Chunks != 1 {
		t.Fatalf("Published %+v", pub)
	}
	cur, _, err = s.Current(t.Context())
	if err != nil || cur.ID != p.ID || cur.Revision != pub.Revision {
		t.Fatalf("Current after publish: %+v, %v; published %s at %d", cur, err, p.ID, pub.Revision)
	}
	got, err := s.Fetch(t.Context(), p.ID)
	if err != nil || got.ID != p.ID || len(got.Files) != 2 {
		t.Fatalf("Fetch: %v, %v", got, err)
	}
	// The same pack again moves nothing.
	again := publish(t, s, p)
	if again.Revision != 0 {
		t.Errorf("publishing the current pack again wrote revision %d", again.Revision)
	}
}

func TestPublishSplitsALargePack(t *testing.T) {
	defer func(n int) { chunkSize = n }(chunkSize)
	chunkSize = 4 << 10
	s := dial(t, etcdtest.Start(t, 1).Endpoints())
	noise := make([]byte, 20<<10) // incompressible: five chunks
	rand.Read(noise)
	p := mkpack(t, "big.yaml", fmt.Sprintf("# %x\n", noise))
	pub := publish(t, s, p)
	if pub.Meta.Chunks < 5 {
		t.Fatalf("%d chunks for %d compressed bytes in chunks of %d", pub.Meta.Chunks, pub.Meta.Compressed, chunkSize)
	}
	got, err := s.Fetch(t.Context(), p.ID)
	if err != nil || got.ID != p.ID {
		t.Fatalf("Fetch of a split pack: %v", err)
	}
	// A chunk gone is a clear error, never a partial pack.
	if _, err := s.etcd.DeleteRange(t.Context(), etcdhttp.DeleteRangeRequest{Key: []byte(s.chunkKey(p.ID, 2))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(t.Context(), p.ID); err == nil || !strings.Contains(err.Error(), "chunks") {
		t.Fatalf("Fetch with a chunk missing: %v", err)
	}
}

func TestConcurrentPublishLoses(t *testing.T) {
	s := dial(t, etcdtest.Start(t, 1).Endpoints())
	base := publish(t, s, mkpack(t, "a.yaml", "models: []\n"))
	seen := Pointer{ID: base.Meta.ID, Revision: base.Revision}
	first := mkpack(t, "a.yaml", "models: [] # one\n")
	second := mkpack(t, "a.yaml", "models: [] # two\n")
	if _, err := s.Publish(t.Context(), first, PublishOptions{Seen: seen}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Publish(t.Context(), second, PublishOptions{Seen: seen})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Found.ID != first.ID {
		t.Fatalf("the second publish on the same pointer: %v, want a conflict naming %s", err, first.ID[:12])
	}
	if !strings.Contains(err.Error(), "--force") {
		t.Errorf("the conflict does not say what to do: %v", err)
	}
	if cur, _, _ := s.Current(t.Context()); cur.ID != first.ID {
		t.Fatalf("the losing publish moved the pointer to %s", cur.ID)
	}
	if _, err := s.Publish(t.Context(), second, PublishOptions{Seen: seen, Force: true}); err != nil {
		t.Fatalf("a forced publish: %v", err)
	}
	if cur, _, _ := s.Current(t.Context()); cur.ID != second.ID {
		t.Fatal("the forced publish did not move the pointer")
	}
}

// A publish that finds the pointer moved to the very pack it publishes has
// nothing to refuse: the pack is current. This is also what a publish
// sees when its transaction was sent again to another member after the
// first took it without confirming.
func TestPublishFindingItsOwnPack(t *testing.T) {
	s := dial(t, etcdtest.Start(t, 1).Endpoints())
	base := publish(t, s, mkpack(t, "a.yaml", "models: []\n"))
	seen := Pointer{ID: base.Meta.ID, Revision: base.Revision}
	p := mkpack(t, "a.yaml", "models: [] # new\n")
	first, err := s.Publish(t.Context(), p, PublishOptions{Seen: seen})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Publish(t.Context(), p, PublishOptions{Seen: seen})
	if err != nil || again.Revision != first.Revision || again.Meta.ID != p.ID {
		t.Fatalf("publishing %s again on the pointer it moved: %+v, %v", pack.Short(p.ID), again, err)
	}
}

func TestRollbackAndPrune(t *testing.T) {
	s := dial(t, etcdtest.Start(t, 1).Endpoints())
	var ids []string
	for i := range 5 {
		p := mkpack(t, "a.yaml", fmt.Sprintf("models: [] # %d\n", i))
		pub, err := func() (Published, error) {
			cur, _, err := s.Current(t.Context())
			if err != nil {
				return Published{}, err
			}
			return s.Publish(t.Context(), p, PublishOptions{Seen: cur, Keep: 3})
		}()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pub.Meta.ID)
	}
	metas, err := s.Packs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 3 || metas[0].ID != ids[4] || metas[2].ID != ids[2] {
		t.Fatalf("kept %d packs, want the newest 3", len(metas))
	}
	if _, err := s.Fetch(t.Context(), ids[0]); err == nil {
		t.Error("a pruned pack can still be fetched")
	}
	cur, _, _ := s.Current(t.Context())
	back, err := s.Rollback(t.Context(), ids[2][:8], PublishOptions{Seen: cur, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	if back.Previous != ids[4] {
		t.Errorf("rollback's previous %s, want %s", back.Previous, ids[4])
	}
	if cur, _, _ := s.Current(t.Context()); cur.ID != ids[2] {
		t.Fatalf("after rollback the pointer names %s", cur.ID)
	}
	for _, id := range []string{ids[0][:8], "", "zz"} {
		if _, err := s.Rollback(t.Context(), id, PublishOptions{Force: true}); err == nil {
			t.Errorf("rollback to %q worked", id)
		}
	}
}

// A follower sees every publish once the watch is up, across a
// compaction past its revision and the loss of the leader.
func TestFollowSeesEveryPublish(t *testing.T) {
	c := etcdtest.Start(t, 3)
	s := dial(t, c.Endpoints())
	pub := dial(t, c.Endpoints())
	pub.prefix = s.prefix
	_, rev, err := s.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 64)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(ctx, rev, func(p Pointer) { seen <- p.ID })
	}()
	defer func() { cancel(); <-done }()
	expect := func(id string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case got := <-seen:
				if got == id {
					return
				}
			case <-timeout:
				t.Fatalf("the follower never saw %s", id[:12])
			}
		}
	}
	p1 := mkpack(t, "a.yaml", "models: [] # 1\n")
	publish(t, pub, p1)
	expect(p1.ID)

	// A compaction past everything while the follower watches.
	p2 := mkpack(t, "a.yaml", "models: [] # 2\n")
	publish(t, pub, p2)
	expect(p2.ID)
	c.Compact()
	p3 := mkpack(t, "a.yaml", "models: [] # 3\n")
	publish(t, pub, p3)
	expect(p3.ID)

	// The leader dies; the next publish still arrives.
	l := c.Leader()
	c.Kill(l)
	c.WaitHealthy((l + 1) % 3)
	p4 := mkpack(t, "a.yaml", "models: [] # 4\n")
	publish(t, pub, p4)
	expect(p4.ID)
	c.Restart(l)
}

// A follower whose member freezes — its connections open, nothing said on
// them — still sees the next publish, from another member, once its watch
// has lived its time.
func TestFollowAcrossAFrozenMember(t *testing.T) {
	defer func(d time.Duration) { watchLifetime = d }(watchLifetime)
	watchLifetime = time.Second
	c := etcdtest.Start(t, 3)
	s := dial(t, c.Endpoints()) // watches on the first member
	pub := dial(t, c.Endpoints()[1:])
	pub.prefix = s.prefix
	_, rev, err := s.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 64)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(ctx, rev, func(p Pointer) { seen <- p.ID })
	}()
	defer func() { cancel(); <-done }()
	p1 := mkpack(t, "a.yaml", "models: [] # 1\n")
	publish(t, pub, p1)
	if got := <-seen; got != p1.ID {
		t.Fatalf("saw %s, want %s", got, p1.ID)
	}
	c.Freeze(0)
	defer c.Thaw(0)
	c.WaitHealthy(1)
	p2 := mkpack(t, "a.yaml", "models: [] # 2\n")
	publish(t, pub, p2)
	select {
	case got := <-seen:
		if got != p2.ID {
			t.Fatalf("saw %s, want %s", got, p2.ID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the follower of a frozen member never saw the next publish")
	}
}

func TestAnnounceAwaitAndLeave(t *testing.T) {
	c := etcdtest.Start(t, 1)
	s := dial(t, c.Endpoints())
	p := mkpack(t, "a.yaml", "models: []\n")
	a := s.Announcer("host-a", 2*time.Second)
	b := s.Announcer("host-b", 2*time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	doneA, doneB := make(chan struct{}), make(chan struct{})
	go func() { defer close(doneA); a.Run(ctx) }()
	bctx, stopB := context.WithCancel(ctx)
	go func() { defer close(doneB); b.Run(bctx) }()
	defer func() { cancel(); <-doneA; <-doneB }()

	a.Set(Ack{Host: "host-a", Last: Attempt{Pack: "old", Result: "applied"}})
	b.Set(Ack{Host: "host-b", Last: Attempt{Pack: "old", Result: "applied"}})
	waitHosts(t, s, 2)

	awaited := make(chan []Ack, 1)
	go func() {
		acks, err := s.Await(t.Context(), p.ID)
		if err != nil {
			t.Error(err)
		}
		awaited <- acks
	}()
	a.Set(Ack{Host: "host-a", Pack: p.ID, Last: Attempt{Pack: p.ID, Result: "applied"}})
	select {
	case <-awaited:
		t.Fatal("Await returned before host-b answered")
	case <-time.After(300 * time.Millisecond):
	}
	b.Set(Ack{Host: "host-b", Pack: "old", Last: Attempt{Pack: p.ID, Result: "rejected", Diagnostics: []string{"a.yaml:1:1: error: x"}}})
	acks := <-awaited
	if len(acks) != 2 || acks[1].Last.Result != "rejected" {
		t.Fatalf("Await: %+v", acks)
	}
	// A daemon that stops leaves the list at once (its lease is revoked).
	stopB()
	<-doneB
	waitHosts(t, s, 1)
}

func waitHosts(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		acks, _, err := s.Hosts(t.Context())
		if err == nil && len(acks) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hosts listed, want %d (%v)", len(acks), n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An announcer whose etcd goes away writes its latest state once etcd is
// back.
func TestAnnouncerOutlivesEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	s := dial(t, c.Endpoints())
	a := s.Announcer("h", 2*time.Second)
	states := make(chan error, 64)
	a.OnState = func(err error) { states <- err }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	a.Set(Ack{Host: "h", Version: 1})
	waitHosts(t, s, 1)
	c.Kill(0)
	a.Set(Ack{Host: "h", Version: 2})
	for err := range states {
		if err != nil {
			break // the loss was reported
		}
	}
	c.Restart(0)
	deadline := time.Now().Add(20 * time.Second)
	for {
		acks, _, err := s.Hosts(t.Context())
		if err == nil && len(acks) == 1 && acks[0].Version == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after etcd came back: %+v, %v", acks, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
