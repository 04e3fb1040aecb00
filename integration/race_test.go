//go:build race

package integration

// raceEnabled: these tests run under the race detector, so the corral binary they drive is
// built with it too, and a data race in the daemon or the CLI fails the test that provoked it.
const raceEnabled = true
