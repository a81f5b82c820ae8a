package udpdns

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BigName's answer does not fit a small EDNS buffer: over UDP it comes
// back truncated, TC set, within the size the query allowed (with the
// cookie's OPT record counted too); the client's TCP fallback gets it
// whole; over TCP the zone never truncates.
func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	tests := []struct {
		name     string
		size     uint16
		cookies  bool
		fallback bool
		wantTC   bool
		records  int
	}{
		{"512-byte buffer, no fallback: TC, a partial answer", 512, false, false, true, -1},
		{"512-byte buffer, fallback: the whole answer over TCP", 512, false, true, false, BigTXTRecords},
		{"1232-byte buffer with cookies, fallback", 1232, true, true, false, BigTXTRecords},
		{"4096-byte buffer: fits, no TCP", 4096, false, true, false, BigTXTRecords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ServerConfig{TCP: true}
			if tt.cookies {
				cfg.Cookies = &CookieConfig{}
			}
			srv := startServer(t, cfg)
			c := newClient(t, Config{Server: srv.Addr(), UDPSize: tt.size, Cookies: tt.cookies, TCPFallback: tt.fallback})
			var raw []byte
			m := new(dns.Msg)
			m.SetQuestion(BigName, dns.TypeTXT)
			call, err := c.Send(ctxFor(t, 5*time.Second), m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := call.Wait(ctxFor(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			raw = call.Raw()
			if len(raw) > int(max(tt.size, 512)) {
				t.Errorf("UDP answer of %d bytes over the %d-byte buffer", len(raw), tt.size)
			}
			r, err := c.Query(ctxFor(t, 5*time.Second), BigName, dns.TypeTXT)
			if err != nil {
				t.Fatal(err)
			}
			if r.Truncated != tt.wantTC || (tt.records >= 0 && len(r.Answer) != tt.records) || (tt.records < 0 && len(r.Answer) >= BigTXTRecords) {
				t.Errorf("TC=%v with %d records; want TC=%v, %d", r.Truncated, len(r.Answer), tt.wantTC, tt.records)
			}
			st := c.Stats()
			wantTCP := uint64(0)
			if tt.fallback && tt.size < 4096 {
				wantTCP = 1
			}
			if st.TCPSent != wantTCP || st.TCPAnswered != wantTCP {
				t.Errorf("stats %s; want %d TCP queries answered", st, wantTCP)
			}
			if tt.cookies {
				if raw, ok, _ := MsgCookie(r); !ok || len(raw) != CookieLen {
					t.Errorf("the TCP answer's cookie: %x", raw)
				}
			}
			if wantTCP == 1 {
				deadline := time.Now().Add(5 * time.Second)
				for srv.Stats().TCPOpen() != 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond) // polling a counter, bounded
				}
				if sst := srv.Stats(); sst.TCPConns != 1 || sst.TCPOpen() != 0 || sst.TCPHeld <= 0 {
					t.Errorf("server: %d TCP connections, %d open, held %v; want 1, 0, > 0", sst.TCPConns, sst.TCPOpen(), sst.TCPHeld)
				}
			}
		})
	}
}
