//go:build !race

package inference

// raceEnabled reports whether the test binary runs under the race
// detector; the daemon is then built with -race too.
const raceEnabled = false
