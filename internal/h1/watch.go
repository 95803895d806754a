package h1

import (
	"errors"
	"os"
	"sync"
	"time"
)

// A request is watched for its client going away only once it has run
// for Server.WatchAfter. Arming a watch costs no timer and no goroutine:
// armed requests join a queue in the order they were armed, which, all
// waiting the same time, is the order they fall due in, and one timer,
// running only while the queue holds requests, starts the watches of
// those due every WatchAfter. (A timer per request, the obvious way,
// wakes the runtime's network poller each time it is set: a context
// switch per request.)

// watchQueue is a server's queue of armed requests.
type watchQueue struct {
	after time.Duration

	mu      sync.Mutex
	items   []armed
	head    int // items[:head] are done
	timer   *time.Timer
	ticking bool
	stopped bool
}

// armed is a request waiting for its watch.
type armed struct {
	c  *conn
	w  *response
	at time.Time
}

// push arms w's watch.
func (q *watchQueue) push(c *conn, w *response) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.items = append(q.items, armed{c, w, time.Now()})
	if q.ticking {
		return
	}
	q.ticking = true
	if q.timer == nil {
		q.timer = time.AfterFunc(q.after, q.tick)
		return
	}
	q.timer.Reset(q.after)
}

// tick starts the watches due, and runs again after WatchAfter while
// requests wait.
func (q *watchQueue) tick() {
	q.mu.Lock()
	due := time.Now().Add(-q.after)
	var start []armed
	for q.head < len(q.items) && !q.items[q.head].at.After(due) {
		start = append(start, q.items[q.head])
		q.items[q.head] = armed{}
		q.head++
	}
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.ticking = len(q.items) > 0 && !q.stopped
	if q.ticking {
		q.timer.Reset(q.after)
	}
	q.mu.Unlock()
	for _, a := range start {
		a.c.startWatch(a.w)
	}
}

// stop ends the ticks; armed requests are no longer watched.
func (q *watchQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	if q.timer != nil {
		q.timer.Stop()
	}
	clear(q.items)
	q.items, q.head = nil, 0
}

// arm queues a watch for w's client going away, once the request is read
// in full, unless the client already sent more (it is there).
func (c *conn) arm(w *response) {
	if c.br.Buffered() > 0 {
		return
	}
	c.mu.Lock()
	c.armed = w
	c.mu.Unlock()
	c.srv.watches.push(c, w)
}

// startWatch starts the watch for w, if it still runs and is armed.
func (c *conn) startWatch(w *response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed != w {
		return // answered already
	}
	c.armed = nil
	done := make(chan struct{})
	c.watching = done
	go c.watch(done)
}

// watch blocks reading the connection while the request runs: EOF or an
// error means the client went away, and the request's context is
// cancelled; a byte is the start of the client's next request, kept for
// it; disarm ends the wait. It closes done when it returns.
func (c *conn) watch(done chan struct{}) {
	defer close(done)
	var b [1]byte
	n, err := c.rwc.Read(b[:])
	switch {
	case n == 1:
		c.cr.keep(b[0])
	case errors.Is(err, os.ErrDeadlineExceeded): // disarmed
	default:
		c.cancelRequest(ErrClientGone)
	}
}

// disarm ends the request's watch, armed or running, and waits for it.
func (c *conn) disarm() {
	c.mu.Lock()
	c.armed = nil
	done := c.watching
	c.watching = nil
	c.mu.Unlock()
	if done != nil {
		c.rwc.SetReadDeadline(aLongTimeAgo)
		<-done
		c.rwc.SetReadDeadline(time.Time{})
	}
}
