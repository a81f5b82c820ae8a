package tcpstate

import (
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// Every state change in every test is checked against the table. The
	// engine is pure: its tests need no namespace, no tool and no network.
	strictTransitions = true
	os.Exit(m.Run())
}

func TestTransitionNotInTablePanicsInTests(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "not in the table") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	e := NewEndpoint(Config{})
	var out Output
	e.setState(&out, TimeWait, CauseRcvSYN) // CLOSED -> TIME-WAIT is no row
}
