//go:build race

package harness

// raceEnabled reports whether the test binary runs under the race
// detector; Build then builds the daemon with -race too.
const raceEnabled = true
