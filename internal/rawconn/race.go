//go:build race

package rawconn

// raceEnabled: the race detector learns from the runtime's own system
// calls that a write to a socket happens before the read of its bytes,
// in-process; raw calls would hide that and make it report races that
// are none.
const raceEnabled = true
