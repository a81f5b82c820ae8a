//go:build !race

package quicconn

const raceEnabled = false
