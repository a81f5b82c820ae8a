//go:build race

package tcpstate

const raceEnabled = true
