// Package activation receives the listening sockets systemd passes to a
// socket-activated service: the LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES
// protocol of sd_listen_fds(3). It owns nothing else; the daemon decides
// what to serve on them.
package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// firstFD is SD_LISTEN_FDS_START: the passed descriptors are 3, 4, ….
const firstFD = 3

// Listener is one passed socket and the name its socket unit gave it
// (FileDescriptorName=, by default the socket unit's name).
type Listener struct {
	net.Listener
	Name string
}

// Listeners returns the listening sockets passed to this process, in the
// order systemd passed them, or none when the process was not socket
// activated (LISTEN_PID unset or naming another process). It then unsets
// the three variables, so that a child does not take the sockets for its
// own. The passed descriptors are closed: the listeners hold duplicates,
// close-on-exec as every descriptor Go opens. A passed descriptor that is
// not a listening socket, or a malformed variable, is an error; the
// listeners built before it are closed.
func Listeners() ([]Listener, error) {
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	return listeners(os.Getenv, os.Getpid(), firstFD)
}

// listeners is Listeners with the environment, the process id and the first
// descriptor as parameters.
func listeners(getenv func(string) string, pid, first int) ([]Listener, error) {
	pidVar, fdsVar := getenv("LISTEN_PID"), getenv("LISTEN_FDS")
	if pidVar == "" {
		return nil, nil
	}
	p, err := strconv.Atoi(pidVar)
	if err != nil || p <= 0 {
		return nil, fmt.Errorf("socket activation: LISTEN_PID=%q is not a process id", pidVar)
	}
	if p != pid {
		return nil, nil // meant for another process (a parent that did not unset it)
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q is not a number of descriptors", fdsVar)
	}
	var names []string
	if v := getenv("LISTEN_FDNAMES"); v != "" {
		names = strings.Split(v, ":")
		if len(names) != n {
			return nil, fmt.Errorf("socket activation: LISTEN_FDNAMES has %d names for LISTEN_FDS=%d", len(names), n)
		}
	}
	out := make([]Listener, 0, n)
	fail := func(err error) ([]Listener, error) {
		for _, l := range out {
			l.Close()
		}
		return nil, err
	}
	for i := range n {
		fd := first + i
		name := "LISTEN_FD_" + strconv.Itoa(fd)
		if names != nil {
			name = names[i]
		}
		f := os.NewFile(uintptr(fd), name)
		ln, err := net.FileListener(f) // a duplicate; the original is closed below
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("socket activation: descriptor %d (%s): %w", fd, name, err))
		}
		out = append(out, Listener{Listener: ln, Name: name})
	}
	return out, nil
}
