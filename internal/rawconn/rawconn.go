// Package rawconn reads and writes a TCP connection with plain system
// calls, leaving out the Go runtime's bookkeeping around them.
//
// A Go program enters every blocking-capable system call through the
// runtime, which first hands its processor over in case the call blocks
// and, when all processors were idle, wakes the sysmon thread from its
// deep sleep to watch the call. A socket of the network poller never
// blocks (it is non-blocking: a read with nothing to read fails with
// EAGAIN, and the goroutine waits in the poller instead), so that care
// buys nothing for it; but a proxy at low load finds every processor idle
// between requests, and pays for the wake-up, a futex call and a thread
// switch to another CPU, on each one (about 5 µs on the two-core machine
// the gateway is measured on; BenchmarkGatewayOverhead).
//
// Conn does the reads and writes of a *net.TCPConn inside its RawConn,
// whose Read and Write wait in the poller, deadlines included, when the
// socket is not ready. Under the race detector, which learns from the
// runtime's system calls that I/O orders memory accesses, Wrap returns
// the connection unchanged.
package rawconn

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Conn is a TCP connection read and written with raw system calls. Its
// other methods are the connection's. Unlike a net.Conn, it takes one
// Read and one Write at a time (as a bufio.Reader and a bufio.Writer use
// it); a concurrent reader reads the connection itself.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The calls in progress, kept here so that the functions handed to
	// rc are made once, not at each call.
	rp, wp       []byte
	rn, wn       int
	rerr, werr   error
	readFn       func(fd uintptr) bool
	writeFn      func(fd uintptr) bool
	laddr, raddr net.Addr
}

// Wrap returns c as a Conn, or c itself when it is not a TCP connection,
// its RawConn is unavailable, or the race detector is on.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !supported || raceEnabled {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &Conn{TCPConn: tc, rc: rc, laddr: tc.LocalAddr(), raddr: tc.RemoteAddr()}
	rw.readFn, rw.writeFn = rw.read, rw.write
	return rw
}

// Read reads as (*net.TCPConn).Read does: io.EOF at the end, a
// *net.OpError otherwise.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	c.rp = nil
	if err == nil {
		err = c.rerr
	} else {
		err = unwrap(err)
	}
	switch {
	case err == nil && c.rn == 0:
		return 0, io.EOF
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
	}
	return c.rn, nil
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, errno := rawRead(fd, c.rp)
		switch errno {
		case 0:
			c.rn = n
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller
		default:
			c.rerr = os.NewSyscallError("read", errno)
		}
		return true
	}
}

// Write writes all of p, as (*net.TCPConn).Write does.
func (c *Conn) Write(p []byte) (int, error) {
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wp = nil
	if err == nil {
		err = c.werr
	} else {
		err = unwrap(err)
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
	}
	return n, nil
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wp) {
		n, errno := rawWrite(fd, c.wp[c.wn:])
		switch errno {
		case 0:
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait in the poller
		default:
			c.werr = os.NewSyscallError("write", errno)
			return true
		}
	}
	return true
}

// unwrap returns the cause of a RawConn's failure (a deadline, a closed
// connection): RawConn reports it as a *net.OpError of its own, "raw-read".
func unwrap(err error) error {
	if oe, ok := err.(*net.OpError); ok {
		return oe.Err
	}
	return err
}
