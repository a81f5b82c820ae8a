package quicconn

import (
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m, nil) }
