// Package suggest finds the likely intended word for a typo, for
// "did you mean" hints in diagnostics.
package suggest

// Hint returns ` (did you mean "x"?)` for the candidate closest to s, or ""
// when none is close enough to be a likely typo.
func Hint(s string, candidates []string) string {
	if m := Closest(s, candidates); m != "" {
		return ` (did you mean "` + m + `"?)`
	}
	return ""
}

// Closest returns the candidate nearest to s by edit distance, if that
// distance is at most a third of len(s) (and at least 1 is allowed), or "".
func Closest(s string, candidates []string) string {
	best, bestD := "", max(len(s)/3, 1)+1
	for _, c := range candidates {
		if d := Distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// Distance is the edit distance between a and b in bytes, counting an
// insertion, deletion, substitution or swap of two neighbours as one edit
// (optimal string alignment).
func Distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
