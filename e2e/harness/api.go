package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Diagnostic is one problem of a rejected reload, as the API serves it.
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// Reload is one reload in GET /api/v1/status.
type Reload struct {
	Trigger     string       `json:"trigger"`
	Result      string       `json:"result"`
	Version     uint64       `json:"version"`
	Pack        string       `json:"pack"`
	Changes     string       `json:"changes"`
	Error       string       `json:"error"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// HasCode reports whether one of the reload's diagnostics has code.
func (r *Reload) HasCode(code string) bool {
	return r != nil && slices.ContainsFunc(r.Diagnostics, func(d Diagnostic) bool { return d.Code == code })
}

// Status is the part of GET /api/v1/status the tests read.
type Status struct {
	Version    uint64         `json:"version"`
	Resources  map[string]int `json:"resources"`
	LastReload *Reload        `json:"last_reload"`
	Reloads    []struct {
		Trigger string `json:"trigger"`
		Result  string `json:"result"`
		Count   uint64 `json:"count"`
	} `json:"reloads"`
	Watcher struct {
		Up        bool   `json:"up"`
		Mode      string `json:"mode"`
		Dirs      int    `json:"dirs"`
		LastError string `json:"last_error"`
	} `json:"watcher"`
	// Source is a fleet's etcd; nil for a directory.
	Source *struct {
		Prefix  string `json:"prefix"`
		Pack    string `json:"pack"`
		Stale   bool   `json:"stale"`
		Reason  string `json:"reason"`
		Current string `json:"current"`
	} `json:"source"`
}

// Count is the number of finished reloads of a trigger and result; ""
// matches any.
func (s Status) Count(trigger, result string) uint64 {
	var n uint64
	for _, r := range s.Reloads {
		if (trigger == "" || r.Trigger == trigger) && (result == "" || r.Result == result) {
			n += r.Count
		}
	}
	return n
}

// Total is the number of finished reloads, the start-up load and the
// watcher's start-up rescan included.
func (s Status) Total() uint64 { return s.Count("", "") }

// Watched is the number of reloads of a result the watcher asked for:
// "watch", and "rescan", which it uses after a new directory, a setup or
// an overflow, and once when its watches are up.
func (s Status) Watched(result string) uint64 {
	return s.Count("watch", result) + s.Count("rescan", result)
}

// LastResult is last_reload.result, "" if none.
func (s Status) LastResult() string {
	if s.LastReload == nil {
		return ""
	}
	return s.LastReload.Result
}

// Status reads GET /api/v1/status; anything but 200 fails the test.
func (d *Daemon) Status() Status {
	d.tb.Helper()
	var s Status
	if code := d.GetJSON("/api/v1/status", &s); code != http.StatusOK {
		d.tb.Fatalf("GET /api/v1/status: HTTP %d", code)
	}
	return s
}

// WaitStatus waits until cond holds for the status, checking once now and
// again whenever a notification or a log line arrives, then Settles. Each
// reload ends with READY=1, sent once the new snapshot serves and the
// status reports it, so no reload's effect is missed. It returns the
// status that satisfied cond; what says what is awaited, for the failure.
func (d *Daemon) WaitStatus(what string, cond func(Status) bool) Status {
	d.tb.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		ch := d.Changed()
		if d.SawNote(exitedNote) {
			d.tb.Fatalf("awakend exited (%v) waiting until %s", d.cmd.ProcessState, what)
		}
		s := d.Status()
		if cond(s) {
			d.Settle(s)
			return s
		}
		select {
		case <-ch:
		case <-d.exited:
			d.tb.Fatalf("awakend exited (%v) waiting until %s", d.cmd.ProcessState, what)
		case <-deadline.C:
			d.tb.Fatalf("not %s within %v; status: %+v", what, Timeout, s)
		}
	}
}

// Settle waits for the READY=1 of every reload the status counts. The
// daemon records a reload in the status before it updates the metrics and
// sends READY=1, so a test that saw the status could otherwise read the
// metrics of the reload before.
func (d *Daemon) Settle(s Status) {
	d.tb.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		ch := d.Changed()
		if uint64(d.NoteCount("READY=1")) >= s.Total() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			d.tb.Fatalf("%d reloads finished, but only %d READY=1 notifications came", s.Total(), d.NoteCount("READY=1"))
		}
	}
}

// WaitReload waits until a reload finished after the ones the status
// before counts, and returns the status then.
func (d *Daemon) WaitReload(before Status) Status {
	d.tb.Helper()
	n := before.Total()
	return d.WaitStatus(fmt.Sprintf("more than %d reloads finished", n), func(s Status) bool { return s.Total() > n })
}

// Reloaded is the body of POST /api/v1/reload.
type Reloaded struct {
	Result  string `json:"result"`
	Version uint64 `json:"version"`
}

// Reload asks for a reload (force=false: the fingerprint decides) and
// returns its result; anything but 200 fails the test.
func (d *Daemon) Reload() Reloaded {
	d.tb.Helper()
	code, body := d.Post("/api/v1/reload?force=false")
	var r Reloaded
	if err := json.Unmarshal(body, &r); err != nil || code != http.StatusOK {
		d.tb.Fatalf("POST /api/v1/reload?force=false: HTTP %d, want 200: %s", code, body)
	}
	return r
}

// Get fetches path and returns the status code, headers and body.
func (d *Daemon) Get(path string) (int, http.Header, []byte) {
	d.tb.Helper()
	resp, err := d.client.Get(d.URL + path)
	if err != nil {
		d.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.tb.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, body
}

// GetJSON fetches path, decodes its JSON body into out and returns the
// status code; a body that is not JSON fails the test.
func (d *Daemon) GetJSON(path string, out any) int {
	d.tb.Helper()
	code, _, body := d.Get(path)
	if err := json.Unmarshal(body, out); err != nil {
		d.tb.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return code
}

// Post sends an empty POST to path and returns the status code and body.
func (d *Daemon) Post(path string) (int, []byte) {
	d.tb.Helper()
	resp, err := d.client.Post(d.URL+path, "application/json", nil)
	if err != nil {
		d.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.tb.Fatalf("POST %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// ParseVersion parses the X-Awakend-Config-Version of a response.
func ParseVersion(h http.Header) (uint64, error) {
	v, err := strconv.ParseUint(h.Get("X-Awakend-Config-Version"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("X-Awakend-Config-Version %q: %w", h.Get("X-Awakend-Config-Version"), err)
	}
	return v, nil
}

// Version is ParseVersion that fails the test on an error.
func Version(tb testing.TB, h http.Header) uint64 {
	tb.Helper()
	v, err := ParseVersion(h)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}
