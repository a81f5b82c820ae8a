package quicconn

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/internal/labtest"
)

func TestExperimentsPass(t *testing.T) {
	for _, tc := range []struct{ name, metric string }{
		{"quic/rebind-port", "transfer_bytes"},
		{"quic/rebind-addr", "transfer_bytes"},
		{"quic/migrate", "transfer_bytes"},
		{"quic/spoofed-path", "transfer_bytes"},
		{"quic/tcp-contrast", "quic_delivered_bytes"},
	} {
		t.Run(strings.TrimPrefix(tc.name, "quic/"), func(t *testing.T) {
			r := labtest.RunExperiment(t, tc.name, 1)
			if r.Metrics[tc.metric] != float64(TransferSize) {
				t.Errorf("%s = %v, want %d", tc.metric, r.Metrics[tc.metric], TransferSize)
			}
		})
	}
}
