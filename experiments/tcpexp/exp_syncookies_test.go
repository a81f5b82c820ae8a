package tcpexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

// tcp/syn-cookies passes, and its report holds the measurements its row
// of "who holds the state" is written from: no request socket for any
// cookie'd SYN, the cookie carried in the 4-byte ACK number, the kernel's
// counters agreeing with the capture.
func TestSynCookies(t *testing.T) {
	e, ok := experiment("tcp/syn-cookies")
	if !ok {
		t.Fatal("tcp/syn-cookies is not in Experiments()")
	}
	r := labtest.RunExperiment(t, e, 7)
	m := r.Metrics
	if m["cookied_syns_count"] < 6 || m["request_sockets_for_cookied_syns_count"] != 0 {
		t.Errorf("cookied SYNs %v with %v request sockets, want at least 6 with none", m["cookied_syns_count"], m["request_sockets_for_cookied_syns_count"])
	}
	if m["syncookies_sent_count"] != m["cookie_synacks_captured_count"] || m["syncookies_failed_count"] != 1 {
		t.Errorf("SyncookiesSent %v, cookie SYN-ACKs captured %v, SyncookiesFailed %v", m["syncookies_sent_count"], m["cookie_synacks_captured_count"], m["syncookies_failed_count"])
	}
	if m["cookie_mss_remembered_bytes"] != 1300 {
		t.Errorf("the kernel remembers MSS %v of the lab's 1400, want 1300", m["cookie_mss_remembered_bytes"])
	}
	h := r.Holding
	if h == nil || h.CarriedBytes != 4 || !strings.Contains(h.ServerKeeps, "0 request sockets for") || h.RestartLoses != "not restarted" {
		t.Fatalf("holding %+v", h)
	}
	if len(r.Ladders) != 4 {
		t.Errorf("%d ladders, want the 4 completed handshakes", len(r.Ladders))
	}
	// Every cookie'd SYN-ACK is commented as the listener's, with the
	// counter and sock_diag read after it.
	f, err := capture.ReadFile(r.Captures[0])
	if err != nil {
		t.Fatal(err)
	}
	cookies := 0
	for i, p := range f.Packets {
		all := strings.Join(p.Comments, " | ")
		if strings.Contains(all, "the SYN-ACK's ISN is the SYN cookie") {
			cookies++
			if !strings.Contains(all, "kernel LISTEN") || !strings.Contains(all, "SyncookiesSent +1") || !strings.Contains(all, "no socket for this connection") {
				t.Errorf("frame %d: %s", i+1, all)
			}
		}
	}
	if float64(cookies) != m["cookie_synacks_captured_count"] {
		t.Errorf("%d frames commented as cookie SYN-ACKs, %v counted", cookies, m["cookie_synacks_captured_count"])
	}
}
