package quicconn

import (
	"testing"

	"github.com/statelab/statelab/internal/sandbox"
)

func TestMain(m *testing.M) { sandbox.TestMain(m) }
