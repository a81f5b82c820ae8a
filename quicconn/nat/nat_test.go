package nat

import (
	"testing"

	"github.com/statelab/statelab/lab/sandbox"
)

// The tests run in a network namespace of their own: the TCP NAT's raw
// sockets need CAP_NET_RAW.
func TestMain(m *testing.M) { sandbox.TestMain(m) }
