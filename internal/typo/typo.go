// Package typo measures how far apart two spellings are, for the "did you mean" hints of
// the daemon (an unknown app or namespace) and the ecosystem loader (an unknown attribute):
// one measure, so that every hint treats a typo alike.
package typo

// Distance is the Damerau-Levenshtein distance between a and b, in runes: the insertions,
// deletions, substitutions and swaps of two neighbouring letters ("wbe" for "web" is one
// edit) that turn a into b.
func Distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}
