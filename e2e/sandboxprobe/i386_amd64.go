package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// int80 makes the i386 system call trap with AX=nr and returns AX.
func int80(nr uintptr) uintptr

// i386Getpid calls getpid through the i386 ABI (int $0x80) on a thread of
// its own. SystemCallArchitectures=native makes the filter kill the calling
// thread, not the process: killed reports that the thread vanished.
func i386Getpid() (errno syscall.Errno, killed bool) {
	tid := make(chan int)
	done := make(chan uintptr)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
		tid <- unix.Gettid()
		done <- int80(20) // __NR_getpid on i386
	}()
	task := fmt.Sprintf("/proc/self/task/%d", <-tid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if int(r) < 0 {
				return syscall.Errno(-int(r)), false
			}
			return 0, false
		case <-tick.C:
			// A killed thread is gone, or a zombie when it led the
			// thread group.
			b, err := os.ReadFile(task + "/stat")
			if errors.Is(err, os.ErrNotExist) {
				return 0, true
			}
			if _, after, ok := bytes.Cut(b, []byte(") ")); ok && len(after) > 0 && after[0] == 'Z' {
				return 0, true
			}
		}
	}
}
