//go:build race

package reliability_test

// raceEnabled: the race detector slows TLS and JWT work several times over,
// so load tests pace themselves to stay below the machine's capacity.
const raceEnabled = true
