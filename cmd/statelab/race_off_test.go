//go:build !race

package main

// raceEnabled: the race detector's shadow memory counts in a process's RSS.
const raceEnabled = false
