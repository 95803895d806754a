// Package etcdtest runs a real etcd cluster of a few members on loopback
// ports for tests: Debian's etcd-server package provides the binary
// (.ci/run installs it). A test that asks for a cluster without the binary
// fails, naming the package to install.
package etcdtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/etcdhttp"
)

// Binary finds the etcd server: $ETCD_BINARY, etcd on $PATH, or Debian's
// /usr/bin/etcd.
func Binary() (string, error) {
	if b := os.Getenv("ETCD_BINARY"); b != "" {
		return b, nil
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	return "", fmt.Errorf("etcd not found: install Debian's etcd-server package (apt-get install etcd-server), or set ETCD_BINARY")
}

// Cluster is a running etcd cluster.
type Cluster struct {
	tb      testing.TB
	binary  string
	members []*member
}

type member struct {
	name, dir, client, peer string
	args                    []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a cluster of n members and waits until it has a leader. The
// cluster is killed when the test ends.
func Start(tb testing.TB, n int) *Cluster {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{tb: tb, binary: bin}
	root := tb.TempDir()
	var initial []string
	for i := range n {
		m := &member{name: "m" + strconv.Itoa(i), client: "http://" + freePort(tb), peer: "http://" + freePort(tb)}
		m.dir = filepath.Join(root, m.name)
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	for _, m := range c.members {
		m.args = []string{
			"--name", m.name, "--data-dir", m.dir,
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(root),
			// Fast elections, so that a killed leader is replaced within a
			// second rather than several.
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-outputs", filepath.Join(root, m.name+".log"),
		}
		c.start(m)
	}
	tb.Cleanup(func() {
		for _, m := range c.members {
			c.kill(m)
		}
	})
	for i := range c.members {
		c.WaitHealthy(i)
	}
	return c
}

// Endpoints are the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client)
	}
	return eps
}

// Endpoint is member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.members[i].client }

// client is a client of every member, closed when the test ends.
func (c *Cluster) client() *etcdhttp.Client {
	c.tb.Helper()
	cli, err := etcdhttp.New(c.Endpoints(), 5*time.Second)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.tb.Cleanup(cli.Close)
	return cli
}

// Compact discards the cluster's history up to its current revision, and
// returns that revision: a watch from an earlier one is canceled.
func (c *Cluster) Compact() int64 {
	c.tb.Helper()
	cli := c.client()
	resp, err := cli.Range(context.Background(), etcdhttp.RangeRequest{Key: []byte("\x00")})
	if err != nil {
		c.tb.Fatalf("reading the revision to compact at: %v", err)
	}
	rev := int64(resp.Header.Revision)
	if err := cli.Compact(context.Background(), rev); err != nil {
		c.tb.Fatalf("compacting at revision %d: %v", rev, err)
	}
	return rev
}

// Dump reads every key under prefix and its value.
func (c *Cluster) Dump(prefix string) map[string]string {
	c.tb.Helper()
	key, end := etcdhttp.Prefix(prefix)
	resp, err := c.client().Range(context.Background(), etcdhttp.RangeRequest{Key: key, RangeEnd: end})
	if err != nil {
		c.tb.Fatalf("reading the keys under %s: %v", prefix, err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// Kill stops member i with SIGKILL and waits for it to exit.
func (c *Cluster) Kill(i int) { c.kill(c.members[i]) }

// Freeze stops member i with SIGSTOP: its connections stay open, and it
// answers nothing on them, until Thaw.
func (c *Cluster) Freeze(i int) { c.signal(c.members[i], syscall.SIGSTOP) }

// Thaw resumes member i after Freeze.
func (c *Cluster) Thaw(i int) { c.signal(c.members[i], syscall.SIGCONT) }

func (c *Cluster) signal(m *member, sig syscall.Signal) {
	c.tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		c.tb.Fatalf("etcd member %s is not running", m.name)
	}
	if err := m.cmd.Process.Signal(sig); err != nil {
		c.tb.Fatalf("signalling etcd member %s: %v", m.name, err)
	}
}

// Restart starts member i again, with its data, and waits until it is
// healthy.
func (c *Cluster) Restart(i int) {
	c.start(c.members[i])
	c.WaitHealthy(i)
}

// Leader is the index of the member that leads, from the members' own
// metrics; -1 if none answers that it leads.
func (c *Cluster) Leader() int {
	for i, m := range c.members {
		_, body, err := get(m.client + "/metrics")
		if err == nil && strings.Contains(body, "\netcd_server_is_leader 1") {
			return i
		}
	}
	return -1
}

// WaitHealthy waits until member i reports itself healthy (it has a
// leader and can serve), failing the test after 30 s.
func (c *Cluster) WaitHealthy(i int) {
	c.tb.Helper()
	m := c.members[i]
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := get(m.client + "/health")
		if err == nil && code == http.StatusOK && strings.Contains(body, `"health":"true"`) {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(filepath.Dir(m.dir), m.name+".log"))
			c.tb.Fatalf("etcd member %s not healthy after 30 s (%v); its log:\n%s", m.name, err, tail(log, 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) start(m *member) {
	c.tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := exec.Command(c.binary, m.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("starting etcd: %v", err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(m.done)
}

func (c *Cluster) kill(m *member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// freePort reserves a loopback port for a moment and returns host:port.
func freePort(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// get fetches url's body, bounded in time and size.
func get(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
