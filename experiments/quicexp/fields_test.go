package quicexp

import (
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

// checkFields reads a quic/ capture with the Wireshark plugin: every
// packet yields statelab.side, every datagram its path and DCID, and the
// experiment's own events filter as fields.
func checkFields(t *testing.T, name, path string) {
	t.Helper()
	rows := labtest.StatelabFields(t, path, "", "statelab.side", "udp", "statelab.path", "statelab.dcid", "statelab.verdict")
	if len(rows) == 0 {
		t.Fatalf("%s: tshark shows no frame", name)
	}
	sides := map[string]bool{"client": true, "server": true, "attacker": true, "nat": true, "other": true}
	for _, r := range rows {
		if !sides[r[1]] {
			t.Errorf("%s frame %s: statelab.side %q, want client, server, attacker, nat or other", name, r[0], r[1])
		}
		if r[2] != "" && (r[3] == "" || r[5] == "") {
			t.Errorf("%s frame %s: a datagram without statelab.path or statelab.verdict: %q", name, r[0], r)
		}
	}
	if n := len(labtest.StatelabFields(t, path, "statelab.error")); n != 0 {
		t.Errorf("%s: %d frames with a malformed [statelab …] block", name, n)
	}
	want := map[string]string{
		"quic/rebind-port":  `statelab.event == "PATH_CHALLENGE" && statelab.side == "server"`,
		"quic/rebind-addr":  `statelab.event == "PATH_RESPONSE" && statelab.side == "client"`,
		"quic/migrate":      `statelab.event == "PATH_CHALLENGE" && statelab.pn > 0`,
		"quic/spoofed-path": `statelab.side == "attacker"`,
		"quic/tcp-contrast": `statelab.kind == "tcp" && statelab.side == "nat"`,
	}[name]
	if want != "" && len(labtest.StatelabFields(t, path, want)) == 0 {
		t.Errorf("%s: no frame matches %s", name, want)
	}
}
