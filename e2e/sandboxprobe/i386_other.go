//go:build !amd64

package main

import "syscall"

// i386Getpid has no foreign ABI to try on this architecture: the check
// fails (the call "returns") rather than pass unseen.
func i386Getpid() (errno syscall.Errno, killed bool) { return syscall.ENOSYS, false }
