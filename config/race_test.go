//go:build race

package config

// Under the race detector a load of the scale set takes seconds: fewer
// random edits.
func init() { randomEditSteps = 5 }
