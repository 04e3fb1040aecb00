//go:build race

package ecosystem

func init() { raceEnabled = true }
